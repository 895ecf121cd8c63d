"""The session-context markdown: exact layout, and the budget rules as properties."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from memtrace.memory.context import TITLES, format_line, render_context
from memtrace.memory.model import MEMORY_TYPES
from memtrace.rows import MemoryRow
from memtrace.timeutil import parse_time_param

T0 = parse_time_param("2026-02-07T20:15:00Z", 0, "t")


def mem(n: int, at: str, memory_type: str, event_type: str, content: str, **kw: Any) -> MemoryRow:
    base: dict[str, Any] = dict(
        id=f"mem_{n:026d}",
        time_us=parse_time_param(at, 0, "t"),
        org_id="o",
        agent_id="a",
        session_id="sess_abc123",
        memory_type=memory_type,
        event_type=event_type,
        content=content,
        metadata_json="{}",
        tags_csv="",
        dedup_key="",
        importance=0.5,
        parent_id="",
    )
    base.update(kw)
    return MemoryRow(**base)


SAMPLE = [
    mem(
        1,
        "2026-02-07T20:15:00Z",
        "episodic",
        "page_crawled",
        "Crawled https://example.com — found 3 products on the landing page and 2 more on page two",
    ),
    mem(2, "2026-02-07T20:14:30Z", "episodic", "api_call", "Called OpenAI API for summarization"),
    mem(
        3,
        "2026-02-07T20:14:00.900Z",
        "decision",
        "decision",
        "Skip pagination",
        metadata_json='{"reasoning": "only 2 pages deep"}',
    ),
    mem(4, "2026-02-07T20:13:00Z", "episodic", "error", "Rate limited by target API,\nbacking off"),
    mem(5, "2026-02-07T20:12:00Z", "session", "state", "step=3"),
    mem(6, "2026-02-07T20:11:00Z", "entity", "entity", "example.com is a shop"),
]


def test_the_api_md_layout_exactly() -> None:
    got = render_context("sess_abc123", SAMPLE, None)
    assert got.context == (
        "## Session Context (sess_abc123)\n"
        "\n"
        "### Recent Actions (2)\n"
        "- [2026-02-07T20:15:00Z] page_crawled: "
        "Crawled https://example.com — found 3 products on the landing page and 2 more on..."  # 80 + ...
        "\n"
        "- [2026-02-07T20:14:30Z] api_call: Called OpenAI API for summarization\n"
        "\n"
        "### Decisions Made (1)\n"
        "- [2026-02-07T20:14:00Z] decision: Skip pagination (why: only 2 pages deep)\n"
        "\n"
        "### Errors (1)\n"
        "- [2026-02-07T20:13:00Z] error: Rate limited by target API, backing off\n"
        "\n"
        "### Session State (1)\n"
        "- [2026-02-07T20:12:00Z] state: step=3\n"
        "\n"
        "### Known Entities (1)\n"
        "- [2026-02-07T20:11:00Z] entity: example.com is a shop"
    )
    assert (got.memory_count, got.truncated, got.omitted) == (6, False, 0)


def test_empty_session_is_just_the_header() -> None:
    got = render_context("sess_x", [], 10)
    assert (got.context, got.memory_count, got.truncated) == ("## Session Context (sess_x)", 0, False)


def test_cut_is_80_characters_and_why_is_inside_it() -> None:
    exact = mem(1, "2026-02-07T20:15:00Z", "episodic", "e", "x" * 80)
    over = mem(2, "2026-02-07T20:15:00Z", "episodic", "e", "x" * 81)
    assert format_line(exact).endswith(": " + "x" * 80)
    assert format_line(over).endswith(": " + "x" * 80 + "...")
    why = mem(3, "2026-02-07T20:15:00Z", "decision", "d", "y" * 70, metadata_json='{"reasoning": "because"}')
    assert format_line(why).endswith(": " + "y" * 70 + " (why: bec...")  # 70 + 7 + 3 = 80
    for meta in ["not json", "[1]", '{"reasoning": 5}', '{"reasoning": "  "}', ""]:
        plain = mem(4, "2026-02-07T20:15:00Z", "decision", "d", "z", metadata_json=meta)
        assert format_line(plain).endswith(": z")
    multi = mem(5, "2026-02-07T20:15:00Z", "episodic", "e", "a\r\nb\nc\rd\u2028e\x0bf")
    assert format_line(multi).endswith(": a b c d e f")
    crlf = mem(6, "2026-02-07T20:15:00Z", "episodic", "e", "\r\n" * 100)  # 200 chars, 100 after joining
    assert format_line(crlf).endswith(": " + " " * 80 + "...")
    crlf81 = mem(7, "2026-02-07T20:15:00Z", "episodic", "e", "\r\n" * 80)  # exactly 80 after joining
    assert format_line(crlf81).endswith(": " + " " * 80)


def test_an_error_of_any_type_is_only_in_errors() -> None:
    rows = [
        mem(1, "2026-02-07T20:15:00Z", "decision", "error", "boom"),
        mem(2, "2026-02-07T20:14:00Z", "decision", "decision", "ok"),
    ]
    text = render_context("s", rows, None).context
    assert "### Decisions Made (1)\n- [2026-02-07T20:14:00Z] decision: ok" in text
    assert "### Errors (1)\n- [2026-02-07T20:15:00Z] error: boom" in text


def test_budget_drops_lowest_importance_then_oldest_and_says_how_many() -> None:
    rows = [
        mem(1, "2026-02-07T20:15:00Z", "episodic", "e", "newest, unimportant", importance=0.1),
        mem(2, "2026-02-07T20:14:00Z", "episodic", "e", "old, important", importance=0.9),
        mem(3, "2026-02-07T20:13:00Z", "episodic", "e", "oldest, unimportant", importance=0.1),
    ]
    full = render_context("s", rows, None).context
    got = render_context("s", rows, math.ceil((len(full) - 1) / 4))
    assert got.context == (
        "## Session Context (s)\n\n### Recent Actions (3)\n"
        "- [2026-02-07T20:15:00Z] e: newest, unimportant\n"
        "- [2026-02-07T20:14:00Z] e: old, important\n"
        "- ... (1 more)"
    )
    assert (got.memory_count, got.truncated, got.omitted) == (3, True, 1)
    tiny = render_context("s", rows, 1)
    assert tiny.context == "## Session Context (s)\n\n### Recent Actions (3)\n- ... (3 more)"  # headers stay


# ---------------------------------------------------------------- properties

LINE = re.compile(r"- \[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] [A-Za-z_]+: [^\n]{0,80}(\.\.\.)?")
MARKER = re.compile(r"- \.\.\. \((\d+) more\)")
HEADER = re.compile(r"### (.+) \((\d+)\)")


@st.composite
def context_rows(draw: st.DrawFn, n: int) -> MemoryRow:
    return msgspec.structs.replace(
        mem(
            n,
            "2026-02-07T20:15:00Z",
            draw(st.sampled_from(MEMORY_TYPES)),
            draw(st.sampled_from(["general", "error", "tool_call"])),
            draw(st.text(max_size=120)),
            importance=draw(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1)),
            metadata_json=draw(
                st.sampled_from(["{}", '{"reasoning": "r\\nr"}', "{bad", '{"reasoning": "' + "w" * 90 + '"}'])
            ),
        ),
        time_us=T0 + draw(st.integers(-(10**9), 10**9)),
    )


rows_strategy = st.integers(0, 40).flatmap(lambda k: st.tuples(*[context_rows(n) for n in range(k)])).map(list)


def section_of(row: MemoryRow) -> str:
    if row.event_type == "error":
        return "Errors"
    return dict(
        zip(("episodic", "decision", "session", "entity"), (TITLES[0], TITLES[1], TITLES[3], TITLES[4]), strict=True)
    )[row.memory_type]


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy, max_tokens=st.none() | st.integers(0, 600))
def test_context_properties(rows: list[MemoryRow], max_tokens: int | None) -> None:
    got = render_context("sess_p", rows, max_tokens)
    text = got.context
    lines = text.split("\n")
    assert lines[0] == "## Session Context (sess_p)"
    assert not text.endswith("\n")

    by_section: dict[str, list[MemoryRow]] = {}
    for r in rows:
        by_section.setdefault(section_of(r), []).append(r)
    blocks = text.split("\n\n")[1:]
    titles = [HEADER.fullmatch(b.split("\n")[0]) for b in blocks]
    assert all(titles)
    assert [m.group(1) for m in titles if m] == [t for t in TITLES if t in by_section]  # order, non-empty only

    omitted = 0
    kept_rows: list[MemoryRow] = []
    for block, title in zip(blocks, titles, strict=True):
        assert title is not None
        name, count = title.group(1), int(title.group(2))
        members = sorted(by_section[name], key=lambda r: (r.time_us, r.id), reverse=True)
        assert count == len(members)
        body = block.split("\n")[1:]
        marker = MARKER.fullmatch(body[-1]) if body else None
        k = int(marker.group(1)) if marker else 0
        shown = body[:-1] if marker else body
        assert all(LINE.fullmatch(line) for line in shown)
        assert len(shown) + k == count
        # the shown lines are the section's newest-first lines minus the dropped ones, in order
        expected_lines = [format_line(r) for r in members]
        it = iter(expected_lines)
        assert all(line in it for line in shown)
        omitted += k
        kept = Counter(shown)
        for r in members:
            line = format_line(r)
            if kept[line]:
                kept[line] -= 1
                kept_rows.append(r)
    assert got.memory_count == len(rows) and got.omitted == omitted and got.truncated == (omitted > 0)

    if max_tokens is None:
        assert omitted == 0
        return
    only_headers = len(kept_rows) == 0
    assert math.ceil(len(text) / 4) <= max_tokens or only_headers
    if omitted:
        # Dropped in priority order: nothing kept ranks below anything dropped (importance, then age).
        priority = sorted(rows, key=lambda r: (r.importance, r.time_us, r.id))
        assert {r.id for r in priority[:omitted]}.isdisjoint(
            r.id for r in kept_rows if Counter(format_line(x) for x in rows)[format_line(r)] == 1
        )
        # ...and no more than needed: restoring the last dropped line would not fit.
        last = priority[omitted - 1]
        name = section_of(last)
        k = next(
            int(m.group(1))
            for b in blocks
            if b.startswith(f"### {name} (")
            for m in [MARKER.fullmatch(b.split("\n")[-1])]
            if m
        )
        marker_delta = -(len(f"\n- ... ({k} more)")) + (len(f"\n- ... ({k - 1} more)") if k > 1 else 0)
        assert len(text) + len(format_line(last)) + 1 + marker_delta > 4 * max_tokens
