"""The locust suites in a short bounded mode against a real stack: 2 orgs on 2 arclite instances.

Correctness only, never timing: every acknowledged memory reaches its own org's Arc and database and no
other, exactly once; the deliverer batches (many rows per Arc write request); no request fails; in the
mixed suite every sampled read-your-writes check finds the memory just written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.run import Stack, arc_counters, check_delivery, run_scenario, start_stack
from tools.perfstack import arc_query

pytestmark = pytest.mark.slow

USERS = 6
SECONDS = 3


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("load"), n_orgs=2, n_arcs=2, workers=1)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def acknowledged() -> Counter[str]:
    return Counter()


def _run_and_check(stack: Stack, scenario: str, acknowledged: Counter[str], max_requests: int,
                   min_rows_per_request: float) -> None:
    before = arc_counters(stack)
    result = run_scenario(stack, scenario, users=USERS, duration_s=SECONDS, max_requests=max_requests,
                          ryw_sample=0.2)
    assert result.total.get("failures", 0) == 0, result.errors
    assert sum(result.created.values()) > 0
    acknowledged.update(result.created)

    check = check_delivery(stack, acknowledged, before)
    assert not check.misrouted, check.misrouted
    assert not check.missing, f"acknowledged but not in the org's own Arc: {check.missing}"
    phase_rows = sum(check.arc_rows.values())
    assert phase_rows == sum(result.created.values()), "every acknowledged memory written exactly once"
    for url, per_request in check.rows_per_request.items():
        if check.arc_requests[url]:
            assert per_request >= min_rows_per_request, (url, check.arc_requests[url], check.arc_rows[url])
    # each org in its own arclite only: the other arclite has no database of it and no row with its org_id
    for org in stack.orgs:
        for arc in stack.arcs:
            stats = arc_query(arc.url, org.tenant.database,
                                          f"SELECT count(*) FROM events WHERE org_id = '{org.tenant.org_id}'")
            n = stats["data"][0][0] if stats.get("data") else 0
            if arc is org.arc:
                assert n == acknowledged[org.tenant.org_id]
            else:
                assert n == 0
    if scenario == "mixed":
        assert result.ryw.get("checked", 0) > 0
        assert result.ryw.get("missed", 0) == 0


def test_ingest_single_batches_and_routes(load_stack: Stack, acknowledged: Counter[str]) -> None:
    # one memory per request, but the Arc sees batches (100 ms flush interval in tests)
    _run_and_check(load_stack, "single", acknowledged, max_requests=3000, min_rows_per_request=5)


def test_ingest_batch_100(load_stack: Stack, acknowledged: Counter[str]) -> None:
    _run_and_check(load_stack, "batch100", acknowledged, max_requests=150, min_rows_per_request=100)


def test_ingest_batch_1000(load_stack: Stack, acknowledged: Counter[str]) -> None:
    _run_and_check(load_stack, "batch1000", acknowledged, max_requests=20, min_rows_per_request=500)


def test_mixed_read_your_writes(load_stack: Stack, acknowledged: Counter[str]) -> None:
    _run_and_check(load_stack, "mixed", acknowledged, max_requests=2000, min_rows_per_request=2)


def test_arc_stats_per_database_match(load_stack: Stack, acknowledged: Counter[str]) -> None:
    """arclite's own counters agree: each org's database holds exactly its acknowledged rows."""
    from tools.perfstack import arc_stats

    for org in load_stack.orgs:
        by_db = arc_stats(org.arc.url)["by_database"]
        assert sum(by_db[org.tenant.database]["rows"].values()) == acknowledged[org.tenant.org_id]
        other = [a for a in load_stack.arcs if a is not org.arc]
        for arc in other:
            assert org.tenant.database not in arc_stats(arc.url)["by_database"]


def test_locustfile_is_present() -> None:
    """Only that the file ships (importing it would load locust's gevent patching into pytest)."""
    assert (Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py").is_file()
