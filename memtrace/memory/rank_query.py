"""The ranked search query: `ranking.py`'s BM25F computed by Arc's own SQL (DuckDB), with no extension.

Each row carries its search terms in the `terms` column (`memtrace/terms.py`, written at delivery). The query
counts the query's terms in it with plain string functions, gets each neighbour's counts with `lag`/`lead`
over the memories of the same agent and session in time order, and the corpus statistics (N, df, the
lengths) as window aggregates over every memory the filters select, so one scan answers it all and only the
best rows leave Arc, each carrying the statistics that the journal's fresh rows are then scored with.
Five levels, explicit about nothing they need not be: DuckDB's planning time grows with every level and
window expression, and on an agent's few thousand memories planning is most of the cost.

Nested subqueries rather than `WITH`, and the same WHERE as every other read (`query.where_clause`): the
org's own measurement, `org_id`, the filters and the pending deletions, time bounds first for Arc's
partition pruner. Rows delivered before the `terms` column existed have it NULL and do not rank.
"""

# ruff: noqa: S608  (every interpolated piece is a validated name, a number, or quote_literal'd)

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memtrace.errors import Invalid
from memtrace.memory import query
from memtrace.memory.ranking import B_NEAR, B_OWN, K1, NEAR_WEIGHT, NEIGHBOUR_WEIGHTS, CorpusStats
from memtrace.rows import MemoryFilter, MemoryRow


def _tf(i: int, term: str) -> str:
    needle = f"|{term}|"
    return f"(length(tx)-length(replace(tx,{query.quote_literal(needle)},'')))//{len(needle)} AS t{i}"


def _near(expr: str) -> str:
    return "+".join(f"{w!r}*{'lag' if o < 0 else 'lead'}({expr},{abs(o)},0)OVER w" for o, w in NEIGHBOUR_WEIGHTS)


def _sql(measurement: str, org_id: str, f: MemoryFilter, terms: Sequence[str], limit: int) -> str:
    table = query.quote_ident(measurement)
    cols = query.SELECT_LIST
    n = range(len(terms))
    base = (f"SELECT {cols},coalesce(terms,'') AS tx FROM {table} WHERE {query.where_clause(org_id, f)} "
            f"{query.DEDUP}")
    tfs = ",".join(_tf(i, t) for i, t in enumerate(terms))
    counted = f"SELECT {cols},(length(tx)-length(replace(tx,'|','')))//2 AS dl,{tfs} FROM ({base})"
    # df as sum(sign(tf)): DuckDB computes `count(*) FILTER (...) OVER ()` in time quadratic in the rows (seconds
    # per term on 100k rows, where the sum takes tens of milliseconds).
    near = ",".join(f"{_near(f't{i}')} AS n{i},sum(sign(t{i}))OVER() AS df{i}" for i in n)
    windowed = (f"SELECT *,{near},{_near('dl')} AS ndl,count(*)OVER() AS rank_docs,sum(dl)OVER() AS rank_len "
                f"FROM ({counted}) WINDOW w AS (PARTITION BY agent_id,session_id ORDER BY time,id)")
    avg = "nullif(rank_len/rank_docs,0)"
    normed = (f"SELECT *,coalesce(1-{B_OWN!r}+{B_OWN!r}*dl/{avg},1) AS dn,"
              f"1-{B_NEAR!r}+{B_NEAR!r}*ndl/({avg}*{NEAR_WEIGHT!r}) AS nn FROM ({windowed})")
    xs = [f"(t{i}/dn+coalesce(n{i}/nn,0))" for i in n]
    idfs = [f"ln(1+(rank_docs-df{i}+0.5)/(df{i}+0.5))" for i in n]
    score = "+".join(f"{idf}*{x}*{K1 + 1!r}/({x}+{K1!r})" for idf, x in zip(idfs, xs, strict=True))
    dfs = ",".join(f"df{i}" for i in n)
    shares = "+".join(f"t{i}" for i in n)
    return (f"SELECT {cols},{score} AS score,rank_docs,rank_len,{dfs} FROM ({normed}) WHERE {shares}>0 "
            f"ORDER BY score DESC,time DESC,id DESC LIMIT {limit}")


def select_ranked(measurement: str, org_id: str, f: MemoryFilter, terms: Sequence[str], limit: int
                  ) -> tuple[str, int]:
    """The `limit` best memories matching `f` for `terms` (distinct, non-empty), best first, each with
    `score` and the corpus statistics (decode with `ranked_from_arc`), and how many of the terms it ranks by:
    the first ones that fit Arc's query cap (a filter with many pending deletions leaves room for fewer)."""
    if not terms:
        raise ValueError("select_ranked needs at least one term")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise Invalid("limit must be a positive integer")
    used = len(terms)
    while True:
        sql = _sql(measurement, org_id, f, terms[:used], limit)
        if len(sql) <= query.MAX_SQL_CHARS or used == 1:
            return query.capped(sql), used
        used -= 1


def ranked_from_arc(columns: list[str], data: list[list[Any]], n_terms: int
                    ) -> tuple[list[tuple[MemoryRow, float]], CorpusStats | None]:
    """(row, score) of the rows that matched, best first, and the corpus statistics (None without a row)."""
    rows = query.rows_from_arc(columns, data)
    names = ("score", "rank_docs", "rank_len", *(f"df{i}" for i in range(n_terms)))
    extra = list(query.by_name(columns, data, names))
    if not extra:
        return [], None
    first = extra[0]
    stats = CorpusStats(int(first[1] or 0), float(first[2] or 0), tuple(int(v or 0) for v in first[3:]))
    hits = [(row, float(values[0])) for row, values in zip(rows, extra, strict=True) if (values[0] or 0) > 0]
    return hits, stats


def select_neighbours(measurement: str, org_id: str, f: MemoryFilter, hit_ids: Sequence[str],
                      sessions: Sequence[tuple[str, str]], around: int) -> str:
    """The memories matching `f` within `around` places of one of `hit_ids` in its (agent, session) time order:
    the hits and what happened just before and after them (decode with `query.rows_from_arc`)."""
    if not hit_ids or not sessions:
        raise ValueError("select_neighbours needs hits")
    if isinstance(around, bool) or not isinstance(around, int) or around < 0:
        raise Invalid("neighbors must be a non-negative integer")
    table = query.quote_ident(measurement)
    cols = query.SELECT_LIST
    agents = query.in_list(sorted({a for a, _ in sessions}), "agent_id")
    session_ids = query.in_list(sorted({s for _, s in sessions}), "session_id")
    ids = query.in_list(hit_ids, "id")
    where = query.where_clause(org_id, f)
    base = (f"SELECT {cols} FROM {table} WHERE {where} AND agent_id IN ({agents}) "
            f"AND session_id IN ({session_ids}) {query.DEDUP}")
    near = (f"max(CASE WHEN id IN ({ids}) THEN 1 ELSE 0 END) OVER (PARTITION BY agent_id,session_id "
            f"ORDER BY time,id ROWS BETWEEN {around} PRECEDING AND {around} FOLLOWING) AS near")
    return query.capped(f"SELECT {cols} FROM (SELECT *,{near} FROM ({base})) WHERE near=1 ORDER BY time,id")
