"""`GET /metrics` against a real 2-worker server: merged across workers, route templates, the named families."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import running_stack
from tests.procs import ArcLite, MemtraceServer
from tests.provision import Tenant, provision

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "memtrace.json"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = _SAMPLE.match(line)
        assert found, line
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
        out.append((found.group(1), labels, float(found.group(3))))
    return out


def value(text: str, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples(text) if n == name and all(lab.get(k) == x for k, x in labels.items()))


class Two:
    def __init__(self, arc: ArcLite, server: MemtraceServer, tenant: Tenant, data: Path) -> None:
        self.arc, self.server, self.tenant, self.data = arc, server, tenant, data


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Two]:
    with running_stack(tmp_path_factory.mktemp("metrics"), "acme", workers=2) as s:
        yield Two(s.arc, s.server, s.tenant, s.data_dir)


def scrape(url: str) -> str:
    resp = httpx.get(f"{url}/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return resp.text


def test_requests_over_both_workers_are_all_counted(two: Two) -> None:
    before = value(scrape(two.server.url), "memtrace_http_requests_total", route="/health", status="200")
    n = 60
    for _ in range(n):
        # A fresh connection per request, so the kernel spreads them over both workers' accept queues.
        with httpx.Client(base_url=two.server.url, timeout=10) as client:
            assert client.get("/health").status_code == 200
    workers = list((two.data / "metrics").glob("counter_*.db"))
    assert len(workers) == 2, f"expected both workers to have served requests: {workers}"
    text = scrape(two.server.url)
    after = value(text, "memtrace_http_requests_total", method="GET", route="/health", status="200")
    assert after - before == n
    assert value(text, "memtrace_http_request_duration_seconds_count", route="/health") >= n


def test_route_label_is_the_template_never_a_raw_id(two: Two) -> None:
    headers = {"x-api-key": two.tenant.key}
    with httpx.Client(base_url=two.server.url, headers=headers, timeout=10) as client:
        ids = []
        for i in range(3):
            resp = client.post("/api/v1/memories", json={"agent_id": "a1", "content": f"hello {i}"})
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        for memory_id in ids:
            assert client.get(f"/api/v1/memories/{memory_id}").status_code in (200, 404)
        assert client.get("/no/such/route/123").status_code == 404
    text = scrape(two.server.url)
    for memory_id in ids:
        assert memory_id not in text
    routes = {lab["route"] for n, lab, _ in samples(text) if n == "memtrace_http_requests_total"}
    assert "/api/v1/memories/:memory_id" in routes, routes
    assert "unmatched" in routes
    assert two.tenant.key not in text


def test_named_families_are_exported(two: Two) -> None:
    headers = {"x-api-key": two.tenant.key}
    with httpx.Client(base_url=two.server.url, headers=headers, timeout=10) as client:
        body = {"agent_id": "a1", "content": "same thing twice"}
        assert client.post("/api/v1/memories", json=body).status_code == 201
        assert client.post("/api/v1/memories", json=body).status_code == 409
    deadline = time.monotonic() + 10
    text = scrape(two.server.url)
    while value(text, "memtrace_delivery_rows_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        text = scrape(two.server.url)
    names = {n for n, _, _ in samples(text)}
    for family in ("memtrace_http_requests_total", "memtrace_http_request_duration_seconds_bucket",
                   "memtrace_journal_pending_rows", "memtrace_delivery_rows_total",
                   "memtrace_delivery_requests_total", "memtrace_delivery_duration_seconds_bucket",
                   "memtrace_dedup_rejected_total", "memtrace_auth_cache_hits_total",
                   "memtrace_auth_cache_misses_total", "memtrace_arc_circuits_open"):
        assert family in names, family
    assert value(text, "memtrace_dedup_rejected_total") >= 1
    assert value(text, "memtrace_delivery_requests_total", outcome="ok") >= 1
    assert "org_id" not in text


def test_backpressure_and_arc_errors_are_counted(tmp_path: Path) -> None:
    data = tmp_path / "memtrace"
    data.mkdir()
    tenant = provision(data / "memtrace.db", "down", "http://127.0.0.1:9")  # nothing listens on port 9
    server = MemtraceServer(data, env={"MEMTRACE_ARC_MAX_PENDING_PER_ORG": "2",
                                       "MEMTRACE_ARC_BREAKER_FAILURES": "1"})
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=10) as client:
            statuses = [client.post("/api/v1/memories", json={"agent_id": "a", "content": f"m{i}"}).status_code
                        for i in range(4)]
            assert 429 in statuses
            client.get("/api/v1/memories")
        text = scrape(server.url)
        assert value(text, "memtrace_backpressure_rejected_total") >= 1
        assert value(text, "memtrace_arc_errors_total") >= 1, text
        assert value(text, "memtrace_journal_pending_rows") == 2
    finally:
        server.stop()


def test_grafana_dashboard_queries_only_exported_metrics(two: Two) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    exported = {n for n, _, _ in samples(scrape(two.server.url))}
    text = scrape(two.server.url)
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    for expr in exprs:
        for name in re.findall(r"\bmemtrace_[a-z_]+", expr):
            assert name in exported or name in families, f"dashboard queries unknown metric {name}"


def test_live_gauges_of_dead_workers_are_forgotten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A respawned worker has a new pid: the dead one's live gauges (open circuits) must stop counting."""
    import subprocess
    import sys

    from memtrace import metrics

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(gone.stdout)
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    for pid in (dead_pid, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    metrics.forget_dead_workers()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f"counter_{dead_pid}.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"])
