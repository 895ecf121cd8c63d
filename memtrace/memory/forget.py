"""Forgetting: record a deletion durably, apply it to the org's Arc, and finish it once Arc's buffer settled.

    forget(org, filter)   dry-run count on Arc (a refusing Arc fails here, before anything changes) →
                          journal records the deletion, dropping pending rows and ledger keys (one transaction) →
                          apply on Arc now; if Arc is unreachable the answer says `pending` (HTTP 202)
    apply(deletion)       release the ledger keys of the org's rows in Arc within the dedup window → Arc delete
                          (split by time range past Arc's max_rows_per_delete) → journal: pending → settling
    run()                 background (delivery lease holder only): applies due deletions — pending ones whose
                          request died or found Arc down, and settling ones a second time once Arc's buffer age
                          has passed, after which the deletion is finished and reads stop hiding its filter

Every `where` comes from `query.delete_condition`, scoped by `org_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from memtrace import timeutil
from memtrace.arc.registry import ArcRegistry
from memtrace.errors import ArcDeleteRefused, ArcRejected, ArcUnavailable, MemtraceError, NoArcInstance
from memtrace.journal import Deletion, Journal
from memtrace.memory import query
from memtrace.rows import MemoryFilter
from memtrace.timeutil import parse_arc_time

log = logging.getLogger("memtrace.forget")

APPLY_EVERY_S = 0.5
RETRY_S = 2.0
REFUSED_RETRY_S = 60.0
MAX_SPLIT_DEPTH = 20


@dataclass(slots=True)
class Forgotten:
    """What a forget did: rows matched (Arc + journal), and whether Arc still has to confirm."""

    matched: int
    pending: bool


class Forgetter:
    def __init__(self, journal: Journal, registry: ArcRegistry, *, settle_s: float, dedup_window_s: int,
                 claim_s: float) -> None:
        self.journal = journal
        self.registry = registry
        self.settle_s = settle_s
        self.dedup_window_s = dedup_window_s
        self.claim_s = claim_s

    # --- request path --------------------------------------------------------------------------------

    async def count(self, org_id: str, f: MemoryFilter) -> int:
        """A dry run: the org's rows matching `f` in Arc, those still waiting in the journal, and those Arc
        took but does not show yet (its buffer)."""
        in_arc = await self._arc_count(org_id, f)
        waiting = await self.journal.undelivered_matching(org_id, f)
        return in_arc + waiting + await self._unseen(org_id, await self.journal.delivered_ids_matching(org_id, f))

    async def _unseen(self, org_id: str, ids: tuple[str, ...]) -> int:
        """How many of `ids` (delivered to Arc) Arc does not show yet: its delete and dry run read only flushed
        data, so rows in its ingest buffer are neither counted nor deleted by them (the settle pass deletes
        them). A flush between the dry run and this query can make one row count in neither."""
        if not ids:
            return 0
        binding = self.registry.get(org_id)
        found = await self.registry.query(org_id, query.select_ids(binding.measurement, org_id, ids))
        shown = {row.id for row in query.rows_from_arc(found.columns, found.data)}
        return len(set(ids) - shown)

    async def _arc_count(self, org_id: str, f: MemoryFilter) -> int:
        """Arc's dry run (a refusing Arc raises ArcDeleteRefused here, before anything changes). `confirm`
        because Arc refuses even a dry run over its confirmation threshold without it; past its
        max_rows_per_delete it refuses anyway, then the rows are counted with a SELECT."""
        try:
            dry = await self.registry.delete(org_id, query.delete_condition(org_id, f), dry_run=True, confirm=True)
            return dry.deleted_count
        except ArcDeleteRefused:
            raise
        except ArcRejected:
            span = await self.registry.query(
                org_id, query.time_span(self.registry.get(org_id).measurement, org_id, f))
            return int(span.data[0][2] or 0) if span.data else 0

    async def forget(self, org_id: str, f: MemoryFilter, *, now_us: int) -> Forgotten:
        """Forget the org's memories matching `f` that exist now (later writes are never touched)."""
        bounded = msgspec.structs.replace(
            f, hide=(), until_us=now_us + 1 if f.until_us is None else min(f.until_us, now_us + 1))
        arc_count: int | None
        try:
            arc_count = await self._arc_count(org_id, bounded)
        except ArcUnavailable:
            arc_count = None  # recorded now, applied when Arc is back
        recorded = await self.journal.record_deletion(org_id, bounded, self.claim_s)
        if arc_count is None:
            await self.journal.deletion_failed(recorded.deletion.id, "arc unavailable", 0.0)
            return Forgotten(recorded.dropped_pending + recorded.dropped_delivered, pending=True)
        matched = arc_count + recorded.dropped_pending + await self._unseen(org_id, recorded.delivered_ids)
        try:
            await self.apply(recorded.deletion)
        except MemtraceError as exc:  # recorded and hidden already: the background applier retries it
            await self.journal.deletion_failed(recorded.deletion.id, exc.message, 0.0)
            return Forgotten(matched, pending=True)
        return Forgotten(matched, pending=False)

    # --- applying ------------------------------------------------------------------------------------

    async def apply(self, deletion: Deletion) -> int:
        """Delete the deletion's rows from Arc and release their ledger keys; returns Arc's deleted count."""
        org_id, f = deletion.org_id, deletion.filter
        binding = self.registry.get(org_id)
        window_start = timeutil.now_us() - self.dedup_window_s * 1_000_000
        keys_sql = query.dedup_keys_to_release(binding.measurement, org_id, f, window_start)
        found = await self.registry.query(org_id, keys_sql)
        keys = _keys(found.columns, found.data)
        deleted = await self.delete_in_arc(org_id, f)
        await self.journal.release_dedup_keys(org_id, keys)
        await self.journal.deletion_applied(deletion.id, deletion.state, deleted, self.settle_s)
        return deleted

    async def delete_in_arc(self, org_id: str, f: MemoryFilter, depth: int = 0) -> int:
        """One Arc delete; when Arc refuses it for its size (over max_rows_per_delete), halve the time range."""
        where = query.delete_condition(org_id, f)
        try:
            return (await self.registry.delete(org_id, where, dry_run=False, confirm=True)).deleted_count
        except ArcDeleteRefused:
            raise
        except ArcRejected:
            if depth >= MAX_SPLIT_DEPTH:
                raise
            halves = await self._split(org_id, f)
            if halves is None:
                raise
        return sum([await self.delete_in_arc(org_id, half, depth + 1) for half in halves])

    async def _split(self, org_id: str, f: MemoryFilter) -> tuple[MemoryFilter, MemoryFilter] | None:
        """Two time ranges holding the matching rows, or None when they cannot be split (all at one instant)."""
        binding = self.registry.get(org_id)
        config = await self.registry.delete_config(org_id)
        span = await self.registry.query(org_id, query.time_span(binding.measurement, org_id, f))
        if not span.data or span.data[0][0] is None:
            return None
        lo, hi, n = parse_arc_time(span.data[0][0]), parse_arc_time(span.data[0][1]), int(span.data[0][2] or 0)
        if n <= config.max_rows_per_delete or hi <= lo:
            return None
        mid = lo + (hi - lo + 1) // 2
        return (msgspec.structs.replace(f, until_us=mid if f.until_us is None else min(f.until_us, mid)),
                msgspec.structs.replace(f, since_us=mid if f.since_us is None else max(f.since_us, mid)))

    async def purge(self, org_id: str) -> tuple[int, int]:
        """Every row of the org: from its Arc (scoped by `org_id` only) and from the journal. Returns
        (rows deleted in Arc, rows dropped from the journal)."""
        try:
            self.registry.get(org_id)
        except NoArcInstance:
            deleted = 0  # an org without a binding has no Arc rows Memtrace could reach
        else:
            deleted = await self.delete_in_arc(org_id, MemoryFilter())
        return deleted, await self.journal.drop_org(org_id)

    async def apply_due(self) -> int:
        """Apply every due deletion once; returns how many were applied."""
        applied = 0
        for deletion in await self.journal.due_deletions():
            try:
                await self.apply(deletion)
                applied += 1
            except ArcDeleteRefused as exc:
                log.error("deletion %d of org %s waits: %s", deletion.id, deletion.org_id, exc.message)
                await self.journal.deletion_failed(deletion.id, exc.message, REFUSED_RETRY_S)
            except MemtraceError as exc:
                await self.journal.deletion_failed(deletion.id, exc.message, RETRY_S)
        return applied

    async def run(self, is_leader: Callable[[], bool], stopping: asyncio.Event) -> None:
        """Background loop: the delivery lease holder applies due deletions every half second."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=APPLY_EVERY_S)
            if stopping.is_set() or not is_leader():
                continue
            try:
                await self.apply_due()
            except Exception:
                log.exception("applying deletions failed")


def _keys(columns: list[str], data: list[list[object]]) -> list[tuple[str, int]]:
    return [(key, parse_arc_time(when)) for key, when in query.by_name(columns, data, ("dedup_key", "time"))
            if isinstance(key, str) and isinstance(when, str)]
