"""Memory counts over time, per bucket and memory type: Arc's `time_bucket` answer plus the journal's
rows Arc does not hold yet, each memory id counted once (`MemoryService.with_unseen`, as stats do)."""

from __future__ import annotations

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
    counted, unseen = await service.with_unseen(
        org_id, f, lambda measurement, hidden: query.timeline_counts(measurement, org_id, hidden, bucket_us))
    buckets: dict[int, Bucket] = {}
    for start, memory_type, count, errors in query.timeline_from_arc(counted.columns, counted.data):
        buckets.setdefault(start, Bucket(start)).add(memory_type, count, errors)
    for row in unseen:
        start = row.time_us - row.time_us % bucket_us
        buckets.setdefault(start, Bucket(start)).add(row.memory_type, 1, int(row.event_type == "error"))
    return [buckets[start] for start in sorted(buckets)]
