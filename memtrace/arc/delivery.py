"""Moves journaled memories to each org's Arc: batched per org, in order, retried, never dropped.

One process of the host holds the `deliverer` lease and does all delivery, so every org's rows leave in
acceptance order and the batch grows to `batch_size` whichever worker accepted them. The other workers
only journal; if the holder dies, another takes the lease (at once when the holder's pid is gone).

Per org: flush when `batch_size` rows wait or the oldest has waited `flush_interval_ms`. Flushes of one
org never wait on another org (one task per org in flight); a failing org backs off exponentially with
jitter while the others go on. After a crash a batch may be sent twice; readers de-duplicate by id.

With a shared PostgreSQL (several hosts, `journal/pg.py`) delivery is spread: Arc targets hash into
`delivery.buckets` lease rows, each host holds at most its share of the live hosts, and a dead host's buckets
move within the lease TTL. The `deliverer` lease then only picks the host that prunes and runs retention.

A request holds at most `batch_size` rows and `max_batch_bytes` encoded bytes. When Arc refuses one for its
payload (413, or a 4xx naming the payload: see `client.write_refusal`) it is sent again in halves, in
order, and a row Arc refuses on its own is set aside as a dead letter (`journal/deadletter.py`), so one
memory Arc can never take does not hold back its org, or the orgs sharing its Arc target, for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib
from dataclasses import dataclass

from memtrace import supervise
from memtrace.arc.binding import ArcBinding
from memtrace.arc.client import write_refusal
from memtrace.arc.encode import encode_rows
from memtrace.arc.registry import ArcRegistry
from memtrace.config import ArcSettings
from memtrace.errors import ArcRejected, MemtraceError, StoreUnavailable
from memtrace.journal import Journal, PendingBatch, holder_id
from memtrace.logs import Throttle
from memtrace.memory.model import MemoryRow
from memtrace.metrics import m

log = logging.getLogger("memtrace.delivery")
_throttle = Throttle(log)  # a failing Arc retries often: one line per org and interval, with a count

# A refused binding (401/403, unknown database, ...) needs a person: retry slowly, log rarely.
BINDING_BACKOFF_BASE_S = 2.0
BINDING_BACKOFF_MAX_S = 60.0
LEASE_NAME = "deliverer"
LEASE_TTL_S = 5.0
PRUNE_EVERY_S = 2.0


@dataclass(slots=True)
class _OrgState:
    failures: int = 0
    not_before: float = 0.0
    task: asyncio.Task[None] | None = None
    # Set while Arc refuses the org's binding (token, database, ...): cleared when the binding changes.
    refused_binding: ArcBinding | None = None
    logged_at: float = 0.0
    unlogged: int = 0


@dataclass(slots=True)
class DeliveryStats:
    """Counts since start, for metrics."""

    requests: int = 0
    rows: int = 0
    failures: int = 0
    refused: int = 0  # requests Arc refused for their payload (each one is split or quarantined)
    dead_lettered: int = 0
    binding_refused: int = 0  # requests Arc refused for the binding (401/403/...): they wait, nothing is dropped
    crashed: int = 0  # unexpected exceptions in a flush (logged; the orgs back off and go on)


@dataclass(slots=True)
class _Item:
    org_id: str
    seq: int
    row: MemoryRow


def _batches(items: list[_Item]) -> list[PendingBatch]:
    """Items grouped per org, in order, as the journal marks them."""
    batches: dict[str, PendingBatch] = {}
    for item in items:
        batch = batches.setdefault(item.org_id, PendingBatch(item.org_id, [], []))
        batch.seqs.append(item.seq)
        batch.rows.append(item.row)
    return list(batches.values())


class Deliverer:
    """Runs in every worker; acts only while it holds the lease."""

    def __init__(self, journal: Journal, registry: ArcRegistry, settings: ArcSettings, buckets: int = 16) -> None:
        self.journal = journal
        self.nbuckets = buckets
        # The target buckets this process delivers (shared journal only); None: all, while it holds the lease.
        self.buckets: frozenset[int] | None = None
        self.registry = registry
        self.settings = settings
        self.holder = holder_id()
        self.is_leader = False
        self.stats = DeliveryStats()
        self._orgs: dict[str, _OrgState] = {}
        self._wakeup = asyncio.Event()
        self._fresh: dict[str, int] = {}  # rows committed here since the last schedule, per org
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        journal.on_commit.append(self._on_commit)

    def start(self) -> None:
        self._task = supervise.start("deliverer", self._run)

    def _on_commit(self, stored: dict[str, int]) -> None:
        """Wake before the next tick only when an org has a full batch waiting (from this process)."""
        if not self._delivering:
            return
        for org_id, n in stored.items():
            total = self._fresh.get(org_id, 0) + n
            self._fresh[org_id] = total
            if total >= self.settings.batch_size:
                self._wakeup.set()

    @property
    def _delivering(self) -> bool:
        return bool(self.buckets) if self.buckets is not None else self.is_leader

    def _mine(self, target: tuple[str, ...]) -> bool:
        return self.buckets is None or zlib.crc32("\0".join(target).encode()) % self.nbuckets in self.buckets

    @property
    def _tick_s(self) -> float:
        return min(self.settings.flush_interval_ms / 1000 / 4, 0.1)

    async def _run(self) -> None:
        last_lease = last_prune = 0.0
        failures = 0
        while not self._stopping:
            now = time.monotonic()
            if now - last_lease >= 1.0:
                try:
                    self.buckets = await self.journal.claim_buckets(self.holder, self.nbuckets, LEASE_TTL_S)
                    self.is_leader = await self.journal.try_lease(LEASE_NAME, self.holder, LEASE_TTL_S)
                except Exception as exc:
                    if isinstance(exc, StoreUnavailable):  # the shared database is away: one line, not a trace
                        _throttle.warning("lease", "delivery lease renewal failed: %s", exc)
                    else:
                        log.exception("lease renewal failed")
                    self.is_leader = False
                    self.buckets = None if self.buckets is None else frozenset()
                last_lease = now
            if self._delivering:
                try:
                    await self._schedule()
                    if self.is_leader and now - last_prune >= PRUNE_EVERY_S:
                        await self.journal.prune()
                        last_prune = now
                    failures = 0
                except Exception as exc:
                    failures += 1
                    if isinstance(exc, StoreUnavailable):
                        _throttle.warning("schedule", "delivery paused (%d in a row): %s", failures, exc)
                    else:
                        log.exception("delivery scheduling failed (%d in a row)", failures)
            wait = supervise.backoff_s(failures, self._tick_s) if failures else self._tick_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
            self._wakeup.clear()

    async def _schedule(self) -> None:
        """Flush every Arc target with a due org: a full batch waits, or the oldest row waited the interval.

        Orgs bound to one Arc database and measurement form one target, and a due target takes along its
        other waiting orgs too: many small orgs then cost one request per interval, not one each.
        """
        self._fresh.clear()
        now_wall = time.time()
        now = time.monotonic()
        interval = self.settings.flush_interval_ms / 1000
        waiting: dict[tuple[str, ...], list[str]] = {}
        due: set[tuple[str, ...]] = set()
        for backlog in await self.journal.backlog():
            state = self._orgs.setdefault(backlog.org_id, _OrgState())
            if state.refused_binding is not None and state.refused_binding != self._binding(backlog.org_id):
                # The operator changed the binding Arc refused: try the new one now, not after a long backoff.
                state.refused_binding, state.failures, state.not_before = None, 0, 0.0
            if (state.task is not None and not state.task.done()) or now < state.not_before:
                continue
            target = self._target(backlog.org_id)
            if not self._mine(target):
                continue
            waiting.setdefault(target, []).append(backlog.org_id)
            if backlog.pending >= self.settings.batch_size or now_wall - backlog.oldest_accepted_at >= interval:
                due.add(target)
        for org_ids in (waiting[target] for target in due):
            task = asyncio.create_task(self._flush(org_ids), name=f"flush-{org_ids[0]}")
            for org_id in org_ids:
                self._orgs[org_id].task = task

    def _binding(self, org_id: str) -> ArcBinding | None:
        try:
            return self.registry.get(org_id)
        except MemtraceError:
            return None

    def _target(self, org_id: str) -> tuple[str, ...]:
        """Orgs bound to the same Arc database and measurement share write requests (rows carry org_id)."""
        try:
            b = self.registry.get(org_id)
        except MemtraceError:
            return ("unbound", org_id)
        return (b.url, b.database, b.measurement, b.api_key or "")

    async def _flush(self, org_ids: list[str]) -> None:
        """Send these orgs' pending rows, oldest first, in requests of up to `batch_size` rows and
        `max_batch_bytes` bytes, until none is left or Arc fails (then every org of the request backs off;
        its rows stay pending, in order). Never raises: an unexpected error is logged and backs the orgs off."""
        try:
            while True:
                batches, more = await self.journal.take_pending(org_ids, self.settings.batch_size,
                                                                self.settings.max_batch_bytes)
                items = [_Item(b.org_id, seq, row) for b in batches
                         for seq, row in zip(b.seqs, b.rows, strict=True)]
                if not items or not await self._send(items, 0, None) or not more:
                    return
        except Exception:
            self.stats.crashed += 1
            log.exception("delivery flush for org %s and %d more failed unexpectedly; they back off and retry",
                          org_ids[0], len(org_ids) - 1)
            for org_id in org_ids:
                self._backoff(self._orgs.setdefault(org_id, _OrgState()))

    async def _send(self, items: list[_Item], refused: int, first_refused_at: float | None) -> bool:
        """Deliver `items` (oldest first) in one request, or in halves when Arc refuses the payload; a lone
        row Arc refuses for its payload becomes a dead letter. True when every item is delivered or set
        aside; False when the orgs must wait (their rows stay pending, in order)."""
        lead = items[0].org_id
        try:
            body = encode_rows(self.registry.get(lead).measurement, [item.row for item in items])
        except MemtraceError as exc:  # unbound since its rows were accepted
            self._failed(items, exc.message)
            return False
        if len(body) > self.settings.max_batch_bytes and len(items) > 1:
            return await self._send_halves(items, refused, first_refused_at)
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
            self.stats.refused += 1
            if len(items) > 1:
                if not refused:
                    log.warning("arc refused a write of %d rows for org %s (HTTP %d); splitting it", len(items),
                                lead, exc.arc_status)
                return await self._send_halves(items, refused + 1, first_refused_at)
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
        for batch in batches:
            state = self._orgs.setdefault(batch.org_id, _OrgState())
            state.failures, state.not_before = 0, 0.0
            state.refused_binding, state.logged_at, state.unlogged = None, 0.0, 0
        self.stats.requests += 1
        self.stats.rows += len(items)
        return True

    async def _send_halves(self, items: list[_Item], refused: int, first_refused_at: float | None) -> bool:
        middle = len(items) // 2
        return (await self._send(items[:middle], refused, first_refused_at)
                and await self._send(items[middle:], refused, first_refused_at))

    async def _quarantine(self, item: _Item, exc: ArcRejected, attempts: int, first_refused_at: float) -> None:
        if await self.journal.dead_letter(item.org_id, item.seq, exc.arc_status, exc.message, first_refused_at,
                                          attempts):
            self.stats.dead_lettered += 1
            log.error("memory %s of org %s set aside as a dead letter: arc refused it on its own (HTTP %d): %s;"
                      " it stays readable; see: memtrace admin delivery dead-letters", item.row.id, item.org_id,
                      exc.arc_status, exc.message)

    def _binding_refused(self, orgs: list[str], waiting: int, exc: ArcRejected) -> None:
        """Arc refuses these orgs' binding (bad token, database, ...): every row would fail alike, so nothing is
        dead-lettered; wait up to a long cap, log at most once per cap per org, retry at once on a new binding."""
        self.stats.binding_refused += 1
        now = time.monotonic()
        for org_id in orgs:
            state = self._orgs.setdefault(org_id, _OrgState())
            state.refused_binding = self._binding(org_id)
            state.failures += 1
            delay = supervise.backoff_s(state.failures, BINDING_BACKOFF_BASE_S, BINDING_BACKOFF_MAX_S)
            state.not_before = now + random.uniform(delay / 2, delay)
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
            self._backoff(self._orgs.setdefault(org_id, _OrgState()))
        self.stats.failures += 1
        _throttle.warning(orgs[0], "delivery to Arc failed for org %s and %d more (%d rows wait): %s", orgs[0],
                          len(orgs) - 1, len(items), reason)

    def _backoff(self, state: _OrgState) -> None:
        state.failures += 1
        base = self.settings.retry_base_ms / 1000
        cap = self.settings.retry_max_ms / 1000
        delay = min(cap, base * 2 ** min(state.failures - 1, 16))
        state.not_before = time.monotonic() + random.uniform(delay / 2, delay)

    async def stop(self, deadline_s: float) -> None:
        """Flush what can be flushed within the deadline; the rest stays in the journal."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._delivering:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), timeout=deadline_s)
        if self.is_leader:
            await self.journal.release_lease(LEASE_NAME, self.holder)
        if self.buckets is not None:
            with contextlib.suppress(Exception):
                await self.journal.release_buckets(self.holder)
        tasks = [s.task for s in self._orgs.values() if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        for state in self._orgs.values():
            if state.task is not None:
                await asyncio.gather(state.task, return_exceptions=True)
        due: dict[tuple[str, ...], list[str]] = {}
        for backlog in await self.journal.backlog():
            target = self._target(backlog.org_id)
            if self._mine(target):
                due.setdefault(target, []).append(backlog.org_id)
        for org_ids in due.values():
            await self._flush(org_ids)
