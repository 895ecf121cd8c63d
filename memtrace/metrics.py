"""Prometheus metrics (`GET /metrics`), aggregated over every Granian worker process.

`memtrace serve` creates a fresh directory `<data_dir>/metrics` and exports it as PROMETHEUS_MULTIPROC_DIR
before the workers start; each worker then keeps its samples in mmap'd files there (prometheus_client's
multiprocess mode) and a scrape of any worker merges all of them. Granian forks its workers from a process
that has already imported this module, so the metric objects are built lazily in the worker (`m()`), after
the value class has been chosen from the environment. Without the directory (tests, benchmarks) samples stay
in process memory.

Labels are bounded by construction: route templates (never raw ids), methods, statuses and small fixed enums.
There is no org label (the number of orgs is unbounded; per-org detail is in the access log), and no value
derived from a key ever becomes a label.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "unmatched"
# Request latencies: sub-millisecond cache hits up to multi-second Arc reads.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELIVERY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0)
DELIVERY_OUTCOMES = ("ok", "failed", "refused")
# connection/timeout: transport; throttled: Arc said 429; server_error: 5xx; rejected: other 4xx;
# bad_answer: a 2xx that is not Arc's JSON; circuit_open: failed fast without calling Arc.
ARC_ERROR_KINDS = ("connection", "timeout", "throttled", "server_error", "rejected", "bad_answer", "circuit_open")
_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


class Metrics:
    """Every metric family Memtrace exports; one instance per process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.http_requests = Counter(
            "memtrace_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=r)
        self.http_duration = Histogram(
            "memtrace_http_request_duration_seconds", "Time from request to response, by route template",
            ["method", "route"], buckets=HTTP_BUCKETS, registry=r)
        self.journal_pending = Gauge(
            "memtrace_journal_pending_rows", "Accepted memories not yet delivered to Arc (all orgs), at scrape",
            registry=r, multiprocess_mode="mostrecent")
        self.dead_letters = Gauge(
            "memtrace_delivery_dead_letters", "Memories Arc refused on their own, set aside (all orgs), at scrape",
            registry=r, multiprocess_mode="mostrecent")
        self.journal_full = Gauge(
            "memtrace_journal_full", "1 while the journal refuses writes for lack of room (503), at scrape",
            registry=r, multiprocess_mode="mostrecent")
        self.delivery_rows = Counter(
            "memtrace_delivery_rows", "Memories delivered to Arc", registry=r)
        self.delivery_requests = Counter(
            "memtrace_delivery_requests", "Columnar write requests to Arc, by outcome", ["outcome"], registry=r)
        self.delivery_duration = Histogram(
            "memtrace_delivery_duration_seconds", "Duration of one columnar write request to Arc",
            buckets=DELIVERY_BUCKETS, registry=r)
        self.arc_errors = Counter(
            "memtrace_arc_errors", "Failed calls to Arc, by kind", ["kind"], registry=r)
        self.circuits_open = Gauge(
            "memtrace_arc_circuits_open", "Open Arc circuits (orgs failing fast), summed over workers",
            registry=r, multiprocess_mode="livesum")
        self.circuit_transitions = Counter(
            "memtrace_arc_circuit_transitions", "Arc circuit breaker state changes, by new state",
            ["state"], registry=r)
        self.dedup_rejected = Counter(
            "memtrace_dedup_rejected", "Memories refused or skipped as duplicates", registry=r)
        self.auth_cache_hits = Counter(
            "memtrace_auth_cache_hits", "API keys answered from the verified-key cache", registry=r)
        self.auth_cache_misses = Counter(
            "memtrace_auth_cache_misses", "API keys that needed a lookup (and argon2 verify)", registry=r)
        self.backpressure = Counter(
            "memtrace_backpressure_rejected", "Writes answered 429 because an org's local queue is full",
            registry=r)
        # Known label values start at 0, so every family is present (dashboards, alerts) before it happens.
        for outcome in DELIVERY_OUTCOMES:
            self.delivery_requests.labels(outcome)
        for kind in ARC_ERROR_KINDS:
            self.arc_errors.labels(kind)
        for state in ("open", "closed"):
            self.circuit_transitions.labels(state)


_current: Metrics | None = None
_registry: CollectorRegistry | None = None


def multiproc_dir() -> Path | None:
    raw = os.environ.get(MULTIPROC_ENV)
    return Path(raw) if raw else None


def m() -> Metrics:
    """This process's metrics, built on first use (after the worker knows its environment)."""
    global _current, _registry
    if _current is None:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # re-read env after fork
        _registry = CollectorRegistry()
        _current = Metrics(_registry)
        forget_dead_workers()
    return _current


def prepare_dir(data_dir: Path) -> Path:
    """Called by `memtrace serve` before workers start: an empty samples directory, exported to them."""
    path = data_dir / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(path.resolve())
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that died (a respawned worker has a new pid); counters stay summed."""
    path = multiproc_dir()
    if path is None or not path.is_dir():
        return
    for file in path.iterdir():
        found = _LIVE_FILE.match(file.name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(int(found.group(1)), str(path))  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """The text format of every worker's samples (or this process's, without a samples directory)."""
    m()
    path = multiproc_dir()
    if path is not None and path.is_dir():
        forget_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    assert _registry is not None
    return generate_latest(_registry)
