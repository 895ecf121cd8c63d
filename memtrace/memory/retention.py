"""Retention: each org's policies turned into deletions through the one forgetting path.

A policy for a memory type deletes that type's memories older than its days; the org's default (type '')
covers every type without its own policy. Runs in the server (the delivery lease holder, every
`retention.interval_s`) and from `memtrace admin retention run`; every run that removed rows is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from memtrace import timeutil
from memtrace.errors import MemtraceError
from memtrace.memory.forget import Forgetter
from memtrace.memory.model import MEMORY_TYPES
from memtrace.metadata.forgetting import ALL_TYPES, Audit, RetentionPolicy
from memtrace.rows import MemoryFilter

log = logging.getLogger("memtrace.retention")

DAY_US = 86_400 * 1_000_000
RETENTION_KEY_ID = "retention"


@dataclass(slots=True)
class Removed:
    org_id: str
    memory_types: tuple[str, ...]
    older_than_days: int
    rows: int
    pending: bool
    error: str = ""


def policy_filters(policies: Iterable[RetentionPolicy], now_us: int) -> list[tuple[MemoryFilter, int]]:
    """One org's policies as (filter, days): per-type ones, then the default for the remaining types."""
    by_type = {p.memory_type: p.days for p in policies}
    out: list[tuple[MemoryFilter, int]] = []
    for memory_type in MEMORY_TYPES:
        if memory_type in by_type:
            days = by_type[memory_type]
            out.append((MemoryFilter(memory_types=(memory_type,), until_us=now_us - days * DAY_US), days))
    rest = tuple(t for t in MEMORY_TYPES if t not in by_type)
    if ALL_TYPES in by_type and rest:
        days = by_type[ALL_TYPES]
        out.append((MemoryFilter(memory_types=rest, until_us=now_us - days * DAY_US), days))
    return out


async def apply_policies(forgetter: Forgetter, audit: Audit, policies: list[RetentionPolicy],
                         org_ids: Iterable[str] | None = None) -> list[Removed]:
    """Apply the policies (of `org_ids` only, when given); orgs without an Arc binding are skipped."""
    wanted = None if org_ids is None else set(org_ids)
    bound = set(forgetter.registry.org_ids())
    by_org: dict[str, list[RetentionPolicy]] = {}
    for policy in policies:
        if (wanted is None or policy.org_id in wanted) and policy.org_id in bound:
            by_org.setdefault(policy.org_id, []).append(policy)
    now_us = timeutil.now_us()
    removed: list[Removed] = []
    for org_id, own in by_org.items():
        for f, days in policy_filters(own, now_us):
            try:
                if await forgetter.count(org_id, f) == 0:
                    continue
                done = await forgetter.forget(org_id, f, now_us=now_us)
            except MemtraceError as exc:
                log.warning("retention for org %s failed: %s", org_id, exc.message)
                removed.append(Removed(org_id, f.memory_types, days, 0, True, exc.message))
                continue
            await audit.record(org_id, RETENTION_KEY_ID, "retention",
                               {"memory_types": list(f.memory_types), "older_than_days": days}, done.matched,
                               "pending" if done.pending else "applied")
            removed.append(Removed(org_id, f.memory_types, days, done.matched, done.pending))
    return removed
