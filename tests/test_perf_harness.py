"""The perf harness's own logic, without servers: core layout and worker sweep from a given core count, CPU
accounting from /proc, the soak verdict, and the report rendered from a small synthetic results dict (every
figure in it must come from that dict, none from prose baked into the generator)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from copy import deepcopy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tools.perf_render import render, revive, scaling
from tools.perfstack import (
    MAIN_THREAD,
    CpuMeter,
    WrkResult,
    cores_used,
    cpu_layout,
    cpu_ticks,
    soak_stats,
    stat_ticks,
    thread_ticks,
    worker_sweep,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("nproc", "expected"), [
    (1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [1, 2, 4]), (12, [1, 2, 4, 8, 12]), (16, [1, 2, 4, 8, 16]),
])
def test_worker_sweep_doubles_up_to_the_cores(nproc: int, expected: list[int]) -> None:
    assert worker_sweep(nproc) == expected


def test_worker_sweep_takes_the_chosen_counts() -> None:
    assert worker_sweep(16, [2, 1, 2]) == [1, 2]


def test_two_cores_are_shared_and_wrk_gets_one_thread() -> None:
    layout = cpu_layout([0, 1])
    assert not layout.pinned
    assert layout.servers == (0, 1)
    assert layout.wrk_threads == 1


def test_sixteen_cores_pin_load_and_servers_apart() -> None:
    layout = cpu_layout(range(16))
    assert layout.pinned
    assert not set(layout.load) & set(layout.servers)
    assert sorted(layout.load + layout.servers) == list(range(16))
    assert layout.wrk_threads == 4
    assert worker_sweep(len(layout.servers)) == [1, 2, 4, 8, 12]


def test_stat_parser_survives_odd_process_names() -> None:
    # utime 250 and stime 50 are fields 14 and 15 of /proc/<pid>/stat; the name may contain spaces and ")"
    line = "4242 (granian (w) 1) S 1 4242 4242 0 -1 4194560 1000 0 3 0 250 50 7 9 20 0 5 0 123 456 789"
    assert stat_ticks(line) == 300
    assert cores_used(300, 2.0, hz=100) == 1.5


def test_cpu_ticks_of_this_process_match_its_own_clock() -> None:
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    ticks = cpu_ticks([os.getpid()])
    hz = os.sysconf("SC_CLK_TCK")
    # /proc and process_time() count the same CPU time; ticks are coarser, so allow a few of them
    assert abs(ticks / hz - time.process_time()) < 5 / hz + 0.05


def test_cpu_meter_sees_a_busy_child_group() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()+30\n"
                              "while time.process_time()<t: pass"], start_new_session=True)
    try:
        with CpuMeter({"child": child.pid}, self_as="me") as meter:
            time.sleep(0.3)  # the point: the meter measures CPU over a span of the clock
        assert set(meter.cores) == {"child", "me"}
        assert meter.cores["child"] > 0
    finally:
        child.kill()
        child.wait()


def test_cpu_meter_splits_a_process_by_named_thread() -> None:
    import threading

    from memtrace.threadnames import name_os_thread

    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        name_os_thread("perf-spinner")
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        spun.set()
        release.wait(10)  # alive until measured: a finished thread leaves /proc

    spinner = threading.Thread(target=spin)
    try:
        with CpuMeter({}, threads_of=os.getpid()) as meter:
            spinner.start()
            assert spun.wait(10)
    finally:
        release.set()
        spinner.join()
    assert meter.threads["perf-spinner"] > 0
    assert MAIN_THREAD in thread_ticks(os.getpid())


def test_report_shows_cpu_per_request_by_thread() -> None:
    results = synthetic_results()
    for side, loop_cores in (("baseline", 0.5), ("memtrace", 0.6)):
        for r in results["p1"][side][1]:
            r.thread_cpu = {MAIN_THREAD: loop_cores, "journal-commit": 0.27 if side == "memtrace" else 0.0}
    text = render(revive(results), "plot.png")
    # memtrace's peak at 1 worker: 2,700 req/s; the baseline's: 9,000 req/s
    assert f"| {MAIN_THREAD} | 55.6 (0.50) | 222.2 (0.60) |" in text
    assert "| journal-commit | 0.0 (0.00) | 100.0 (0.27) |" in text


def test_report_shows_what_many_orgs_add_per_thread() -> None:
    results = synthetic_results()
    shared = results["orgs"]["shared"]
    shared["one"]["thread_cpu"] = {MAIN_THREAD: 0.3, "journal-commit": 0.06}  # at 3,000 req/s
    shared["many"]["thread_cpu"] = {MAIN_THREAD: 0.42, "journal-commit": 0.105}  # at 2,100 req/s
    text = render(revive(results), "plot.png")
    assert f"| shared database | {MAIN_THREAD} | 100.0 | 200.0 | +100.0 |" in text
    assert "| shared database | journal-commit | 20.0 | 50.0 | +30.0 |" in text
    assert "| shared database | all | 120.0 | 250.0 | +130.0 |" in text
    assert "| database per org |" not in text  # no per-thread figures for that run


def test_soak_flat_after_warmup_is_bounded() -> None:
    samples = [(0.0, 50_000), (1.0, 60_000), (2.0, 70_000), (3.0, 70_100), (4.0, 70_050), (5.0, 70_200)]
    s = soak_stats(samples, warmup_s=2.0, tolerance_pct=5.0, min_window_s=3.0)
    assert s["bounded"] and s["judged"]
    assert (s["start_kib"], s["end_kib"], s["max_kib"], s["after_warmup_kib"]) == (50_000, 70_200, 70_200, 70_000)
    assert s["growth_pct"] == pytest.approx(200 / 70_000 * 100)


def test_soak_steady_growth_is_not_bounded() -> None:
    samples = [(float(t), 70_000 + 2_000 * t) for t in range(10)]
    s = soak_stats([(t, int(v)) for t, v in samples], warmup_s=2.0, tolerance_pct=5.0, min_window_s=7.0)
    assert not s["bounded"] and s["judged"]
    assert s["slope_kib_per_min"] == pytest.approx(2_000 * 60)


def test_a_soak_shorter_than_the_window_is_never_called_bounded() -> None:
    """A flat 45 s after warm-up says nothing about a leak: no verdict below 10 minutes by default."""
    samples = [(float(t), 70_000) for t in range(0, 61, 3)]
    s = soak_stats(samples, warmup_s=15.0, tolerance_pct=10.0)
    assert (s["judged"], s["bounded"], s["window_s"], s["min_window_s"]) == (False, False, 45.0, 600.0)
    text = render(revive({**synthetic_results(), "soak": {**synthetic_results()["soak"], **s}}), "plot.png")
    assert "not judged (45 s after warm-up; needs 600 s)" in text and "| bounded |" not in text


# --- the report from synthetic results -----------------------------------------------------------------

def _wrk(c: int, rps: float, p99: float, threads: int = 3) -> WrkResult:
    return WrkResult(connections=c, duration_s=3.0, requests=int(rps * 3), rps=rps, p50_ms=p99 / 3, p90_ms=p99 / 2,
                     p99_ms=p99, threads=threads, cpu={"server": 1.25, "arclite": 0.125, "load": 0.375})


def _orgs(own: bool, rps_many: float) -> dict[str, Any]:
    return {"orgs": 37, "own_db": own, "databases": 37 if own else 1, "concurrency": 24, "workers": 1,
            "one": asdict(_wrk(24, 3000.0, 20.0)), "many": asdict(_wrk(24, rps_many, 30.0)), "rss_one_kib": 71_680,
            "rss_many_kib": 72_680, "per_org_kib": 27.8, "arc_rss_one_kib": 200_000, "arc_rss_many_kib": 260_000,
            "provision_s": 1.5, "warm_s": 0.75, "arc_requests": 11, "arc_rows": 4321}


def _p3(retention: float, recent: int, ctx_p50: float) -> dict[str, Any]:
    cases = {name: {"mt_p50_ms": p50, "arc_p50_ms": 10.0, "mt_p99_ms": p50 * 2, "arc_p99_ms": 20.0,
                    "rows": {"memtrace": 33, "arc": 34}, "n": 12}
             for name, p50 in (("list", 11.0), ("search", 12.0), ("context", ctx_p50))}
    return {"retention_s": retention, "preloaded": 2_750, "recent_rows": recent, "journal_rows": recent + 4,
            "context_rows": 250,
            "cases": cases, "memory": {"rss_before_reads_kib": 80_000, "rss_after_reads_kib": 81_024 + recent,
                                       "journal_connections": 2, "journal_file_kib": 9_216}}


def synthetic_results(pinned: bool = False) -> dict[str, Any]:
    workers = [1, 2, 4]
    return {
        "machine": {"cpu": "Synthetic CPU", "cores available": "8"},
        "plan": {"wrk_s": 3, "agents": 13, "sessions": 17, "batch_size": 250, "batch_requests": 9,
                 "batch_concurrency": 3, "soak_s": 42, "soak_interval_s": 1.5, "locust_s": 4},
        "settings": {"cores": 8, "pinned": pinned, "load_cpus": [0, 1] if pinned else [0],
                     "server_cpus": list(range(2, 8)) if pinned else list(range(8)), "workers": workers,
                     "workers_chosen": False, "wrk_threads": 2 if pinned else 1, "backpressure": 777,
                     "arc_batch_size": 333, "arc_flush_interval_ms": 444, "journal_retention_s": 9.5,
                     "journal_cache_kib": 65_536, "rss_interval_s": 0.25},
        "run": {"commit": "abc1234", "command": "python tools/perf_report.py --workers 1,2", "log_level": "warning"},
        "generated_utc": "2026-01-02 03:04 UTC", "elapsed_s": 99.0, "loadavg_end": "0.10 0.20 0.30", "quick": False,
        "p1": {
            "baseline": {w: [_wrk(4, 5000.0 * w, 2.0), _wrk(24 * w, 9000.0 * w, 4.0)] for w in workers},
            "memtrace": {w: [_wrk(4, 1000.0 * w, 8.0), _wrk(24 * w, 3000.0 * w * 0.9, 10.0)] for w in workers},
            "arc_batching": {w: {"write_requests": 10, "rows": 5000, "rows_per_request": 500.0} for w in workers},
            "rss": {w: {"at_rest_kib": [70_000] * w, "under_load_kib": [90_000] * w} for w in workers},
            "profile": None,
        },
        "p2": {w: {"direct_rows_s": 60_000.0, "direct_p50_ms": 40.0, "direct_p99_ms": 50.0, "accepted_rows_s": 30_000.0,
                   "e2e_rows_s": 45_000.0, "mt_p50_ms": 100.0, "mt_p99_ms": 150.0, "statuses": {"201": 9},
                   "arc_requests": 9, "rows": 2250, "cpu_direct": {"arclite": 0.5, "load": 0.25},
                   "cpu_memtrace": {"server": 1.0, "arclite": 0.5, "load": 0.25}} for w in (1, 4)},
        "p3": {"arc_only": _p3(0.5, 0, 14.0), "merge": _p3(1800.0, 321, 19.0)},
        "orgs": {"shared": _orgs(False, 2100.0), "own_db": _orgs(True, 2850.0)},
        "soak": {"start_kib": 60_000, "end_kib": 72_000, "max_kib": 73_000, "after_warmup_kib": 70_000,
                 "growth_pct": 4.3, "slope_kib_per_min": 120.0, "warmup_s": 7.0, "tolerance_pct": 8.0,
                 "window_s": 610.0, "min_window_s": 600.0, "judged": True, "bounded": True,
                 "n_samples": 28, "requests": 5555, "rps": 132.0, "statuses": {"201": 5000},
                 "server_errors": 0, "cpu": {"server": 0.9}, "concurrency": 5, "workers": 1,
                 "mix": "in every 10 requests 7 single POSTs"},
        "locust": {"users": 6, "orgs": 3, "arcs": 2, "workers": 1, "processes": 1, "scenarios": []},
    }


def test_report_numbers_come_from_the_results() -> None:
    text = render(revive(synthetic_results()), "plot.png")
    # settings and plan, as this run had them
    assert "backpressure 777" in text and "arc.batch_size 333" in text and "arc.flush_interval_ms 444" in text
    assert "Commit `abc1234`; command `python tools/perf_report.py --workers 1,2`; Memtrace log level `warning`" \
        in text
    assert "wrk, 3 s per point" in text and "13 agents, 17 sessions" in text
    assert "9 requests of 250 memories, 3 at a time" in text
    assert "2,750 memories preloaded" in text and "321 more written just before measuring" in text
    assert "the journal held 325 of the org's rows while reading" in text
    assert "journal.retention_s 0.5" in text and "journal.retention_s 1800" in text
    assert "No pinning was possible" in text and "Worker counts measured: 1, 2, 4" in text
    # none of the old generator's fixed figures
    for stale in ("11,000", "backpressure 1024", "1 thread", "5 s per point", "retention was set to 1 s",
                  "1,000-memory", "50 agents", "200 sessions"):
        assert stale not in text, stale
    # P3: both runs side by side; P4: both org layouts and every worker count's scaling
    assert "P3 context p50, Arc only | **1.40×**" in text
    assert "P3 context p50, merging 321 journal rows | **1.90×**" in text
    assert "one shared Arc database (req/s, c=24, 1 worker) | **0.70×**" in text
    assert "a database per org (req/s, c=24, 1 worker) | **0.95×**" in text
    assert "P4 2 workers / 1 worker (memtrace, peak req/s) | **2.00×** (baseline app: 2.00×)" in text
    assert "P4 4 workers / 1 worker" in text
    # CPU per side and memory
    assert "| 1.25 / 0.12 / 0.38 |" in text
    assert "sampled every 0.25 s" in text and "over a 42 s mixed soak" in text and "tolerance 8%" in text
    assert "64.0 MiB" in text  # the journal's per-connection cache, from the settings


def test_report_says_where_things_were_pinned() -> None:
    text = render(revive(synthetic_results(pinned=True)), "plot.png")
    assert "**Pinned**: load generators (wrk, the aiohttp client) on cores 0,1, servers" in text
    assert "cores 2,3,4,5,6,7" in text
    assert "No pinning" not in text


def test_scaling_is_relative_to_the_smallest_sweep_point() -> None:
    results = revive(synthetic_results())
    del results["p1"]["memtrace"][1], results["p1"]["baseline"][1]
    assert [(w, ref) for w, ref, _, _ in scaling(results["p1"])] == [(4, 2)]


def test_report_survives_a_json_round_trip(tmp_path: Path) -> None:
    import json

    from tools.perf_render import load_results

    results = synthetic_results()
    path = tmp_path / "r.json"
    path.write_text(json.dumps(deepcopy(results), default=asdict))
    assert render(load_results(path), "p.png") == render(revive(results), "p.png")


def test_workers_option_parses_a_list() -> None:
    from tools.perf_report import parse_workers

    assert parse_workers("1,2") == [1, 2]
    assert parse_workers(None) is None


@pytest.mark.slow
def test_quick_report_end_to_end(tmp_path: Path) -> None:
    """`--quick --no-profile` runs every stage against real servers and renders a report (a smoke test)."""
    if not os.environ.get("MEMTRACE_PERF_E2E"):
        pytest.skip("set MEMTRACE_PERF_E2E=1: the quick plan takes minutes on a shared 2-core machine")
    out = tmp_path / "REPORT.md"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "perf_report.py"), "--quick", "--no-profile",
                           "--workers", "1", "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PERF_TMPDIR": str(tmp_path)}, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert "## Summary" in text and re.search(r"P3 context p50, merging \d+ journal rows", text)


def test_points_where_wrk_used_its_cores_are_flagged() -> None:
    results = synthetic_results(pinned=True)
    results["p1"]["baseline"][4][-1].cpu["load"] = 1.95  # 2 load cores, 97% busy
    text = render(revive(results), "plot.png")
    assert "| 4 | 96 | 3 | 36000 ‡ |" in text
    assert "wrk used at least 90% of the 2 core(s)" in text
    assert "‡" not in render(revive(synthetic_results(pinned=True)), "plot.png")
