# Memtrace API server. Point orgs at their Arc with `memtrace admin org add-arc`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY memtrace ./memtrace
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/memtrace --create-home memtrace
COPY --from=build /install /usr/local
COPY memtrace.toml granian.toml /etc/memtrace/
WORKDIR /var/lib/memtrace
USER memtrace
ENV MEMTRACE_STORAGE_DATA_DIR=/var/lib/memtrace/data
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9100/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["memtrace"]
CMD ["serve", "--config", "/etc/memtrace/memtrace.toml", "--granian-config", "/etc/memtrace/granian.toml"]
