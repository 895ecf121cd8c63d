"""Moves journaled memories to each org's Arc: batched per org, in order, retried, never dropped.

One process of the host holds the `deliverer` lease and does all delivery, so every org's rows leave in
acceptance order and the batch grows to `batch_size` whichever worker accepted them. The other workers
only journal; if the holder dies, another takes the lease (at once when the holder's pid is gone).

Per org: flush when `batch_size` rows wait or the oldest has waited `flush_interval_ms`. Flushes of one
org never wait on another org (one flush task per Arc target, with up to `arc.max_in_flight` requests in
flight: `sender.py`); a failing org backs off exponentially with jitter while the others go on. After a crash
a batch may be sent twice, and after a failed request its rows may arrive after later ones; readers
de-duplicate by id and order by time.

One flush (`sender.py`): a request holds at most `batch_size` rows and `max_batch_bytes` encoded bytes.
When Arc refuses one for its payload (413, or a 4xx naming the payload: see `arc.client.write_refusal`)
it is sent again in halves, in order, and a row Arc refuses on its own is set aside as a dead letter
(`journal/deadletter.py`), so one memory Arc can never take does not hold back its org, or the orgs
sharing its Arc target, for ever.

With a shared PostgreSQL (several hosts, `journal/pg.py`) delivery is spread: Arc targets hash into
`delivery.buckets` lease rows, each host holds at most its share of the live hosts, and a dead host's buckets
move within the lease TTL. The `deliverer` lease then only picks the host that prunes and runs retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib

from memtrace import supervise
from memtrace.arc.registry import ArcRegistry
from memtrace.config import ArcSettings
from memtrace.delivery.sender import OrgState, Sender
from memtrace.errors import MemtraceError, StoreUnavailable
from memtrace.journal import Journal, holder_id
from memtrace.logs import Throttle

log = logging.getLogger("memtrace.delivery")

LEASE_NAME = "deliverer"
LEASE_TTL_S = 5.0
PRUNE_EVERY_S = 2.0
_throttle = Throttle(log)  # the shared database away: one line per interval, not one per tick


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
        self.sender = Sender(journal, registry, settings)
        self._orgs = self.sender.orgs
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
            # Early wakeups (a flush ended, a full batch committed here) rescan at most every quarter tick: with
            # hundreds of Arc targets, flushes end all the time and the scan of every org's backlog would run
            # back to back (measured with 1,000 orgs in their own databases: +43 µs of event loop and +34 µs of
            # journal thread per request).
            gap = self._tick_s / 4 - (time.monotonic() - now)
            if gap > 0 and not self._stopping:
                await asyncio.sleep(gap)

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
            state = self._orgs.setdefault(backlog.org_id, OrgState())
            if state.refused_binding is not None and state.refused_binding != self.sender.binding(backlog.org_id):
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
            task = asyncio.create_task(self.sender.flush(org_ids), name=f"flush-{org_ids[0]}")
            # Look again as soon as it ends: rows committed meanwhile (by another worker, or while its last
            # requests were in flight) go at once when a batch is full, not at the next tick.
            task.add_done_callback(self._flush_ended)
            for org_id in org_ids:
                self._orgs[org_id].task = task

    def _flush_ended(self, _task: asyncio.Task[None]) -> None:
        if not self._stopping:
            self._wakeup.set()

    def _target(self, org_id: str) -> tuple[str, ...]:
        """Orgs bound to the same Arc database and measurement share write requests (rows carry org_id)."""
        try:
            b = self.registry.get(org_id)
        except MemtraceError:
            return ("unbound", org_id)
        return (b.url, b.database, b.measurement, b.api_key or "")

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
            await self.sender.flush(org_ids)
