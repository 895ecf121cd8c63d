"""perf/REPORT.md and its plot from one run's results dict (as `tools/perf_report.py` builds it).

Every number written here comes from `results`: the measurements, the plan the run used and the settings it
derived (cores, pinning, worker counts, Memtrace's effective settings). Hand-written analysis lives in
perf/ANALYSIS.md, which the report links to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.perfstack import WrkResult

# A load generator using this share of its cores is the bottleneck, not the server.
SATURATED = 0.9
TARGETS = {"P1_rps": 0.60, "P1_p99": 3.0, "P2": 0.67, "P3": 1.3, "P4_workers": 1.7, "P4_orgs": 0.90}


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _peak(runs: list[WrkResult]) -> WrkResult:
    return max(runs, key=lambda r: r.rps)


def _w(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def _cpu(cpu: dict[str, float], *sides: str) -> str:
    return " / ".join(f"{cpu.get(s, 0.0):.2f}" for s in sides)


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def scaling(p1: dict[str, Any]) -> list[tuple[int, int, float, float]]:
    """(workers, reference workers, memtrace peak ratio, baseline peak ratio) for every worker count above the
    smallest of the sweep."""
    ws = sorted(p1["memtrace"])
    ref = ws[0]
    out = []
    for w in ws[1:]:
        mt = _peak(p1["memtrace"][w]).rps / _peak(p1["memtrace"][ref]).rps
        base = _peak(p1["baseline"][w]).rps / _peak(p1["baseline"][ref]).rps
        out.append((w, ref, mt, base))
    return out


def plot(p1: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, w in enumerate(sorted(p1["memtrace"])):
        for side, color in (("baseline", "C0"), ("memtrace", "C3")):
            runs: list[WrkResult] = p1[side][w]
            xs = [r.connections for r in runs]
            style = ("--", "-", ":", "-.")[i % 4]
            label = f"{side}, {_w(w)}"
            ax1.plot(xs, [r.rps for r in runs], color=color, linestyle=style, marker="o", label=label)
            ax2.plot(xs, [r.p99_ms for r in runs], color=color, linestyle=style, marker="o", label=label)
    ticks = sorted({r.connections for runs in p1["baseline"].values() for r in runs})
    for ax, title, ylabel in ((ax1, "Throughput, single-memory POST", "req/s"), (ax2, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("concurrent connections (wrk)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary(results: dict[str, Any]) -> list[str]:
    p1, p2, p3, orgs, plan = (results[k] for k in ("p1", "p2", "p3", "orgs", "plan"))
    lines = ["| target | measured | goal | |", "|---|---|---|---|"]
    add = lines.append
    for w in sorted(p1["memtrace"]):
        bpk, mpk = _peak(p1["baseline"][w]), _peak(p1["memtrace"][w])
        ratio = mpk.rps / bpk.rps
        # p99 compared at the same concurrency (the highest of the sweep, where both are saturated)
        b_hi, m_hi = p1["baseline"][w][-1], p1["memtrace"][w][-1]
        p99r = m_hi.p99_ms / b_hi.p99_ms if b_hi.p99_ms else float("nan")
        add(f"| P1 req/s, {_w(w)} (peak of sweep) | **{ratio:.2f}×** ({mpk.rps:.0f} vs {bpk.rps:.0f} req/s) | "
            f"≥ {TARGETS['P1_rps']}× | {verdict(ratio >= TARGETS['P1_rps'])} |")
        add(f"| P1 p99 at c={m_hi.connections}, {_w(w)} | **{p99r:.2f}×** ({m_hi.p99_ms:.1f} vs "
            f"{b_hi.p99_ms:.1f} ms) | ≤ {TARGETS['P1_p99']}× | {verdict(p99r <= TARGETS['P1_p99'])} |")
    for w in sorted(p2):
        r = p2[w]
        ratio = r["e2e_rows_s"] / r["direct_rows_s"]
        add(f"| P2 rows/s in Arc, {_n(plan['batch_size'])}-memory batches, {_w(w)} | **{ratio:.2f}×** "
            f"({r['e2e_rows_s']:.0f} vs {r['direct_rows_s']:.0f} rows/s; accepted {r['accepted_rows_s']:.0f} "
            f"= {r['accepted_rows_s'] / r['direct_rows_s']:.2f}×) | ≥ {TARGETS['P2']}× | "
            f"{verdict(ratio >= TARGETS['P2'])} |")
    for variant, label in (("arc_only", "Arc only"), ("merge", f"merging {p3.get('merge', {}).get('recent_rows', 0)} "
                                                                 "journal rows")):
        if variant not in p3:
            continue
        for name, r in p3[variant]["cases"].items():
            ratio = r["mt_p50_ms"] / r["arc_p50_ms"]
            add(f"| P3 {name} p50, {label} | **{ratio:.2f}×** ({r['mt_p50_ms']:.2f} vs {r['arc_p50_ms']:.2f} ms) | "
                f"≤ {TARGETS['P3']}× | {verdict(ratio <= TARGETS['P3'])} |")
    for w, ref, mt, base in scaling(p1):
        goal = w == 2 * ref
        add(f"| P4 {_w(w)} / {_w(ref)} (memtrace, peak req/s) | **{mt:.2f}×** (baseline app: {base:.2f}×) | "
            + (f"≥ {TARGETS['P4_workers']}× | {verdict(mt >= TARGETS['P4_workers'])} |" if goal
               else "reported | reported |"))
    for key, label in (("shared", "one shared Arc database"), ("own_db", "a database per org")):
        if key not in orgs:
            continue
        o = orgs[key]
        ratio = o["many"]["rps"] / o["one"]["rps"]
        add(f"| P4 {o['orgs']} active orgs / 1 org, {label} (req/s, c={o['concurrency']}, {_w(o['workers'])}) | "
            f"**{ratio:.2f}×** ({o['many']['rps']:.0f} vs {o['one']['rps']:.0f}) | ≥ {TARGETS['P4_orgs']}× | "
            f"{verdict(ratio >= TARGETS['P4_orgs'])} |")
    for key, label in (("shared", "shared database"), ("own_db", "database per org")):
        if key in orgs:
            o = orgs[key]
            add(f"| P4 worker RSS per idle org, {label} | {o['per_org_kib']:.1f} KiB ({_mib(o['rss_one_kib'])} → "
                f"{_mib(o['rss_many_kib'])} for {o['orgs']} orgs) | bounded, reported | reported |")
    soak = results.get("soak")
    if soak:
        add(f"| Memory: worker RSS over a {results['plan']['soak_s']} s mixed soak | {_mib(soak['start_kib'])} → "
            f"{_mib(soak['end_kib'])} (max {_mib(soak['max_kib'])}); {soak['growth_pct']:+.1f}% after "
            f"{soak['warmup_s']:g} s warm-up, slope {soak['slope_kib_per_min']:+.0f} KiB/min | growth ≤ "
            f"{soak['tolerance_pct']:g}% after warm-up, over ≥ {soak.get('min_window_s', 600):g} s | "
            f"{_soak_verdict(soak)} |")
    return lines


def _settings(results: dict[str, Any]) -> list[str]:
    m, st, plan = results["machine"], results["settings"], results["plan"]
    lines = [f"- {k}: {v}" for k, v in m.items()]
    add = lines.append
    add(f"- loadavg at the end: {results['loadavg_end']}")
    if st["pinned"]:
        add(f"- Cores: {st['cores']}. **Pinned**: load generators (wrk, the aiohttp client) on cores "
            f"{_cpus(st['load_cpus'])}, servers (Granian workers and arclite) on cores {_cpus(st['server_cpus'])}, "
            "with `taskset` / `sched_setaffinity`.")
    else:
        add(f"- Cores: {st['cores']}. **No pinning was possible** (too few cores to give the load generator and "
            "the servers their own): every process shares every core, so the load generator's CPU use below "
            "is taken from the servers' budget.")
    how = "chosen with --workers" if st.get("workers_chosen") else "powers of two up to the servers' cores"
    add(f"- Worker counts measured: {', '.join(map(str, st['workers']))} ({how}). "
        f"wrk threads: min({st['wrk_threads']}, connections).")
    add("- Everything on 127.0.0.1. The machine may be shared with other jobs: p99 is the noisiest figure.")
    add(f"- Memtrace: `memtrace serve` (Granian ASGI, uvloop, backpressure {st['backpressure']}), production "
        f"defaults (arc.batch_size {st['arc_batch_size']}, arc.flush_interval_ms {st['arc_flush_interval_ms']}, "
        + (f"arc.max_in_flight {st['arc_max_in_flight']}, " if "arc_max_in_flight" in st else "") +
        f"journal.retention_s {st['journal_retention_s']:g}) except where a section says otherwise; arclite "
        "(`python -m memtrace.arclite`, DuckDB) on its own port; data dirs on the local disk.")
    add("- Baseline app: `tools/baseline_app.py`, BlackSheep on Granian with the same options and worker count, "
        "decoding the body into the same `NewMemory` msgspec Struct and answering 201 with it re-encoded.")
    add(f"- Load generators: **wrk** (Lua script `tools/wrk/post_single.lua`: unique content per request and "
        f"thread so dedup never answers 409, {plan['agents']} agents, {plan['sessions']} sessions) for P1/P4; an "
        "asyncio aiohttp client (`tools/loadgen.py`, bodies built before the clock starts) for P2, P3 and the "
        f"soak; **locust** (FastHttpUser, {results['locust'].get('processes', 1)} process, not pinned) for the "
        "scenario suites. CPU columns are cores kept busy on average during the run (utime+stime of each side's "
        "processes over wall time).")
    return lines


def _cpus(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


def _p1(results: dict[str, Any], plot_name: str) -> list[str]:
    p1, orgs, plan = results["p1"], results["orgs"], results["plan"]
    lines = [f"## P1 / P4: single-memory POST vs the bare app (wrk, {plan['wrk_s']} s per point)", "",
             f"![throughput and p99 vs concurrency]({plot_name})", "",
             "| workers | conns | wrk threads | baseline req/s | memtrace req/s | ratio | baseline p50 / p99 ms | "
             "memtrace p50 / p99 ms | p99 ratio | memtrace non-2xx | baseline CPU server / wrk | "
             "memtrace CPU server / arclite / wrk |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    add = lines.append
    load_cores = len(results["settings"]["load_cpus"])
    saturated = False

    def flag(r: WrkResult) -> str:
        nonlocal saturated
        if r.cpu.get("load", 0.0) >= SATURATED * load_cores:
            saturated = True
            return " ‡"
        return ""

    for w in sorted(p1["memtrace"]):
        for b, mt in zip(p1["baseline"][w], p1["memtrace"][w], strict=True):
            add(f"| {w} | {b.connections} | {mt.threads} | {b.rps:.0f}{flag(b)} | {mt.rps:.0f}{flag(mt)} | "
                f"{mt.rps / b.rps:.2f} | {b.p50_ms:.2f} / {b.p99_ms:.2f} | {mt.p50_ms:.2f} / {mt.p99_ms:.2f} | "
                f"{mt.p99_ms / b.p99_ms:.2f} | {mt.non_2xx} | {_cpu(b.cpu, 'server', 'load')} | "
                f"{_cpu(mt.cpu, 'server', 'arclite', 'load')} |")
    add("")
    if saturated:
        add(f"‡ wrk used at least {SATURATED:.0%} of the {load_cores} core(s) the load generator has: that point "
            "measures the load generator as much as the server.")
        add("")
    if len(p1["memtrace"]) > 1:
        add("| workers | memtrace peak req/s | × smallest | baseline peak req/s | × smallest |")
        add("|---|---|---|---|---|")
        ws = sorted(p1["memtrace"])
        m0, b0 = _peak(p1["memtrace"][ws[0]]).rps, _peak(p1["baseline"][ws[0]]).rps
        for w in ws:
            m, b = _peak(p1["memtrace"][w]).rps, _peak(p1["baseline"][w]).rps
            add(f"| {w} | {m:.0f} | {m / m0:.2f} | {b:.0f} | {b / b0:.2f} |")
        add("")
    lines += _per_thread(p1)
    for w in sorted(p1["arc_batching"]):
        ab = p1["arc_batching"][w]
        add(f"- Batching during the {w}-worker single-POST sweep: {ab['rows']} rows reached arclite in "
            f"{ab['write_requests']} write requests = **{ab['rows_per_request']:.0f} rows per Arc request**.")
    for key, label in (("shared", "all bound to one arclite database; org_id keeps them apart"),
                       ("own_db", "each bound to its own arclite database")):
        if key not in orgs:
            continue
        o = orgs[key]
        add(f"- {o['orgs']} orgs ({label}; databases in arclite: {o.get('databases', '?')}): provisioning took "
            f"{o['provision_s']:.1f} s; after the run arclite had {o['arc_rows']} rows in {o['arc_requests']} "
            f"requests. 1 org: {o['one']['rps']:.0f} req/s, p99 {o['one']['p99_ms']:.1f} ms; {o['orgs']} orgs: "
            f"{o['many']['rps']:.0f} req/s, p99 {o['many']['p99_ms']:.1f} ms (every key verified and every org "
            f"written once in a warm-up before measuring, {o['warm_s']:.1f} s). arclite RSS "
            f"{_mib(o['arc_rss_one_kib'])} → {_mib(o['arc_rss_many_kib'])}.")
    add("")
    lines += _orgs_per_thread(orgs)
    return lines


def _threads(first: dict[str, float], second: dict[str, float]) -> list[str]:
    """The thread names of two runs, busiest in `second` first, then "all"."""
    return [*sorted(set(first) | set(second), key=lambda n: -second.get(n, 0.0)), "all"]


def _cores(thread_cpu: dict[str, float], name: str) -> float | None:
    """Cores thread `name` kept busy ("all": every thread); None when the run had no such thread."""
    return sum(thread_cpu.values()) if name == "all" else thread_cpu.get(name)


def _orgs_per_thread(orgs: dict[str, Any]) -> list[str]:
    """The worker's CPU per request by thread, 1 org against many: what the orgs add, and where."""
    runs = [(key, o) for key, o in orgs.items() if o["one"].get("thread_cpu") and o["many"].get("thread_cpu")]
    if not runs:
        return []
    lines = ["The worker's CPU per request by thread (µs), 1 org against many, at the same connection count:", "",
             "| layout | thread | 1 org | many orgs | difference |", "|---|---|---|---|---|"]
    for key, o in runs:
        one, many = o["one"], o["many"]
        for name in _threads(one["thread_cpu"], many["thread_cpu"]):
            ua = (_cores(one["thread_cpu"], name) or 0.0) * 1e6 / one["rps"]
            ub = (_cores(many["thread_cpu"], name) or 0.0) * 1e6 / many["rps"]
            lines.append(f"| {'shared database' if key == 'shared' else 'database per org'} | {name} | {ua:.1f} | "
                         f"{ub:.1f} | {ub - ua:+.1f} |")
    return [*lines, ""]


def _per_thread(p1: dict[str, Any]) -> list[str]:
    """CPU per request of each thread of the one worker, at each side's peak: where the worker's time goes."""
    if 1 not in p1["memtrace"] or not _peak(p1["memtrace"][1]).thread_cpu:
        return []
    b, mt = _peak(p1["baseline"][1]), _peak(p1["memtrace"][1])

    def us(r: WrkResult, name: str) -> str:
        cores = _cores(r.thread_cpu, name)
        return "-" if cores is None else f"{cores * 1e6 / r.rps:.1f} ({cores:.2f})"

    lines = [f"CPU of the 1-worker process per thread at each side's peak (baseline {b.rps:.0f} req/s at "
             f"c={b.connections}, memtrace {mt.rps:.0f} req/s at c={mt.connections}): µs of CPU per request "
             "(cores busy). Python code of every thread shares one GIL, so the Python threads' sum bounds the "
             "worker's rate.", "",
             "| thread | baseline µs/request (cores) | memtrace µs/request (cores) |", "|---|---|---|"]
    lines += [f"| {name} | {us(b, name)} | {us(mt, name)} |" for name in _threads(b.thread_cpu, mt.thread_cpu)]
    return [*lines, ""]


def _p2(results: dict[str, Any]) -> list[str]:
    p2, plan = results["p2"], results["plan"]
    lines = ["## P2: batch ingest vs writing the same rows straight to the store", "",
             f"{plan['batch_requests']} requests of {_n(plan['batch_size'])} memories, {plan['batch_concurrency']} "
             "at a time, from the same client. Direct: the same rows (built by Memtrace's own `build_rows`, encoded "
             "by `encode_rows`) POSTed as columnar msgpack to the same arclite (another database). Memtrace: JSON "
             "batches; *accepted* is rows/s until the last 201 (journaled, fsynced), *in Arc* is rows/s until "
             "arclite counted every row (the ratio uses this one).", "",
             "| workers | direct rows/s (p50 ms) | memtrace accepted rows/s | memtrace in-Arc rows/s | ratio | "
             "memtrace p50 / p99 ms | Arc requests for the rows | CPU direct arclite / client | "
             "CPU memtrace server / arclite / client |",
             "|---|---|---|---|---|---|---|---|---|"]
    for w in sorted(p2):
        r = p2[w]
        lines.append(f"| {w} | {r['direct_rows_s']:.0f} ({r['direct_p50_ms']:.0f}) | {r['accepted_rows_s']:.0f} | "
                     f"{r['e2e_rows_s']:.0f} | {r['e2e_rows_s'] / r['direct_rows_s']:.2f} | "
                     f"{r['mt_p50_ms']:.0f} / {r['mt_p99_ms']:.0f} | {r['arc_requests']} for {r['rows']} | "
                     f"{_cpu(r.get('cpu_direct', {}), 'arclite', 'load')} | "
                     f"{_cpu(r.get('cpu_memtrace', {}), 'server', 'arclite', 'load')} |")
    lines.append("")
    return lines


def _p3(results: dict[str, Any]) -> list[str]:
    p3 = results["p3"]
    lines = ["## P3: reads vs the store query they run", "",
             "One request at a time, the two sides interleaved in blocks. The store side sends the exact SQL "
             "Memtrace builds (`memory/query.py`) to arclite and decodes the JSON answer.", ""]
    add = lines.append
    for variant in ("arc_only", "merge"):
        if variant not in p3:
            continue
        v = p3[variant]
        if variant == "arc_only":
            add(f"**Arc only.** {_n(v['preloaded'])} memories preloaded; journal.retention_s {v['retention_s']:g} "
                "for this stack and the reads start once the pruner has dropped the delivered rows, so reads find "
                "no recent local rows to merge (the steady state of an org that is not writing).")
        else:
            held = f" (the journal held {_n(v['journal_rows'])} of the org's rows while reading)" \
                if "journal_rows" in v else ""
            add(f"**Merge.** {_n(v['preloaded'])} memories preloaded through a server with journal.retention_s "
                f"{results['plan'].get('p3_retention_s', 1.0):g} and pruned from its journal, then the server "
                f"restarted with journal.retention_s {v['retention_s']:g} and {_n(v['recent_rows'])} more written "
                f"just before measuring{held}: they are in Arc and still in the journal, so every read merges "
                "local rows with Arc's answer (the state of an org that is writing).")
        add(f"Context reads the {_n(v['context_rows'])} memories of one session"
            + (" plus the recent ones in it." if variant == "merge" else "."))
        add("")
        add("| read | memtrace p50 / p99 ms | store p50 / p99 ms | p50 ratio | rows (memtrace, store) |")
        add("|---|---|---|---|---|")
        for name, r in v["cases"].items():
            rows = r["rows"]
            add(f"| {name} | {r['mt_p50_ms']:.2f} / {r['mt_p99_ms']:.2f} | {r['arc_p50_ms']:.2f} / "
                f"{r['arc_p99_ms']:.2f} | {r['mt_p50_ms'] / r['arc_p50_ms']:.2f} | {rows.get('memtrace')}, "
                f"{rows.get('arc')} |")
        add("")
    return lines


def _memory(results: dict[str, Any]) -> list[str]:
    p1, p3, st = results["p1"], results["p3"], results["settings"]
    lines = ["## Memory", ""]
    add = lines.append
    if p1.get("rss"):
        add("Worker RSS in the single-POST sweeps: at rest (after a short warm-up, before the sweep) and the "
            f"highest sample under load (sampled every {st['rss_interval_s']:g} s).")
        add("")
        add("| workers | RSS per worker at rest | under load (max) |")
        add("|---|---|---|")
        for w in sorted(p1["rss"]):
            r = p1["rss"][w]
            add(f"| {w} | {', '.join(_mib(x) for x in r['at_rest_kib'])} | "
                f"{', '.join(_mib(x) for x in r['under_load_kib'])} |")
        add("")
    journal = {k: v["memory"] for k, v in p3.items() if "memory" in v}
    if journal:
        add(f"Journal reader caches: each SQLite connection of the journal may cache up to "
            f"{_mib(st['journal_cache_kib'])} of pages (never more than the file). Worker RSS before and after "
            "the P3 reads (same worker, same reads):")
        add("")
        add("| P3 run | journal connections in the worker | journal file + WAL | RSS before reads | after | growth |")
        add("|---|---|---|---|---|---|")
        for k, m in journal.items():
            add(f"| {k.replace('_', ' ')} | {m['journal_connections']} | {_mib(m['journal_file_kib'])} | "
                f"{_mib(m['rss_before_reads_kib'])} | {_mib(m['rss_after_reads_kib'])} | "
                f"{_mib(m['rss_after_reads_kib'] - m['rss_before_reads_kib'])} |")
        if "arc_only" in journal and "merge" in journal:
            g = {k: m["rss_after_reads_kib"] - m["rss_before_reads_kib"] for k, m in journal.items()}
            add("")
            add(f"The merge run's growth minus the Arc-only run's ({_mib(g['merge'] - g['arc_only'])}) is what "
                "reading recent rows from the journal added; its ceiling is connections × cache size.")
        add("")
    soak = results.get("soak")
    if soak:
        add(f"Soak: {results['plan']['soak_s']} s of steady mixed load ({soak['concurrency']} clients; "
            f"{soak['mix']}) on {_w(soak['workers'])}, RSS sampled every "
            f"{results['plan']['soak_interval_s']:g} s ({soak['n_samples']} samples): {soak['requests']} requests "
            f"({soak['rps']:.0f}/s), {soak['server_errors']} answers ≥ 500, statuses {soak['statuses']}. RSS "
            f"{_mib(soak['start_kib'])} at start, {_mib(soak['after_warmup_kib'])} after the {soak['warmup_s']:g} s "
            f"warm-up, {_mib(soak['end_kib'])} at the end, max {_mib(soak['max_kib'])}; growth after warm-up "
            f"{soak['growth_pct']:+.1f}% (tolerance {soak['tolerance_pct']:g}%), slope "
            f"{soak['slope_kib_per_min']:+.0f} KiB/min → **{_soak_verdict(soak)}**. "
            f"CPU: {', '.join(f'{k} {v:.2f}' for k, v in soak['cpu'].items())} cores.")
        add("")
    return lines


def _locust(results: dict[str, Any]) -> list[str]:
    loc, plan = results["locust"], results["plan"]
    lines = [f"## Scenario suites (locust, {loc['users']} users, {plan['locust_s']} s each, "
             f"{loc['orgs']} orgs on {loc['arcs']} arclites, {_w(loc['workers'])})", "",
             "| scenario | req/s | rows/s | p50 ms | p99 ms | failures | rows per Arc request | routing | "
             "read-your-writes |",
             "|---|---|---|---|---|---|---|---|---|"]
    add = lines.append
    for sc in loc["scenarios"]:
        r, dlv = sc["result"], sc["delivery"]
        t = r["total"]
        per_req = ", ".join(f"{v:.0f}" for v in dlv["rows_per_request"].values())
        ryw = r["ryw"]
        ryw_s = f"{ryw.get('checked', 0) - ryw.get('missed', 0)}/{ryw.get('checked', 0)}" if ryw else "-"
        add(f"| {r['scenario']} | {t.get('rps', 0):.0f} | {r['rows_per_s']:.0f} | {t.get('p50_ms', 0):.0f} | "
            f"{t.get('p99_ms', 0):.0f} | {t.get('failures', 0):.0f} | {per_req} | "
            f"{'ok' if dlv['ok'] else 'BROKEN: ' + str(dlv['misrouted'] or dlv['missing'])} | {ryw_s} |")
    mixed = next((sc["result"] for sc in loc["scenarios"] if sc["result"]["scenario"] == "mixed"), None)
    if mixed:
        add("")
        add("Mixed, per request type: " + "; ".join(
            f"{name.split(' ', 1)[1]} {v['rps']:.0f} req/s p50 {v['p50_ms']:.0f} ms p99 {v['p99_ms']:.0f} ms"
            for name, v in mixed["by_name"].items()))
    add("")
    add("Routing: after each scenario, every org's rows were counted with SQL in every database of every arclite; "
        "`ok` means each org's acknowledged memories are all in its own Arc and database, exactly once, and "
        "nowhere else. Locust rounds its percentiles.")
    add("")
    return lines


def _soak_verdict(soak: dict[str, Any]) -> str:
    """`bounded` only from a window long enough to mean it (results without `judged` predate the rule)."""
    if not soak.get("judged", False):
        window = soak.get("window_s")
        span = f"{window:.0f} s" if isinstance(window, int | float) else "too short a window"
        return f"not judged ({span} after warm-up; needs {soak.get('min_window_s', 600):g} s)"
    return "bounded" if soak["bounded"] else "**not bounded**"


def _provenance(results: dict[str, Any]) -> str:
    """Which code, configuration and command produced the numbers (older results may lack them)."""
    run = results.get("run") or {}
    return (f"Commit `{run.get('commit', 'not recorded')}`; command `{run.get('command', 'not recorded')}`; "
            f"Memtrace log level `{run.get('log_level', 'not recorded')}` (access lines "
            f"{'off' if run.get('log_level') in ('warning', 'error', 'critical') else 'on'}).")


def render(results: dict[str, Any], plot_name: str) -> str:
    quick = bool(results.get("quick"))
    lines = ["# Memtrace performance report", "",
             f"Generated by `make perf-report` (`tools/perf_report.py{' --quick' if quick else ''}`) on "
             f"{results['generated_utc']}, in {results['elapsed_s']:.0f} s. Every target is a ratio against a "
             "ceiling measured in this same run on this same machine; absolute numbers are shown beside the ratios "
             "and are not comparable across machines.", "", _provenance(results), "", "## Summary", ""]
    lines += _summary(results)
    lines += ["", "Where a target is not met, the hand-written [analysis](ANALYSIS.md) says what the profile of its "
              "run showed and what would close the gap.", "", "## Machine and settings", ""]
    lines += _settings(results)
    lines.append("")
    lines += _p1(results, plot_name)
    lines += _p2(results)
    lines += _p3(results)
    lines += _memory(results)
    lines += _locust(results)
    p1 = results["p1"]
    if p1.get("profile"):
        lines += [f"## Profile of the single-POST path (py-spy, {_w(p1.get('profile_workers', 1))}, under wrk at "
                  f"c={p1.get('profile_connections', '?')})", "", "```", p1["profile"], "```", ""]
    elif p1.get("profile_note"):
        lines += ["## Profile of the single-POST path", "", p1["profile_note"] + ".", ""]
    lines += ["## Analysis", "",
              "Profiles and the reasoning behind them cannot be recomputed by this tool: they are hand-written in "
              "[ANALYSIS.md](ANALYSIS.md), which names the run it refers to. Numbers in this file come from this "
              "run only."]
    return "\n".join(lines) + "\n"


def load_results(path: Path) -> dict[str, Any]:
    """Results as written by --json, with the wrk runs turned back into WrkResult and worker keys into ints."""
    results: dict[str, Any] = json.loads(path.read_text())
    return revive(results)


def revive(results: dict[str, Any]) -> dict[str, Any]:
    p1 = results["p1"]
    for side in ("baseline", "memtrace"):
        p1[side] = {int(w): [r if isinstance(r, WrkResult) else WrkResult(**r) for r in runs]
                    for w, runs in p1[side].items()}
    for key in ("arc_batching", "rss"):
        p1[key] = {int(w): v for w, v in p1.get(key, {}).items()}
    results["p2"] = {int(w): v for w, v in results["p2"].items()}
    return results
