"""The recall context: the memories most relevant to a query, as markdown an LLM can put straight into a prompt.

```
## Recalled for "what did the customer say about the refund?"

### Session sess_42 · agent support_bot · Tuesday 2026-02-03
- [2026-02-03 14:02:11Z] message: customer: I still have not seen the refund for order 1182...
- [2026-02-03 14:02:40Z] decision: Refund order 1182 again through the card processor (why: ...)

### No session · agent support_bot · Monday 2026-02-02
- ...
```

Why this shape: a reader answering "when" needs the date, and the weekday makes "last Tuesday" resolvable,
so every line carries its full UTC time and every group the day it starts; a reader answering "what" needs
what happened around the hit, so the memories around each hit (its session neighbours) are kept with it, in
time order. Groups come best hit first.

The budget (`max_tokens`, estimated as ceil(characters / 4) of the whole markdown, like the session context)
is spent in three passes, each in rank order: the hits, until three quarters of the budget; then their
neighbours, nearest first; then any hits still left. Whole lines only. `memories` is exactly the lines' memories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memtrace.memory.context import one_line
from memtrace.rows import MemoryRow
from memtrace.timeutil import format_seconds

LINE_CHARS = 400
"""A memory's text is cut to this many characters (plus `...`) so that one long memory cannot take the budget."""
_HITS_SHARE = 0.75


@dataclass(slots=True)
class Recalled:
    context: str
    rows: list[MemoryRow]  # the memories whose lines are in `context`, in the order they appear
    token_estimate: int


@dataclass(slots=True)
class _Group:
    key: tuple[str, str]
    rows: dict[str, MemoryRow] = field(default_factory=dict)


def estimate_tokens(text: str) -> int:
    return -(-len(text) // 4)


def _line(row: MemoryRow) -> str:
    text = one_line(row.content)
    if len(text) > LINE_CHARS:
        text = text[:LINE_CHARS] + "..."
    return f"- [{format_seconds(row.time_us)}] {one_line(row.event_type)}: {text}"


def _header(key: tuple[str, str], first: MemoryRow) -> str:
    agent_id, session_id = key
    day = datetime.fromtimestamp(first.time_us / 1_000_000, UTC).strftime("%A %Y-%m-%d")
    where = f"Session {session_id}" if session_id else "No session"
    return f"### {where} · agent {agent_id} · {day}"


def _title(query: str) -> str:
    shown = one_line(query)
    return f'## Recalled for "{shown[:200]}{"..." if len(shown) > 200 else ""}"'


def _render(query: str, groups: list[_Group], matched: int, lines: dict[str, str]
            ) -> tuple[str, list[MemoryRow]]:
    """The markdown of `groups` as they stand; `lines` caches each memory's line (a recall renders once a try)."""
    parts = [_title(query)]
    shown: list[MemoryRow] = []
    for group in groups:
        if not group.rows:
            continue
        rows = sorted(group.rows.values(), key=lambda r: (r.time_us, r.id))
        parts.append("")
        parts.append(_header(group.key, rows[0]))
        for r in rows:
            line = lines.get(r.id)
            if line is None:
                line = lines[r.id] = _line(r)
            parts.append(line)
        shown.extend(rows)
    if not shown:
        parts.append("")
        parts.append(f"{matched} memories match, but the budget leaves no room for one." if matched
                     else "No memory matches the query.")
    return "\n".join(parts), shown


def render_recall(query: str, hits: Sequence[MemoryRow], near: dict[str, list[MemoryRow]],
                  max_tokens: int) -> Recalled:
    """`hits` best first; `near[hit.id]`, its neighbours nearest first (the hit itself excluded)."""
    groups: dict[tuple[str, str], _Group] = {}
    order: list[_Group] = []
    lines: dict[str, str] = {}
    budget = max(max_tokens, 0) * 4

    def group_of(row: MemoryRow) -> _Group:
        key = (row.agent_id, row.session_id)
        if key not in groups:
            groups[key] = _Group(key)
            order.append(groups[key])
        return groups[key]

    def try_add(row: MemoryRow, limit: int) -> None:
        group = group_of(row)
        if row.id in group.rows:
            return
        group.rows[row.id] = row
        if len(_render(query, order, len(hits), lines)[0]) > limit:
            del group.rows[row.id]

    for hit in hits:
        try_add(hit, int(budget * _HITS_SHARE))
    included = [hit for hit in hits if hit.id in group_of(hit).rows]
    for hit in included:
        for row in near.get(hit.id, ()):
            try_add(row, budget)
    for hit in hits:
        try_add(hit, budget)
    text, shown = _render(query, order, len(hits), lines)
    return Recalled(text, shown, estimate_tokens(text))
