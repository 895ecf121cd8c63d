"""Recall quality and latency of ranked search on LoCoMo, through the public API of a running stack.

    .venv/bin/python perf/recall_bench.py [--data ../shared/bench/locomo] [--out perf/RECALL.md] [--workers 1]
        [--scale 100000,1000000]

Starts arclite and `memtrace serve` (the defaults; 1 worker unless told), ingests each conversation of the
data folder following its README's protocol (one agent `locomo_<n>` per conversation, one session `lc<n>_s<N>`
per LoCoMo session, one memory per turn with content `"<speaker>: <text>"` plus `" [shares <caption>]"`,
`metadata.dia_id`, event_type `message`, a unique dedup_key), waits until Arc holds every row, then asks every
question of categories 1-4 with `POST /api/v1/search {"query", "agent_id", "limit": 10}` and
`POST /api/v1/recall {"query", "agent_id", "max_tokens": 600}`, and reports:
- R@1/5/10: share of questions with an evidence turn among the first k search results;
- S@5: share with an evidence session among the first 5 distinct sessions of the results;
- ctx@600: share whose recall `memories` include an evidence turn;
- p50/p99 latency of the ranked search against a plain list of the same agent (`GET /api/v1/memories?agent_id=
  &limit=10`), alternated in the same run, as a ratio; with `--scale`, the same at 100k / 1M memories in one
  org (synthetic filler memories written in batches), agent-scoped and org-wide.
The data is read at run time from its folder and never copied (its licence is not stated).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools.perfstack import ArcLite, MemtraceServer, arc_flush, arc_query, provision  # noqa: E402

# The data sits beside the repository (`../shared`); a worktree one level deeper finds it a level up.
DEFAULT_DATA = next((p / "shared" / "bench" / "locomo" for p in (REPO.parent, REPO.parent.parent)
                     if (p / "shared" / "bench" / "locomo").is_dir()), REPO.parent / "shared" / "bench" / "locomo")
CATEGORIES = (1, 2, 3, 4)


@dataclass
class Turn:
    dia_id: str
    session: str
    content: str


@dataclass
class Conversation:
    name: str
    turns: list[Turn]
    questions: list[dict[str, Any]]

    @property
    def agent(self) -> str:
        return f"locomo_{self.name}"


def load(folder: Path) -> list[Conversation]:
    conversations = []
    for path in sorted(folder.glob("*.json")):
        raw = json.loads(path.read_text())
        name = path.stem
        turns = []
        n = 1
        while f"session_{n}" in raw or f"session_{n}_date_time" in raw:
            for t in raw.get(f"session_{n}", []):
                content = f"{t['speaker']}: {t['text']}"
                if t.get("blip_caption"):
                    content += f" [shares {t['blip_caption']}]"
                turns.append(Turn(t["dia_id"], f"lc{name}_s{n}", content))
            n += 1
        questions = [q for q in raw["qa"] if q.get("category") in CATEGORIES]
        conversations.append(Conversation(name, turns, questions))
    return conversations


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def ingest(api: httpx.Client, conv: Conversation) -> None:
    items = [{"agent_id": conv.agent, "session_id": t.session, "content": t.content, "event_type": "message",
              "metadata": {"dia_id": t.dia_id}, "dedup_key": f"{conv.agent}.{t.dia_id.replace(':', '_')}"}
             for t in conv.turns]
    for batch in chunks(items, 500):
        r = api.post("/api/v1/memories", json={"memories": list(batch)})
        r.raise_for_status()


DATABASE = "db_locomo"


def wait_delivered(arc_url: str, expected: int, timeout: float = 600.0) -> None:
    """Until Arc itself answers with `expected` memories (the ranking is then Arc's, as in steady state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arc_flush(arc_url)
        answer = arc_query(arc_url, DATABASE, "SELECT count(DISTINCT id) FROM events")
        if answer.get("data") and answer["data"][0][0] >= expected:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Arc did not get {expected} memories in {timeout} s")


@dataclass
class Quality:
    n: int = 0
    r1: int = 0
    r5: int = 0
    r10: int = 0
    s5: int = 0
    ctx: int = 0

    def pct(self, v: int) -> float:
        return round(100 * v / self.n, 1) if self.n else 0.0


def evaluate(api: httpx.Client, conv: Conversation, q: Quality, latencies: dict[str, list[float]]) -> None:
    session_of = {t.dia_id: t.session for t in conv.turns}
    for question in conv.questions:
        evidence = set(question["evidence"])
        ev_sessions = {session_of.get(e) for e in evidence}
        started = time.perf_counter()
        found = api.post("/api/v1/search", json={"query": question["question"], "agent_id": conv.agent,
                                                 "limit": 10}).json()["results"]
        latencies["search"].append(time.perf_counter() - started)
        started = time.perf_counter()
        api.get("/api/v1/memories", params={"agent_id": conv.agent, "limit": 10}).raise_for_status()
        latencies["list"].append(time.perf_counter() - started)
        ids = [m["metadata"].get("dia_id") for m in found]
        sessions = list(dict.fromkeys(m["session_id"] for m in found))
        recalled = api.post("/api/v1/recall", json={"query": question["question"], "agent_id": conv.agent,
                                                    "max_tokens": 600}).json()
        q.n += 1
        q.r1 += bool(evidence & set(ids[:1]))
        q.r5 += bool(evidence & set(ids[:5]))
        q.r10 += bool(evidence & set(ids[:10]))
        q.s5 += bool(ev_sessions & set(sessions[:5]))
        q.ctx += bool(evidence & {m["metadata"].get("dia_id") for m in recalled["memories"]})


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def pctl(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


_FILLER_TEXT = ("order refund invoice shipment customer delay warehouse label courier payment card address weekend "
                "meeting project report budget review launch garden recipe travel museum concert hiking painting")
WORDS = _FILLER_TEXT.split()


def fill(api: httpx.Client, total: int, agents: int, seed: int = 7) -> None:
    """`total` synthetic memories over `agents` agents (ten sessions each), 1,000 per request."""
    rng = random.Random(seed)
    written = 0
    while written < total:
        n = min(1000, total - written)
        items = [{"agent_id": f"filler_{(written + i) % agents}",
                  "session_id": f"fs_{(written + i) % agents}_{(written + i) // 5000 % 10}",
                  "content": " ".join(rng.choice(WORDS) for _ in range(12)) + f" #{written + i}"}
                 for i in range(n)]
        api.post("/api/v1/memories", json={"memories": items}, timeout=120).raise_for_status()
        written += n


def scale_rows(api: httpx.Client, arc_url: str, queries: list[str], agent: str, rounds: int = 30
               ) -> list[tuple[str, float, float]]:
    arc_flush(arc_url)
    out = []
    for label, body in (("agent-scoped", {"agent_id": agent}), ("org-wide", {})):
        times = []
        for i in range(rounds):
            started = time.perf_counter()
            api.post("/api/v1/search", json={"query": queries[i % len(queries)], "limit": 10, **body},
                     timeout=120).raise_for_status()
            times.append(time.perf_counter() - started)
        out.append((label, pctl(times, 0.5), pctl(times, 0.99)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scale", default="", help="comma list of org sizes, e.g. 100000,1000000")
    args = parser.parse_args(argv)
    conversations = load(args.data)
    if not conversations:
        print(f"no LoCoMo conversation in {args.data}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="recall-bench-"))
    arc = ArcLite(base / "arc")
    lines: list[str] = []
    try:
        data_dir = base / "memtrace"
        data_dir.mkdir()
        tenant = provision(data_dir / "memtrace.db", "locomo", arc.url)
        server = MemtraceServer(data_dir, workers=args.workers)
        try:
            with httpx.Client(base_url=server.url, headers={"x-api-key": tenant.key}, timeout=60) as api:
                lines = run(api, arc.url, conversations, args)
        finally:
            server.stop()
    finally:
        arc.stop()
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


def run(api: httpx.Client, arc_url: str, conversations: list[Conversation], args: argparse.Namespace) -> list[str]:
    for conv in conversations:
        ingest(api, conv)
    wait_delivered(arc_url, sum(len(c.turns) for c in conversations))
    quality = Quality()
    latencies: dict[str, list[float]] = {"search": [], "list": []}
    for conv in conversations:
        evaluate(api, conv, quality, latencies)
    s50, l50 = pctl(latencies["search"], 0.5), pctl(latencies["list"], 0.5)
    s99, l99 = pctl(latencies["search"], 0.99), pctl(latencies["list"], 0.99)
    lines = [
        "# Ranked recall on the LoCoMo dev split",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit {commit()} with "
        f"`{' '.join(['python', 'perf/recall_bench.py', *sys.argv[1:]])}`: arclite and `memtrace serve` with the "
        f"default settings (log level info), {args.workers} worker(s), on this machine "
        f"({os.cpu_count()} cores). The data is read from `{args.data}` at run time.",
        "",
        f"LoCoMo ({len(conversations)} conversations, {sum(len(c.turns) for c in conversations)} memories, "
        f"{quality.n} questions of categories 1-4), protocol of the data's README:",
        "",
        "| R@1 | R@5 | R@10 | S@5 | ctx@600 |",
        "|---|---|---|---|---|",
        f"| {quality.pct(quality.r1)} | {quality.pct(quality.r5)} | {quality.pct(quality.r10)} | "
        f"{quality.pct(quality.s5)} | {quality.pct(quality.ctx)} |",
        "",
        "| latency, ms | p50 | p99 |",
        "|---|---|---|",
        f"| ranked search, agent-scoped | {s50:.1f} | {s99:.1f} |",
        f"| plain list of the same agent | {l50:.1f} | {l99:.1f} |",
        f"| ratio, measured alternately in the same run | {s50 / l50:.2f}x | {s99 / l99:.2f}x |",
    ]
    queries = [q["question"] for c in conversations for q in c.questions]
    written = sum(len(c.turns) for c in conversations)
    for size in (int(s) for s in args.scale.split(",") if s):
        fill(api, size - written, agents=max(1, size // 3000))
        written = size
        wait_delivered(arc_url, size)
        for label, p50, p99 in scale_rows(api, arc_url, queries, conversations[0].agent):
            lines.append(f"| {size:,} memories in the org, {label} | {p50:.1f} | {p99:.1f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
