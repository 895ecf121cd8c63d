"""Pipelined delivery (`arc.max_in_flight`): several write requests per Arc target in flight at once, each row
taken once, and a failure in the middle of the pipeline losing nothing and duplicating nothing.

The store is a small real HTTP server in this process that records what Arc would see: how many writes are
in flight at once, and every memory id it took. It holds the first writes until the expected number are in
flight together (at most a second), so the overlap does not depend on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import web

from memtrace.arc.binding import ArcBinding
from tests.procs import free_port
from tests.test_delivery_never_wedges import delivery, rows
from tests.waiting import wait_until_async


class RecordingStore:
    """Arc's write endpoint: answers 204 and records the ids, or 503 for the requests named in `fail` (1-based)
    and for every request while `down`."""

    def __init__(self, hold_until: int, fail: frozenset[int] = frozenset(), hold_s: float = 1.0) -> None:
        self.hold_until = hold_until
        self.hold_s = hold_s
        self.fail = fail
        self.down = False
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.ids: Counter[str] = Counter()
        self._gate = asyncio.Event()
        self._failed = asyncio.Event()
        self.url = ""

    async def write(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        n = self.requests
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.in_flight >= self.hold_until:
                self._gate.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gate.wait(), self.hold_s)
            if self.down or n in self.fail:
                self._failed.set()
                return web.json_response({"error": "injected outage"}, status=503)
            if self.fail and n <= max(self.fail):  # answer the failure first, so it is known before a slot frees
                await self._failed.wait()
                await asyncio.sleep(0.2)  # a head start for the failed answer to reach the deliverer (no hook)
            self.ids.update(msgspec.msgpack.decode(body)["columns"]["id"])
            return web.Response(status=204)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._gate.clear()  # the next burst is held again


@contextlib.asynccontextmanager
async def serving(store: RecordingStore) -> AsyncIterator[RecordingStore]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/v1/write/msgpack", store.write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store.url = f"http://127.0.0.1:{port}"
    try:
        yield store
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("max_in_flight", [1, 3])
async def test_one_target_has_up_to_max_in_flight_writes_at_once_and_each_row_arrives_once(
        tmp_path: object, max_in_flight: int) -> None:
    """Before: one write per target at a time, whatever the backlog (the store saw 1 in flight)."""
    async with serving(RecordingStore(hold_until=max_in_flight)) as store:
        binding = ArcBinding("acme", store.url, "db_acme", "events")
        async with delivery(tmp_path, [binding], batch_size=100, max_in_flight=max_in_flight) as d:  # type: ignore[arg-type]
            batch = rows("acme", 600)
            await d.journal.append("acme", batch)
            d.deliverer.start()

            async def drained() -> bool:
                return await d.journal.pending_total("acme") == 0

            await wait_until_async(drained, "every row delivered", 15)
        assert store.most_in_flight == max_in_flight
        assert store.requests == 6
        assert store.ids == Counter(r.id for r in batch)  # every row once: none taken twice while in flight


async def test_a_failure_mid_pipeline_keeps_the_unconfirmed_rows_pending_and_delivers_them_once_later(
        tmp_path: object) -> None:
    """Three writes in flight; Arc fails the middle one. The other two are marked delivered, nothing new starts,
    the failed batch and the rest stay pending, and after the backoff every row is in Arc exactly once."""
    async with serving(RecordingStore(hold_until=3, fail=frozenset({2}))) as store:
        binding = ArcBinding("acme", store.url, "db_acme", "events")
        settings = {"batch_size": 100, "max_in_flight": 3, "retry_base_ms": 2000, "retry_max_ms": 2000}
        async with delivery(tmp_path, [binding], **settings) as d:  # type: ignore[arg-type]
            batch = rows("acme", 600)
            await d.journal.append("acme", batch)
            d.deliverer.start()

            async def first_flush_over() -> bool:
                return store.requests >= 3 and store.in_flight == 0 and \
                    await d.journal.pending_total("acme") == 400

            await wait_until_async(first_flush_over, "the first flush to end after the failure", 10)
            assert store.requests == 3, "no new request may start after a failure"
            confirmed = {r.id for r in batch[:100]} | {r.id for r in batch[200:300]}
            assert set(store.ids) == confirmed
            pending = await d.journal.pending_batches(["acme"], 1000)
            assert {r.id for b in pending for r in b.rows} == {r.id for r in batch} - confirmed

            async def drained() -> bool:
                return await d.journal.pending_total("acme") == 0

            await wait_until_async(drained, "the failed and the remaining rows delivered after the backoff", 15)
        assert store.ids == Counter(r.id for r in batch)


async def test_while_arc_is_down_a_flush_sends_one_request_not_a_burst(tmp_path: object) -> None:
    """After a failure the org probes with one request per flush, so an outage does not cost `max_in_flight`
    failed requests (and breaker strikes) per retry. The store holds a lone write 0.2 s, so a second one
    sent alongside would be seen in flight with it."""
    async with serving(RecordingStore(hold_until=2, hold_s=0.2)) as store:
        store.down = True
        binding = ArcBinding("acme", store.url, "db_acme", "events")
        settings = {"batch_size": 100, "max_in_flight": 4, "retry_base_ms": 50, "retry_max_ms": 100,
                    "breaker_failures": 1000}
        async with delivery(tmp_path, [binding], **settings) as d:  # type: ignore[arg-type]
            batch = rows("acme", 600)
            await d.journal.append("acme", batch)
            d.deliverer.start()

            async def first_flush_failed() -> bool:
                return store.requests >= 1 and store.in_flight == 0

            await wait_until_async(first_flush_failed, "the first flush to fail", 10)
            first = store.requests
            store.most_in_flight = 0

            async def retried() -> bool:
                return store.requests >= first + 5

            await wait_until_async(retried, "several retries against the failing store", 10)
            assert store.most_in_flight == 1
            store.down = False

            async def drained() -> bool:
                return await d.journal.pending_total("acme") == 0

            await wait_until_async(drained, "delivery once the store is back", 10)
        assert store.ids == Counter(r.id for r in batch)
