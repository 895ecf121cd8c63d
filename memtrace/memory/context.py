"""The session-context markdown of api.md ("Session context markdown"), rendered from memory rows.

The caller selects the rows (session, include_types, since); this module only lays them out and fits
them into a token budget. Layout:

    ## Session Context (<session id>)

    ### Recent Actions (N)
    - [2026-02-07T20:15:00Z] event_type: content cut to 80 characters...
    - ... (K more)

Sections in order Recent Actions (episodic), Decisions Made (decision), Errors (event_type `error`,
whatever the memory_type; such a memory appears only there), Session State (session), Known Entities
(entity); a section appears only when it has memories; a blank line separates the header and the
sections; no trailing newline. A memory of an unknown memory_type (not writable through the API)
belongs to no section and is not counted.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from memtrace.rows import MemoryRow
from memtrace.timeutil import format_seconds

CONTENT_CHARS = 80
# Input characters that surely yield more than CONTENT_CHARS output characters (a "\r\n" becomes one
# space, nothing else shrinks), so long contents are cut before the per-character work.
_ENOUGH = 2 * (CONTENT_CHARS + 1)
TITLES: tuple[str, ...] = ("Recent Actions", "Decisions Made", "Errors", "Session State", "Known Entities")
_ERRORS = 2
_SECTION_OF_TYPE = {"episodic": 0, "decision": 1, "session": 3, "entity": 4}
# Every code point `str.splitlines` breaks on: a line of ours must stay one line for any reader.
_BREAK_CHARS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAKS = dict.fromkeys(map(ord, _BREAK_CHARS), " ")
# Most texts hold no break at all: one regex scan (C) finds that, where `translate` maps every character.
_HAS_BREAK = re.compile(f"[{_BREAK_CHARS}]")
_metadata_decoder = msgspec.json.Decoder()


class RenderedContext(msgspec.Struct, kw_only=True):
    context: str
    memory_count: int  # memories placed in sections, including lines dropped for the budget
    truncated: bool  # some lines were dropped for the budget
    omitted: int  # how many


def one_line(text: str) -> str:
    if _HAS_BREAK.search(text) is None:
        return text
    if "\r\n" in text:
        text = text.replace("\r\n", " ")
    return text.translate(_LINE_BREAKS)


def _reasoning(metadata_json: str) -> str | None:
    # Skip the parse when the key cannot be there (an escaped spelling would contain a backslash-u).
    if "reasoning" not in metadata_json and "\\u" not in metadata_json:
        return None
    try:
        meta: Any = _metadata_decoder.decode(metadata_json)
    except (msgspec.DecodeError, RecursionError):
        return None  # metadata is ours to show, not to validate; a broken one just has no reasoning
    if not isinstance(meta, dict):
        return None
    reason = meta.get("reasoning")
    if isinstance(reason, str) and reason.strip():
        return reason
    return None


def format_line(row: MemoryRow) -> str:
    """`- [time] event_type: content`, on one line, the text cut to 80 characters plus `...`.

    For a decision with a string `metadata.reasoning`, the text is `content (why: reasoning)` and the cut
    applies to that whole text.
    """
    return _Lines().line(row)


class _Lines:
    """`format_line` over the many rows of one context: the `- [time] event_type: ` prefix is built once per
    (second, event_type), since a session's memories share few of either."""

    __slots__ = ("_prefixes",)

    def __init__(self) -> None:
        self._prefixes: dict[tuple[int, str], str] = {}

    def line(self, row: MemoryRow) -> str:
        key = (row.time_us // 1_000_000, row.event_type)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = f"- [{format_seconds(row.time_us)}] {one_line(row.event_type)}: "
        return prefix + _text(row)


def _text(row: MemoryRow) -> str:
    text = row.content
    if len(text) > _ENOUGH:
        text = text[:_ENOUGH]  # the cut is decided within this prefix; the rest would be dropped anyway
    elif row.memory_type == "decision" and row.metadata_json:
        reason = _reasoning(row.metadata_json)
        if reason is not None:
            text = f"{text} (why: {reason})"[:_ENOUGH]
    text = one_line(text)
    if len(text) > CONTENT_CHARS:
        text = text[:CONTENT_CHARS] + "..."
    return text


def _marker(omitted: int) -> str:
    return f"- ... ({omitted} more)"


def _newest_first(row: MemoryRow) -> tuple[int, str]:
    return (row.time_us, row.id)


def render_context(session_id: str, rows: list[MemoryRow], max_tokens: int | None) -> RenderedContext:
    """The session's context markdown, within `max_tokens` when given.

    Tokens are estimated as ceil(characters / 4) of the whole markdown. Over budget, whole lines are
    dropped, lowest importance first, then oldest (then lowest id, for determinism), until the text
    fits; every section that lost lines ends with `- ... (K more)`, and its `(N)` still counts all of
    its memories. The `##` header, the section headers and these markers always stay, so when they
    alone exceed the budget the result is over budget: dropping a header would hide that the section
    exists at all. Each dropped line saves more than its marker costs (a line is at least ~28
    characters), so dropping in priority order converges.
    """
    buckets: list[list[MemoryRow]] = [[], [], [], [], []]
    for row in rows:
        idx = _ERRORS if row.event_type == "error" else _SECTION_OF_TYPE.get(row.memory_type)
        if idx is not None:
            buckets[idx].append(row)

    header = f"## Session Context ({one_line(session_id)})"
    sections: list[tuple[str, list[MemoryRow], list[str]]] = []
    line = _Lines().line
    for title, bucket in zip(TITLES, buckets, strict=True):
        if bucket:
            bucket.sort(key=_newest_first, reverse=True)
            sections.append((f"### {title} ({len(bucket)})", bucket, [line(r) for r in bucket]))
    memory_count = sum(len(b) for b in buckets)

    dropped: list[set[int]] = [set() for _ in sections]
    omitted = 0
    if max_tokens is not None and sections:
        budget = max(max_tokens, 0) * 4  # ceil(chars / 4) <= max_tokens  <=>  chars <= 4 * max_tokens
        total = len(header) + sum(2 + len(h) + sum(len(ln) + 1 for ln in lines) for h, _, lines in sections)
        if total > budget:
            order = sorted(
                (
                    (r.importance if not math.isnan(r.importance) else 0.0, r.time_us, r.id, s, i)
                    for s, (_, bucket, _) in enumerate(sections)
                    for i, r in enumerate(bucket)
                ),
            )
            for _, _, _, s, i in order:
                lines = sections[s][2]
                before = len(dropped[s])
                old_marker = len(_marker(before)) + 1 if before else 0
                dropped[s].add(i)
                total += len(_marker(before + 1)) + 1 - old_marker - (len(lines[i]) + 1)
                omitted += 1
                if total <= budget:
                    break

    parts = [header]
    for (title_line, _, lines), gone in zip(sections, dropped, strict=True):
        if gone:
            kept = [ln for i, ln in enumerate(lines) if i not in gone]
            kept.append(_marker(len(gone)))
            parts.append("\n".join([title_line, *kept]))
        else:
            parts.append("\n".join([title_line, *lines]))
    return RenderedContext(
        context="\n\n".join(parts), memory_count=memory_count, truncated=omitted > 0, omitted=omitted
    )
