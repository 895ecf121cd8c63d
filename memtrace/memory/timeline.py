"""Memory counts over time, per bucket and memory type: Arc's `time_bucket` answer plus the journal's
rows Arc does not hold yet, each memory id counted once (the same merge as `MemoryService.counts`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from memtrace.memory import query
from memtrace.memory.model import MemoryFilter
from memtrace.memory.service import MemoryService

MAX_BUCKETS = 10_000
MIN_BUCKET_US = 60 * 1_000_000
MAX_BUCKET_US = 86_400 * 1_000_000


@dataclass(slots=True)
class Bucket:
    start_us: int
    count: int = 0
    errors: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, memory_type: str, count: int, errors: int) -> None:
        self.count += count
        self.errors += errors
        self.by_type[memory_type] = self.by_type.get(memory_type, 0) + count


def bucket_count(since_us: int, until_us: int, bucket_us: int) -> int:
    """How many epoch-aligned buckets the window [since, until) touches."""
    if until_us <= since_us:
        return 0
    first = since_us - since_us % bucket_us
    return -(-(until_us - first) // bucket_us)


async def timeline(service: MemoryService, org_id: str, f: MemoryFilter, bucket_us: int) -> list[Bucket]:
    """Non-empty buckets oldest first; `f` carries the window (since inclusive, until exclusive)."""
    f = await service._hiding(org_id, f)  # deletions Arc has not applied yet are hidden here too
    measurement = service.registry.get(org_id).measurement
    sql = query.timeline_counts(measurement, org_id, f, bucket_us)
    local = await service._local(org_id, f)  # the same journal read, with the same filters, as counts()
    if local:
        known_sql = query.select_ids(measurement, org_id, tuple(r.id for r in local))
        counted, known = await asyncio.gather(service.registry.query(org_id, sql),
                                              service.registry.query(org_id, known_sql))
        in_arc = {row.id for row in query.rows_from_arc(known.columns, known.data)}
    else:
        counted, in_arc = await service.registry.query(org_id, sql), set()
    buckets: dict[int, Bucket] = {}
    for start, memory_type, count, errors in query.timeline_from_arc(counted.columns, counted.data):
        buckets.setdefault(start, Bucket(start)).add(memory_type, count, errors)
    seen: set[str] = set()
    for row in local:
        if row.id in in_arc or row.id in seen:
            continue
        seen.add(row.id)
        start = row.time_us - row.time_us % bucket_us
        buckets.setdefault(start, Bucket(start)).add(row.memory_type, 1, int(row.event_type == "error"))
    return [buckets[start] for start in sorted(buckets)]
