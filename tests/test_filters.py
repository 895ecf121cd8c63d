"""The Python side of the read filters: rules the SQL property test cannot pin on its own."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memtrace.rowfilter import Hider, fold_case, hidden, matches, merge_page, sort_rows
from memtrace.rows import MemoryFilter, MemoryRow

BASE = 1_770_495_300_000_000


def row(n: int, **kw: Any) -> MemoryRow:
    base: dict[str, Any] = dict(
        id=f"mem_{n:026d}",
        time_us=BASE + n,
        org_id="org_a",
        agent_id="a1",
        session_id="s1",
        memory_type="episodic",
        event_type="general",
        content="",
        metadata_json="{}",
        tags_csv="",
        dedup_key="",
        importance=0.5,
        parent_id="",
    )
    base.update(kw)
    return MemoryRow(**base)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ABC", "abc"),
        ("ΣΑΣ", "σασ"),  # Python's str.lower would end with the final sigma ς
        ("İ", "i"),  # Python's str.lower gives two code points
        ("Straße ẞ", "straße ß"),
        ("Ǆ", "ǆ"),
    ],
)
def test_fold_case_is_duckdb_lower(text: str, folded: str) -> None:
    assert fold_case(text) == folded
    assert duckdb.execute("SELECT lower(?)", [text]).fetchone() == (folded,)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_fold_case_agrees_with_duckdb_on_any_text(text: str) -> None:
    assert duckdb.execute("SELECT lower(?)", [text]).fetchone() == (fold_case(text),)


def test_empty_tuples_and_empty_content_filter_nothing() -> None:
    r = row(1, content="x")
    assert matches(r, MemoryFilter())
    assert matches(r, MemoryFilter(content_contains=""))
    assert matches(r, MemoryFilter(memory_types=(), event_types=(), tags=(), ids=()))


def test_each_rule() -> None:
    r = row(5, tags_csv="t1,t.3", content="50% O'Brien\\x", importance=0.3)
    assert matches(r, MemoryFilter(tags=("t1", "t.3"))) and not matches(r, MemoryFilter(tags=("t",)))
    assert not matches(r, MemoryFilter(tags=("t1", "t2")))
    assert matches(r, MemoryFilter(content_contains="% o'b")) and not matches(r, MemoryFilter(content_contains="_"))
    assert matches(r, MemoryFilter(content_contains="\\X"))
    assert matches(r, MemoryFilter(since_us=BASE + 5)) and not matches(r, MemoryFilter(since_us=BASE + 6))
    assert matches(r, MemoryFilter(until_us=BASE + 6)) and not matches(r, MemoryFilter(until_us=BASE + 5))
    assert matches(r, MemoryFilter(min_importance=0.3)) and not matches(r, MemoryFilter(min_importance=0.31))
    assert matches(r, MemoryFilter(ids=(r.id, "mem_x"))) and not matches(r, MemoryFilter(ids=("mem_x",)))
    assert not matches(r, MemoryFilter(agent_id="a2")) and not matches(r, MemoryFilter(session_id="s2"))
    assert not matches(r, MemoryFilter(memory_types=("decision",)))
    assert not matches(r, MemoryFilter(event_types=("error",)))


def test_equality_rules_keep_equal_values_and_drop_any_other() -> None:
    """Neither a value sorting before nor one sorting after passes an equality filter; the equal one does."""
    r = row(5, agent_id="a5", session_id="s5")
    for field in ("agent_id", "session_id"):
        equal = getattr(r, field)
        assert matches(r, MemoryFilter(**{field: equal}))
        assert not matches(r, MemoryFilter(**{field: equal[:-1] + "4"}))
        assert not matches(r, MemoryFilter(**{field: equal[:-1] + "6"}))
    for field in ("agent_id", "session_id"):  # equal text in another object (values come from JSON, not literals)
        assert matches(r, MemoryFilter(**{field: "".join([getattr(r, field)[0], getattr(r, field)[1:]])}))
    assert matches(r, MemoryFilter(since_us=BASE)) and matches(r, MemoryFilter(since_us=BASE + 5))
    assert not matches(r, MemoryFilter(until_us=BASE)) and matches(r, MemoryFilter(until_us=BASE + 9))
    assert matches(r, MemoryFilter(min_importance=0.25)) and not matches(r, MemoryFilter(min_importance=0.75))
    assert matches(r, MemoryFilter(agent_ids=("a4", "a5"))) and not matches(r, MemoryFilter(agent_ids=("a4", "a6")))
    # a rule that fails stops there: no later rule can let the row through
    assert not matches(r, MemoryFilter(agent_ids=("zz",), session_id="s5"))


def test_a_deletion_hides_exactly_what_it_matches() -> None:
    r = row(5, agent_id="a5", session_id="s5", tags_csv="t1", content="hello", importance=0.5)
    assert hidden(r, [MemoryFilter(agent_id="a5")]) and not hidden(r, [MemoryFilter(agent_id="a6")])
    assert not hidden(r, []) and hidden(r, [MemoryFilter(agent_id="a6"), MemoryFilter(session_id="s5")])
    # a deletion of listed ids only covers those ids, even past its until_us (an id is never reused)
    assert hidden(r, [MemoryFilter(ids=(r.id,), until_us=BASE)])
    assert not hidden(r, [MemoryFilter(ids=("mem_other",))])
    # a read carries the deletions as `hide`: it drops the rows they cover and only those
    assert matches(r, MemoryFilter(hide=(MemoryFilter(ids=("mem_other",)), MemoryFilter(agent_id="a6"))))
    assert not matches(r, MemoryFilter(hide=(MemoryFilter(ids=("mem_other",)), MemoryFilter(agent_id="a5"))))
    # ids with any other criterion are a filter like any other: the id alone does not hide the row
    others: list[dict[str, Any]] = [
        {"agent_id": "a6"}, {"agent_ids": ("a6",)}, {"session_id": "s6"}, {"memory_types": ("decision",)},
        {"event_types": ("error",)}, {"tags": ("t2",)}, {"content_contains": "bye"}, {"since_us": BASE + 6},
        {"min_importance": 0.9}, {"hide": (MemoryFilter(ids=(r.id,)),)},
    ]
    for extra in others:
        deletion = MemoryFilter(ids=(r.id,), **extra)
        assert not hidden(r, [deletion]), extra
        assert not Hider([deletion]).ids, extra  # not taken as a plain id deletion


def test_merge_page_bounds() -> None:
    assert merge_page([row(1)], [], "asc", 0, 0) == ([], True)  # limit 0: nothing, but a row exists
    assert merge_page([row(1)], [], "asc", 1, 1) == ([], False)
    for limit, offset in ((-1, 0), (0, -1)):
        with pytest.raises(ValueError):
            merge_page([], [], "asc", limit, offset)


def test_sort_breaks_time_ties_by_id() -> None:
    a, b, c = row(1, time_us=BASE), row(2, time_us=BASE), row(3, time_us=BASE - 1)
    assert sort_rows([a, b, c], "asc") == [c, a, b]
    assert sort_rows([a, b, c], "desc") == [b, a, c]
    with pytest.raises(ValueError):
        sort_rows([], "sideways")


def test_merge_page_dedups_sorts_and_reports_more() -> None:
    arc = [row(5), row(3), row(1)]
    local = [row(4), row(3), row(9)]
    page, more = merge_page(arc, local, "desc", 2, 0)
    assert [r.time_us - BASE for r in page] == [9, 5] and more
    page, more = merge_page(arc, local, "desc", 2, 4)
    assert [r.time_us - BASE for r in page] == [1] and not more
    page, more = merge_page(arc, local, "asc", 5, 0)
    assert [r.time_us - BASE for r in page] == [1, 3, 4, 5, 9] and not more
    assert merge_page([], [], "asc", 3, 0) == ([], False)


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(0, 20), max_size=30),
    split=st.lists(st.integers(0, 2), min_size=30, max_size=30),
    order=st.sampled_from(["asc", "desc"]),
    limit=st.integers(1, 8),
    offset=st.integers(0, 10),
)
def test_merge_page_equals_paging_the_union(
    times: list[int], split: list[int], order: str, limit: int, offset: int
) -> None:
    rows = [row(i, time_us=BASE + t) for i, t in enumerate(times)]
    # 0: only in Arc, 1: only local, 2: both. Arc answers its first offset+limit+1 rows, as callers ask.
    arc = sort_rows([r for r, s in zip(rows, split, strict=False) if s != 1], order)[: offset + limit + 1]
    local = [r for r, s in zip(rows, split, strict=False) if s != 0]
    everything = sort_rows(rows, order)
    page, more = merge_page(arc, local, order, limit, offset)
    assert page == everything[offset : offset + limit]
    assert more == (len(everything) > offset + limit)
