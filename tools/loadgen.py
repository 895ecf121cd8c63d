"""A small asyncio load generator (aiohttp) for the paths where requests are few and heavy.

- Batch ingest (P2): the same rows sent as 1,000-memory JSON batches to Memtrace, or as 1,000-row columnar
  msgpack straight to the Arc-compatible store (`direct_bodies`, built with Memtrace's own `build_rows`
  and `encode_rows`, so both sides write byte-for-byte the same columns).
- Read latency (P3): one request at a time, so p50 is the cost of one request and not of queueing.

Bodies are built before the clock starts; the generator only sends them. Loopback only.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from memtrace.arc.encode import encode_rows
from memtrace.config import LimitsSettings
from memtrace.memory.build import build_rows
from memtrace.memory.model import NewMemory

_json = msgspec.json.Encoder()


def memory_item(run: str, n: int, agents: int = 50, sessions: int = 200) -> dict[str, Any]:
    return {
        "agent_id": f"agent_{n % agents}",
        "session_id": f"sess_{n % sessions}",
        "event_type": "tool_call" if n % 10 else "error",
        "memory_type": ("episodic", "decision", "session", "entity")[n % 4],
        "content": f"run {run} item {n}: the agent read a file and decided to refactor it",
        "tags": ["load", "perf"],
        "metadata": {"tool": "grep", "n": n, "reasoning": "it was long"},
        "importance": (n % 10) / 10,
    }


def batch_bodies(run: str, requests: int, size: int, start: int = 0) -> list[bytes]:
    """`requests` JSON bodies `{"memories": [...]}` of `size` unique memories each."""
    out = []
    for r in range(requests):
        base = start + r * size
        out.append(_json.encode({"memories": [memory_item(run, base + i) for i in range(size)]}))
    return out


def direct_bodies(run: str, org_id: str, requests: int, size: int, measurement: str = "events",
                  start: int = 0) -> list[bytes]:
    """The same rows as `batch_bodies`, as the columnar msgpack Memtrace's deliverer sends to Arc."""
    limits = LimitsSettings()
    decoder = msgspec.json.Decoder(list[NewMemory])
    out = []
    now_us = time.time_ns() // 1000
    for r in range(requests):
        base = start + r * size
        items = decoder.decode(_json.encode([memory_item(run, base + i) for i in range(size)]))
        rows = build_rows(org_id, items, now_us + base, limits, True)
        out.append(encode_rows(measurement, rows))
    return out


@dataclass
class LoadResult:
    requests: int
    elapsed_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        return self.pct(0.99)


async def _send_all(url: str, bodies: Sequence[bytes | tuple[bytes, dict[str, str]]], headers: dict[str, str],
                    concurrency: int, method: str = "POST") -> LoadResult:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("loopback only")
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item if isinstance(item, tuple) else (item, headers))
    result = LoadResult(len(bodies), 0.0)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                body, body_headers = queue.get_nowait()
                t0 = time.perf_counter()
                async with session.request(method, url, data=body, headers=body_headers) as resp:
                    await resp.read()
                    result.statuses[resp.status] += 1
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - start
    return result


def send_all(url: str, bodies: Sequence[bytes | tuple[bytes, dict[str, str]]], headers: dict[str, str],
             concurrency: int) -> LoadResult:
    """POST every body (or (body, headers) pair), `concurrency` at a time; latency per request and statuses."""
    return asyncio.run(_send_all(url, bodies, headers, concurrency))


async def _sequential(calls: Sequence[tuple[str, str, bytes | None, dict[str, str]]], warmup: int,
                      check: Callable[[int, bytes], None] | None) -> LoadResult:
    result = LoadResult(0, 0.0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        for i, (method, url, body, headers) in enumerate(calls):
            if not url.startswith("http://127.0.0.1:"):
                raise ValueError("loopback only")
            t0 = time.perf_counter()
            async with session.request(method, url, data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
            dt = (time.perf_counter() - t0) * 1000
            if check is not None:
                check(status, raw)
            if i >= warmup:
                result.latencies_ms.append(dt)
                result.statuses[status] += 1
                result.requests += 1
        result.elapsed_s = time.perf_counter() - start
    return result


def sequential(calls: Sequence[tuple[str, str, bytes | None, dict[str, str]]], warmup: int = 5,
               check: Callable[[int, bytes], None] | None = None) -> LoadResult:
    """Send `calls` one after another (method, url, body, headers); latencies after `warmup` calls."""
    return asyncio.run(_sequential(calls, warmup, check))


Call = tuple[str, str, bytes | None, dict[str, str]]


MIX_CYCLE = ("single",) * 7 + ("batch", "list", "context")
MIX_BATCH = 100


def mix_description(batch: int = MIX_BATCH) -> str:
    counts = Counter(MIX_CYCLE)
    names = {"single": "single POST", "batch": f"POST of {batch} memories", "list": "list of an agent's memories",
             "context": "session context"}
    return f"in every {len(MIX_CYCLE)} requests " + ", ".join(f"{n} × {names[k]}" for k, n in counts.items())


def mixed_calls(base_url: str, key: str, run: str, batch: int = MIX_BATCH) -> Callable[[int], Call]:
    """The n-th call of a steady mixed load, cycling through MIX_CYCLE (see `mix_description`).
    Contents are unique per (run, n)."""
    headers = {"x-api-key": key, "content-type": "application/json"}

    def call(n: int) -> Call:
        kind = MIX_CYCLE[n % len(MIX_CYCLE)]
        if kind == "batch":
            return ("POST", f"{base_url}/api/v1/memories",
                    _json.encode({"memories": [memory_item(f"{run}-b", n * batch + i) for i in range(batch)]}),
                    headers)
        if kind == "list":
            return ("GET", f"{base_url}/api/v1/memories?agent_id=agent_{n % 50}&limit=50", None, headers)
        if kind == "context":
            return ("POST", f"{base_url}/api/v1/sessions/sess_{n % 200}/context", b"{}", headers)
        return ("POST", f"{base_url}/api/v1/memories", _json.encode(memory_item(run, n)), headers)

    return call


async def _run_for(call: Callable[[int], Call], seconds: float, concurrency: int) -> LoadResult:
    result = LoadResult(0, 0.0)
    counter = iter(range(10**12))
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                method, url, body, headers = call(next(counter))
                if not url.startswith("http://127.0.0.1:"):
                    raise ValueError("loopback only")
                t0 = time.perf_counter()
                async with session.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    result.statuses[resp.status] += 1
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.requests += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - start
    return result


def run_for(call: Callable[[int], Call], seconds: float, concurrency: int) -> LoadResult:
    """Send `call(0)`, `call(1)`, … from `concurrency` clients until `seconds` have passed."""
    return asyncio.run(_run_for(call, seconds, concurrency))
