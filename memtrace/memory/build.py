"""Turn validated requests into stored rows and stored rows into API objects.

Size caps that depend on settings are enforced here (the Structs carry the fixed rules). Metadata is kept
as raw JSON bytes end to end, so it is encoded once on write and never decoded on the read path.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from memtrace.config import LimitsSettings
from memtrace.errors import TooLarge
from memtrace.ids import memory_id
from memtrace.jsonlimits import check_object, stored_object
from memtrace.memory.dedup import dedup_key
from memtrace.memory.model import Memory, MemoryList, NewMemory
from memtrace.rows import MemoryRow
from memtrace.timeutil import format_us

DEFAULT_IMPORTANCE = 0.5
_json_encoder = msgspec.json.Encoder()


def build_rows(
    org_id: str, items: Sequence[NewMemory], now_us: int, limits: LimitsSettings, batch: bool
) -> list[MemoryRow]:
    """Rows for `items`, all-or-nothing: the first item over a cap fails the whole request.

    Rows of one request get consecutive microsecond times so their order survives any sort.
    """
    rows: list[MemoryRow] = []
    for index, item in enumerate(items):
        where = f"memories[{index}]." if batch else ""
        content_bytes = len(item.content.encode("utf-8", "surrogatepass"))
        if content_bytes > limits.max_content_bytes:
            raise TooLarge(f"{where}content is {content_bytes} bytes; the limit is {limits.max_content_bytes}")
        metadata_json = b"{}" if item.metadata is None else _json_encoder.encode(item.metadata)
        check_object(metadata_json, f"{where}metadata", limits.max_metadata_bytes)
        time_us = now_us + index
        rows.append(
            MemoryRow(
                id=memory_id(time_us),
                time_us=time_us,
                org_id=org_id,
                agent_id=item.agent_id,
                session_id=item.session_id or "",
                memory_type=item.memory_type,
                event_type=item.event_type,
                content=item.content,
                metadata_json=metadata_json.decode(),
                tags_csv=",".join(item.tags) if item.tags else "",
                dedup_key=item.dedup_key or dedup_key(item.agent_id, item.event_type, item.content),
                importance=float(DEFAULT_IMPORTANCE if item.importance is None else item.importance),
                parent_id=item.parent_id or "",
            )
        )
    return rows


def memory_list(rows: list[MemoryRow], has_more: bool) -> MemoryList:
    return MemoryList(memories=[to_memory(r) for r in rows], count=len(rows), has_more=has_more)


def to_scored(row: MemoryRow, score: float) -> Memory:
    """A ranked hit as the API returns it: the memory and its relevance, rounded to 4 decimals."""
    memory = to_memory(row)
    memory.score = round(score, 4)
    return memory


def to_memory(row: MemoryRow) -> Memory:
    return Memory(
        id=row.id,
        time=format_us(row.time_us),
        org_id=row.org_id,
        agent_id=row.agent_id,
        session_id=row.session_id,
        memory_type=row.memory_type,
        event_type=row.event_type,
        content=row.content,
        metadata=stored_object(row.metadata_json, "metadata of memory", row.id),
        tags=row.tags_csv.split(",") if row.tags_csv else [],
        dedup_key=row.dedup_key,
        importance=row.importance,
        parent_id=row.parent_id,
    )
