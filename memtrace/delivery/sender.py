"""Sends one flush of pending rows to Arc: requests bounded by rows and bytes, split when Arc refuses the
payload, a row Arc refuses on its own set aside as a dead letter, failing orgs backed off with jitter.

A flush is a pipeline: up to `arc.max_in_flight` requests per Arc target wait for Arc at once, while the next
batch is read from the journal (after a cursor: the last seq taken, so no row is taken twice) and encoded.
Measured with `tools/perf_report.py` P2 (30 × 1,000 memories): see the commit log and issue 12 for numbers.
When a request fails no new one starts, those in flight finish and are marked, and the orgs back off; the
failed rows stay pending and go in a later flush, possibly after rows accepted later. So rows can reach Arc
out of acceptance order (as they could already be delivered twice after a crash): readers de-duplicate by id
and order by time, never by arrival.

The scheduling (which orgs flush when, the lease) is `deliverer.py`; this module owns each org's delivery
state (backoff, a refused binding) and is the only writer of the delivery metrics.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from memtrace import supervise
from memtrace.arc.binding import ArcBinding
from memtrace.arc.client import write_refusal
from memtrace.arc.encode import encode_rows
from memtrace.arc.registry import ArcRegistry
from memtrace.config import ArcSettings
from memtrace.errors import ArcRejected, MemtraceError
from memtrace.journal import Journal, PendingBatch
from memtrace.logs import Throttle
from memtrace.metrics import m
from memtrace.rows import MemoryRow

log = logging.getLogger("memtrace.delivery")
_throttle = Throttle(log)  # a failing Arc retries often: one line per org and interval, with a count

# A refused binding (401/403, unknown database, ...) needs a person: retry slowly, log rarely.
BINDING_BACKOFF_BASE_S = 2.0
BINDING_BACKOFF_MAX_S = 60.0


@dataclass(slots=True)
class OrgState:
    failures: int = 0
    not_before: float = 0.0
    task: asyncio.Task[None] | None = None
    # Set while Arc refuses the org's binding (token, database, ...): cleared when the binding changes.
    refused_binding: ArcBinding | None = None
    logged_at: float = 0.0
    unlogged: int = 0


@dataclass(slots=True)
class _Item:
    org_id: str
    seq: int
    row: MemoryRow


@dataclass(slots=True)
class _Run:
    """One flush's pipeline: how many requests may be in flight, and whether one failed (then none starts)."""

    limit: int
    failed: bool = False


def _batches(items: list[_Item]) -> list[PendingBatch]:
    """Items grouped per org, in order, as the journal marks them."""
    batches: dict[str, PendingBatch] = {}
    for item in items:
        batch = batches.setdefault(item.org_id, PendingBatch(item.org_id, [], []))
        batch.seqs.append(item.seq)
        batch.rows.append(item.row)
    return list(batches.values())


class Sender:
    """Flushes orgs' pending rows to their Arc and keeps each org's delivery state (`orgs`)."""

    def __init__(self, journal: Journal, registry: ArcRegistry, settings: ArcSettings) -> None:
        self.journal = journal
        self.registry = registry
        self.settings = settings
        self.orgs: dict[str, OrgState] = {}

    def binding(self, org_id: str) -> ArcBinding | None:
        try:
            return self.registry.get(org_id)
        except MemtraceError:
            return None

    async def flush(self, org_ids: list[str]) -> None:
        """Send these orgs' pending rows, oldest first, in requests of up to `batch_size` rows and
        `max_batch_bytes` bytes, until none is left or Arc fails (then every org of the failed request backs
        off; its rows stay pending). Up to `max_in_flight` requests are in flight at once: the next batch is
        read and encoded while earlier ones wait for Arc. After a failure no new request starts; those in
        flight finish and mark what Arc took. A flush of orgs still backing off starts with one request (a
        probe) and widens after its first success. Never raises: an unexpected error is logged and backs the
        orgs off."""
        run = _Run(limit=1 if self._recovering(org_ids) else self.settings.max_in_flight)
        sending: set[asyncio.Task[None]] = set()
        try:
            try:
                await self._pipeline(org_ids, run, sending)
            except Exception:
                run.failed = True
                self._unexpected(org_ids)
            if sending:  # let the requests in flight finish and mark what Arc took
                await asyncio.wait(sending)
        finally:
            for task in sending:  # cancelled (shutdown): requests still in flight go with it
                task.cancel()
            await asyncio.gather(*sending, return_exceptions=True)

    async def _pipeline(self, org_ids: list[str], run: _Run, sending: set[asyncio.Task[None]]) -> None:
        """Read, encode and start requests until none is left, a request failed, or a read ended short."""
        after_seq = 0  # the cursor: rows in flight are not marked yet, and must not be taken again
        while not run.failed:
            batches, more = await self.journal.take_pending(org_ids, self.settings.batch_size,
                                                            self.settings.max_batch_bytes, after_seq)
            items = [_Item(b.org_id, seq, row) for b in batches for seq, row in zip(b.seqs, b.rows, strict=True)]
            if not items:
                return
            after_seq = max(b.seqs[-1] for b in batches)
            body = self._encode(items)
            run.failed = run.failed or body is None
            while len(sending) >= run.limit and not run.failed:
                done, _ = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                sending -= done
            if run.failed or body is None:  # this batch stays pending, for the retry after the backoff
                return
            sending.add(asyncio.create_task(self._request(org_ids, items, body, run)))
            if not more:
                return

    def _recovering(self, org_ids: list[str]) -> bool:
        return any(state.failures for org_id in org_ids if (state := self.orgs.get(org_id)) is not None)

    def _encode(self, items: list[_Item]) -> bytes | None:
        """The request body for `items`; None (the orgs back off) when the lead org lost its binding."""
        try:
            return encode_rows(self.registry.get(items[0].org_id).measurement, [item.row for item in items])
        except MemtraceError as exc:  # unbound since its rows were accepted
            self._failed(items, exc.message)
            return None

    async def _request(self, org_ids: list[str], items: list[_Item], body: bytes, run: _Run) -> None:
        """One request of a flush, as a task: records its outcome on the flush; never raises."""
        try:
            ok = await self._send(items, 0, None, run, body)
        except Exception:
            self._unexpected(org_ids)
            ok = False
        if ok:
            run.limit = self.settings.max_in_flight
        else:
            run.failed = True

    def _unexpected(self, org_ids: list[str]) -> None:
        log.exception("delivery flush for org %s and %d more failed unexpectedly; they back off and retry",
                      org_ids[0], len(org_ids) - 1)
        for org_id in org_ids:
            self.backoff(self.orgs.setdefault(org_id, OrgState()))

    async def _send(self, items: list[_Item], refused: int, first_refused_at: float | None, run: _Run,
                    body: bytes | None = None) -> bool:
        """Deliver `items` (oldest first) in one request, or in halves when Arc refuses the payload; a lone
        row Arc refuses for its payload becomes a dead letter. True when every item is delivered or set
        aside; False when the orgs must wait (their rows stay pending)."""
        lead = items[0].org_id
        if body is None:
            body = self._encode(items)
            if body is None:
                return False
        if len(body) > self.settings.max_batch_bytes and len(items) > 1:
            return await self._send_halves(items, refused, first_refused_at, run)
        orgs = list(dict.fromkeys(item.org_id for item in items))
        started = time.perf_counter()
        try:
            await self.registry.write(lead, body, sharing=orgs)
        except ArcRejected as exc:
            m().delivery_requests.labels("refused").inc()
            if write_refusal(exc.arc_status, exc.message) != "payload":
                self._binding_refused(orgs, len(items), exc)
                return False
            first_refused_at = first_refused_at or time.time()
            if len(items) > 1:
                if not refused:
                    log.warning("arc refused a write of %d rows for org %s (HTTP %d); splitting it", len(items),
                                lead, exc.arc_status)
                return await self._send_halves(items, refused + 1, first_refused_at, run)
            await self._quarantine(items[0], exc, refused + 1, first_refused_at)
            return True
        except MemtraceError as exc:
            m().delivery_requests.labels("failed").inc()
            self._failed(items, exc.message)
            return False
        m().delivery_duration.observe(time.perf_counter() - started)
        m().delivery_requests.labels("ok").inc()
        m().delivery_rows.inc(len(items))
        batches = _batches(items)
        await self.journal.mark_delivered(batches)
        if not run.failed:  # a request of this flush failed: its orgs keep the backoff it set
            for batch in batches:
                state = self.orgs.setdefault(batch.org_id, OrgState())
                state.failures, state.not_before = 0, 0.0
                state.refused_binding, state.logged_at, state.unlogged = None, 0.0, 0
        return True

    async def _send_halves(self, items: list[_Item], refused: int, first_refused_at: float | None, run: _Run
                           ) -> bool:
        middle = len(items) // 2
        return (await self._send(items[:middle], refused, first_refused_at, run)
                and await self._send(items[middle:], refused, first_refused_at, run))

    async def _quarantine(self, item: _Item, exc: ArcRejected, attempts: int, first_refused_at: float) -> None:
        if await self.journal.dead_letter(item.org_id, item.seq, exc.arc_status, exc.message, first_refused_at,
                                          attempts):
            log.error("memory %s of org %s set aside as a dead letter: arc refused it on its own (HTTP %d): %s;"
                      " it stays readable; see: memtrace admin delivery dead-letters", item.row.id, item.org_id,
                      exc.arc_status, exc.message)

    def _binding_refused(self, orgs: list[str], waiting: int, exc: ArcRejected) -> None:
        """Arc refuses these orgs' binding (bad token, database, ...): every row would fail alike, so nothing is
        dead-lettered; wait up to a long cap, log at most once per cap per org, retry at once on a new binding."""
        now = time.monotonic()
        for org_id in orgs:
            state = self.orgs.setdefault(org_id, OrgState())
            state.refused_binding = self.binding(org_id)
            state.failures += 1
            _defer(state, BINDING_BACKOFF_BASE_S, BINDING_BACKOFF_MAX_S)
            if state.logged_at and now - state.logged_at < BINDING_BACKOFF_MAX_S:
                state.unlogged += 1
                continue
            log.error("arc refuses the binding of org %s (HTTP %d; %d rows wait, kept; %d more refusals not logged):"
                      " %s; fix it with: memtrace admin org add-arc", org_id, exc.arc_status, waiting,
                      state.unlogged, exc.message)
            state.logged_at, state.unlogged = now, 0

    def _failed(self, items: list[_Item], reason: str) -> None:
        """Every org of the request backs off; its rows stay pending, in order."""
        orgs = list(dict.fromkeys(item.org_id for item in items))
        for org_id in orgs:
            self.backoff(self.orgs.setdefault(org_id, OrgState()))
        _throttle.warning(orgs[0], "delivery to Arc failed for org %s and %d more (%d rows wait): %s", orgs[0],
                          len(orgs) - 1, len(items), reason)

    def backoff(self, state: OrgState) -> None:
        state.failures += 1
        _defer(state, self.settings.retry_base_ms / 1000, self.settings.retry_max_ms / 1000)


def _defer(state: OrgState, base_s: float, max_s: float) -> None:
    """The org waits the exponential backoff of its failures so far, with jitter (half to all of it)."""
    delay = supervise.backoff_s(state.failures, base_s, max_s)
    state.not_before = time.monotonic() + random.uniform(delay / 2, delay)

