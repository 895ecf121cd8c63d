"""Forgetting's SQL against a real DuckDB: the delete condition removes exactly what the Python filter
matches and only in its org; pending deletions (`MemoryFilter.hide`) hide the same rows in SQL and Python."""

from __future__ import annotations

import random

import duckdb
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtrace.memory.query import HIDE_SQL_BUDGET, delete_condition, select_memories
from memtrace.rowfilter import Hider, hidden, matches
from memtrace.rows import MemoryFilter
from tests.test_query import IDS, ORGS, db, expected, load, random_filter, random_row, run

__all__ = ["db"]

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])(given(rnd=st.randoms(use_true_random=True)))
"""Every property here: 150 random cases against one DuckDB fixture."""


@PROPERTY
def test_delete_condition_deletes_exactly_the_orgs_matching_rows(db: duckdb.DuckDBPyConnection,
                                                                 rnd: random.Random) -> None:
    rows = [random_row(rnd, i) for i in rnd.sample(IDS, rnd.randrange(4, len(IDS) + 1))]
    load(db, rows)
    f = random_filter(rnd, rows)
    org = rnd.choice(ORGS)
    where = delete_condition(org, f)
    assert "org_id = " in where
    db.execute(f"DELETE FROM events WHERE {where}")
    left = {r[0] for r in db.execute("SELECT id FROM events").fetchall()}
    assert left == {r.id for r in rows if not (r.org_id == org and matches(r, f))}


@PROPERTY
def test_pending_deletions_hide_the_same_rows_in_sql_and_python(db: duckdb.DuckDBPyConnection,
                                                                rnd: random.Random) -> None:
    rows = [random_row(rnd, i) for i in rnd.sample(IDS, rnd.randrange(4, len(IDS) + 1))]
    load(db, rows)
    hide = tuple(random_filter(rnd, rows) for _ in range(rnd.randrange(1, 4)))
    f = msgspec.structs.replace(random_filter(rnd, rows), hide=hide)
    org = rnd.choice(ORGS)
    order = rnd.choice(["asc", "desc"])
    got = run(db, select_memories("events", org, f, order, 100, 0))
    assert got == expected(rows, org, f, order)
    assert all(not matches(r, h) for r in got for h in hide)
    hider = Hider(hide)
    assert [hider.covers(r) for r in rows] == [hidden(r, hide) for r in rows]


def test_many_pending_deletions_stay_within_the_sql_budget() -> None:
    hide = tuple(MemoryFilter(ids=(f"mem_{i:026d}",), until_us=10**15) for i in range(1000))
    hide += tuple(MemoryFilter(agent_id=f"agent{i}", until_us=10**15) for i in range(1000))
    sql = select_memories("events", "org_a", MemoryFilter(hide=hide), "desc", 10, 0)
    assert len(sql) < 2 * HIDE_SQL_BUDGET + 2000
