"""The read filters in Python, with exactly the semantics of the SQL that `memory/query.py` sends to Arc.

Reads merge Arc's answer with the org's recent local rows that Arc may not show yet, so the same
filter runs twice: once as SQL in Arc, once here over local rows. Any difference would make a memory
appear or vanish depending on whether Arc has flushed it, so `tests/test_query.py` runs both against a
real DuckDB on generated rows and requires identical answers. The shared rules:

- agent_id, session_id: equality. agent_ids, memory_types, event_types, ids: membership; an empty tuple means
  "no filter", never "match nothing".
- tags: the memory carries every listed tag exactly (membership in `tags_csv.split(",")`).
- content_contains: case-insensitive substring, every character literal; case folding is DuckDB's
  `lower()` (see `fold_case`). An empty string is no filter.
- since_us inclusive, until_us exclusive: `since_us <= time_us < until_us`, so consecutive windows
  [a, b) and [b, c) never share or lose a memory.
- min_importance inclusive; a NULL importance in Arc reads as 0.5 on both sides.
- hide: pending deletions; a row matching any of them does not match (SQL: `NOT coalesce((...), FALSE)`).
"""

from __future__ import annotations

from collections.abc import Iterable

from memtrace.rows import MemoryFilter, MemoryRow


class _LowerTable(dict[int, str]):
    """`str.translate` table giving each code point DuckDB's `lower()` of it, filled on first use.

    DuckDB lowers code point by code point (utf8proc simple case mapping). Python's `str.lower` differs
    in exactly two ways, both checked against DuckDB over all of Unicode: it applies the context rule
    for final sigma (U+03A3 gives U+03C2 at a word end; DuckDB always gives U+03C3) and it maps U+0130
    to two code points, `i` + U+0307 (DuckDB: `i`). Lowering one character at a time removes the
    first difference; keeping the first code point fixes the second.
    """

    def __missing__(self, cp: int) -> str:
        low = chr(cp).lower()[0]  # U+0130 → "i": the only multi-code-point lowercase in Unicode
        self[cp] = low
        return low


_LOWER = _LowerTable()


def fold_case(text: str) -> str:
    """Lowercase exactly as DuckDB's `lower()` does, so SQL and Python agree on content_contains."""
    if text.isascii():
        return text.lower()
    return text.translate(_LOWER)


def matches(row: MemoryRow, f: MemoryFilter) -> bool:
    """True iff `row` passes every filter in `f` (the rules are in the module docstring)."""
    if f.since_us is not None and row.time_us < f.since_us:
        return False
    if f.until_us is not None and row.time_us >= f.until_us:
        return False
    if f.agent_id is not None and row.agent_id != f.agent_id:
        return False
    if f.agent_ids and row.agent_id not in f.agent_ids:
        return False
    if f.session_id is not None and row.session_id != f.session_id:
        return False
    if f.memory_types and row.memory_type not in f.memory_types:
        return False
    if f.event_types and row.event_type not in f.event_types:
        return False
    if f.ids and row.id not in f.ids:
        return False
    if f.min_importance is not None and not row.importance >= f.min_importance:
        return False
    if f.tags:
        have = row.tags_csv.split(",")
        for tag in f.tags:
            if tag not in have:
                return False
    if f.content_contains and fold_case(f.content_contains) not in fold_case(row.content):
        return False
    return not (f.hide and hidden(row, f.hide))


def hidden(row: MemoryRow, deletions: Iterable[MemoryFilter]) -> bool:
    """True when a pending deletion covers `row`: forgotten rows never reach a reader. A deletion of listed
    ids only covers those ids whatever their time (an id is never reused), as the SQL's merged `NOT IN` does."""
    return Hider(deletions).covers(row)


class Hider:
    """`hidden` for many rows against many deletions: deletions of single ids (the common case, and the one
    that piles up while Arc is down) become one set lookup per row instead of one filter each."""

    def __init__(self, deletions: Iterable[MemoryFilter]) -> None:
        self.ids: set[str] = set()
        self.others: list[MemoryFilter] = []
        for d in deletions:
            if only_ids(d):
                self.ids.update(d.ids)
            else:
                self.others.append(d)

    def covers(self, row: MemoryRow) -> bool:
        return row.id in self.ids or any(matches(row, d) for d in self.others)


def only_ids(d: MemoryFilter) -> bool:
    """A deletion of listed ids and nothing else (its `until_us` bound is moot: an id is never reused)."""
    return (bool(d.ids) and d.agent_id is None and not d.agent_ids and d.session_id is None and not d.memory_types
            and not d.event_types and not d.tags and not d.content_contains and d.since_us is None
            and d.min_importance is None and not d.hide)


def _sort_key(row: MemoryRow) -> tuple[int, str]:
    return (row.time_us, row.id)


def sort_rows(rows: Iterable[MemoryRow], order: str) -> list[MemoryRow]:
    """Rows by (time, id), ascending or descending: the order every read promises, ties broken by id."""
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return sorted(rows, key=_sort_key, reverse=order == "desc")


def merge_page(
    arc_rows: list[MemoryRow],
    local_rows: list[MemoryRow],
    order: str,
    limit: int,
    offset: int,
) -> tuple[list[MemoryRow], bool]:
    """One page of the union of Arc's rows and the local rows, and whether another page exists.

    Callers ask Arc for the first `offset + limit + 1` matching rows (offset 0) and pass the local rows
    already filtered with `matches`. The union is de-duplicated by id (a memory both buffered locally and
    already in Arc is one memory; Arc's copy wins, the copies are identical), sorted by (time, id) in
    `order`, and sliced. `has_more` is true iff a row exists after the page: the merged top
    `offset + limit + 1` of the union is exact because it is contained in Arc's top that many plus the
    local rows.
    """
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    by_id: dict[str, MemoryRow] = {}
    for row in local_rows:
        by_id[row.id] = row
    for row in arc_rows:
        by_id[row.id] = row
    merged = sort_rows(by_id.values(), order)
    end = offset + limit
    return merged[offset:end], len(merged) > end
