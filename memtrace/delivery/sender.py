"""Sends one flush of pending rows to Arc: requests bounded by rows and bytes, split when Arc refuses the
payload, a row Arc refuses on its own set aside as a dead letter, failing orgs backed off with jitter.

A flush is a pipeline: up to `arc.max_in_flight` requests per Arc target wait for Arc at once, while the next
batch is read from the journal (after a cursor: the last seq taken, so no row is taken twice) and encoded.
On `tools/perf_report.py` P2 (30 × 1,000 memories, 4 concurrent; shared 2-core machine, medians of 3 runs
back to back with the code before) rows in Arc went from 0.24× to 0.29× the direct columnar write with 1 worker
(0.65× to 0.80× of the rows accepted meanwhile) and from 0.29× to 0.34× with 2; with 1 request in flight,
0.26×. The machine's CPU is the bound: delivery running alongside takes CPU from accepting, so the lift comes
from overlap and from less work per row.
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
class _Run:
    """One flush's pipeline: how many requests may be in flight, and whether one failed (then none starts)."""

    limit: int
    failed: bool = False


@dataclass(slots=True)
class _Rows:
    """One request's rows, per org as the journal gave them (oldest first): sent as they are, marked with the
    same batches, split in place when Arc refuses the payload. No per-row copy on the way: measured with
    `perf/test_bench_flush.py::test_sender_flush`, regrouping per-row items cost ~1.7 ms per 1,000 rows of the
    event loop's time."""

    batches: list[PendingBatch]

    def __len__(self) -> int:
        return sum(len(b.seqs) for b in self.batches)

    @property
    def orgs(self) -> list[str]:
        return [b.org_id for b in self.batches]

    def rows(self) -> list[MemoryRow]:
        return self.batches[0].rows if len(self.batches) == 1 else [r for b in self.batches for r in b.rows]

    def split(self, n: int) -> tuple[_Rows, _Rows]:
        """The first `n` rows, and the rest."""
        first: list[PendingBatch] = []
        rest: list[PendingBatch] = []
        for b in self.batches:
            if n >= len(b.seqs):
                first.append(b)
            elif n > 0:
                first.append(PendingBatch(b.org_id, b.seqs[:n], b.rows[:n]))
                rest.append(PendingBatch(b.org_id, b.seqs[n:], b.rows[n:]))
            else:
                rest.append(b)
            n = max(0, n - len(b.seqs))
        return _Rows(first), _Rows(rest)


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
            if not batches:
                return
            rows = _Rows(batches)
            after_seq = max(b.seqs[-1] for b in batches)
            body = self._encode(rows)
            if body is None:  # the orgs back off (`_encode`); no new request starts
                run.failed = True
            while len(sending) >= run.limit and not run.failed:
                done, _ = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                sending -= done
            if run.failed or body is None:  # this batch stays pending, for the retry after the backoff
                return
            sending.add(asyncio.create_task(self._request(org_ids, rows, body, run)))
            if not more:
                return

    def _recovering(self, org_ids: list[str]) -> bool:
        return any(state.failures for org_id in org_ids if (state := self.orgs.get(org_id)) is not None)

    def _encode(self, rows: _Rows) -> bytes | None:
        """The request body for `rows`; None (the orgs back off) when the lead org lost its binding."""
        try:
            return encode_rows(self.registry.get(rows.batches[0].org_id).measurement, rows.rows())
        except MemtraceError as exc:  # unbound since its rows were accepted
            self._failed(rows, exc.message)
            return None

    async def _request(self, org_ids: list[str], rows: _Rows, body: bytes, run: _Run) -> None:
        """One request of a flush, as a task: records its outcome on the flush; never raises."""
        try:
            ok = await self._send(rows, 0, None, run, body)
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

    async def _send(self, rows: _Rows, refused: int, first_refused_at: float | None, run: _Run,
                    body: bytes | None = None) -> bool:
        """Deliver `rows` (oldest first) in one request, or in halves when Arc refuses the payload; a lone
        row Arc refuses for its payload becomes a dead letter. True when every item is delivered or set
        aside; False when the orgs must wait (their rows stay pending)."""
        orgs = rows.orgs
        lead, count = orgs[0], len(rows)
        if body is None:
            body = self._encode(rows)
            if body is None:
                return False
        if len(body) > self.settings.max_batch_bytes and count > 1:
            return await self._send_halves(rows, refused, first_refused_at, run)
        started = time.perf_counter()
        try:
            await self.registry.write(lead, body, sharing=orgs)
        except ArcRejected as exc:
            m().delivery_requests.labels("refused").inc()
            if write_refusal(exc.arc_status, exc.message) != "payload":
                self._binding_refused(orgs, count, exc)
                return False
            first_refused_at = first_refused_at or time.time()
            if count > 1:
                if not refused:
                    log.warning("arc refused a write of %d rows for org %s (HTTP %d); splitting it", count,
                                lead, exc.arc_status)
                return await self._send_halves(rows, refused + 1, first_refused_at, run)
            await self._quarantine(rows.batches[0], exc, refused + 1, first_refused_at)
            return True
        except MemtraceError as exc:
            m().delivery_requests.labels("failed").inc()
            self._failed(rows, exc.message)
            return False
        m().delivery_duration.observe(time.perf_counter() - started)
        m().delivery_requests.labels("ok").inc()
        m().delivery_rows.inc(count)
        await self.journal.mark_delivered(rows.batches)
        if not run.failed:  # a request of this flush failed: its orgs keep the backoff it set
            for org_id in orgs:
                state = self.orgs.setdefault(org_id, OrgState())
                state.failures, state.not_before = 0, 0.0
                state.refused_binding, state.logged_at, state.unlogged = None, 0.0, 0
        return True

    async def _send_halves(self, rows: _Rows, refused: int, first_refused_at: float | None, run: _Run) -> bool:
        first, rest = rows.split(len(rows) // 2)
        return (await self._send(first, refused, first_refused_at, run)
                and await self._send(rest, refused, first_refused_at, run))

    async def _quarantine(self, lone: PendingBatch, exc: ArcRejected, attempts: int, first_refused_at: float
                          ) -> None:
        if await self.journal.dead_letter(lone.org_id, lone.seqs[0], exc.arc_status, exc.message, first_refused_at,
                                          attempts):
            log.error("memory %s of org %s set aside as a dead letter: arc refused it on its own (HTTP %d): %s;"
                      " it stays readable; see: memtrace admin delivery dead-letters", lone.rows[0].id, lone.org_id,
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

    def _failed(self, rows: _Rows, reason: str) -> None:
        """Every org of the request backs off; its rows stay pending, in order."""
        orgs = rows.orgs
        for org_id in orgs:
            self.backoff(self.orgs.setdefault(org_id, OrgState()))
        _throttle.warning(orgs[0], "delivery to Arc failed for org %s and %d more (%d rows wait): %s", orgs[0],
                          len(orgs) - 1, len(rows), reason)

    def backoff(self, state: OrgState) -> None:
        state.failures += 1
        _defer(state, self.settings.retry_base_ms / 1000, self.settings.retry_max_ms / 1000)


def _defer(state: OrgState, base_s: float, max_s: float) -> None:
    """The org waits the exponential backoff of its failures so far, with jitter (half to all of it)."""
    delay = supervise.backoff_s(state.failures, base_s, max_s)
    state.not_before = time.monotonic() + random.uniform(delay / 2, delay)

