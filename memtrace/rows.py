"""The memory row and the read filter over it: one definition, shared by memory/, arc/ and journal/.

`MemoryRow` is what the journal stores (compact array-like msgpack), what delivery sends to Arc (as
columns, see `arc/encode.py`) and what reads merge; `ARC_COLUMNS` names the same fields as Arc's columns.
A leaf module: it imports nothing of memtrace, so every layer may use it.
"""

from __future__ import annotations

from msgspec import Struct

__all__ = ["ARC_COLUMNS", "MemoryFilter", "MemoryRow", "column_index"]


class MemoryRow(Struct, array_like=True, kw_only=True):
    """The Arc columns of one memory, kept compact in the journal (array-like msgpack)."""

    id: str
    time_us: int
    org_id: str
    agent_id: str
    session_id: str
    memory_type: str
    event_type: str
    content: str
    metadata_json: str
    tags_csv: str
    dedup_key: str
    importance: float
    parent_id: str


ARC_COLUMNS: tuple[str, ...] = tuple("time" if f == "time_us" else f for f in MemoryRow.__struct_fields__)
"""The Arc columns of a memory, in MemoryRow field order (the row's `time_us` is Arc's `time`)."""


def column_index(name: str) -> int:
    """Position of Arc column `name` in ARC_COLUMNS (and of its field in a MemoryRow); ValueError if unknown."""
    return ARC_COLUMNS.index(name)


class MemoryFilter(Struct, kw_only=True):
    """Every filter a read may apply, already validated; built from list query params or a search body.

    `since_us`/`until_us` are absolute epoch microseconds (relative forms resolved at request time).
    """

    agent_id: str | None = None
    agent_ids: tuple[str, ...] = ()  # any of these (an agent's id and its name); combined with agent_id by AND
    session_id: str | None = None
    memory_types: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    content_contains: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    min_importance: float | None = None
    ids: tuple[str, ...] = ()
    # Pending deletions of the org (`journal/forget.py`): a row matching any of them is forgotten and never shown.
    hide: tuple[MemoryFilter, ...] = ()
