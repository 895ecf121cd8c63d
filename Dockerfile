# Memtrace API server: `docker build -t memtrace .`; see docker-compose.yml for a trial with a real Arc.
# Multi-stage: the build stage installs Memtrace into a virtualenv; the runtime stage only copies that virtualenv,
# runs as an unprivileged numeric user and checks /health itself. Nothing here depends on a CI system.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/memtrace
COPY pyproject.toml README.md ./
COPY memtrace ./memtrace
RUN /opt/memtrace/bin/pip install --no-cache-dir .

FROM python:3.11-slim
# The data directory exists (owned by the user) before VOLUME, so a fresh named volume inherits that ownership.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/memtrace --create-home memtrace \
    && mkdir -p /var/lib/memtrace/data && chown memtrace:memtrace /var/lib/memtrace/data
COPY --from=build /opt/memtrace /opt/memtrace
COPY memtrace.toml granian.toml /etc/memtrace/
ENV PATH=/opt/memtrace/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEMTRACE_HOME=/var/lib/memtrace \
    MEMTRACE_STORAGE_DATA_DIR=/var/lib/memtrace/data
WORKDIR /var/lib/memtrace
USER 10001:10001
VOLUME ["/var/lib/memtrace/data"]
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9100/health', timeout=2).status != 200)"]
ENTRYPOINT ["memtrace"]
CMD ["serve", "--config", "/etc/memtrace/memtrace.toml", "--granian-config", "/etc/memtrace/granian.toml"]
