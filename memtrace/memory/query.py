"""The one place SQL is written: every query Memtrace sends to Arc is built here (the ranked search builds on
it in `rank_query.py`), from validated parts.

Rules every query follows:
- It names the org's own measurement (`quote_ident`) and filters `org_id`.
- Strings reach SQL only through `quote_literal`, after the value was checked against its contract
  pattern where it has one (ids, event types, tags, memory ids, dedup keys).
- Time bounds are written `time >= '<RFC 3339 Z>'` / `time < '...'` in the WHERE clause, before any
  other condition: that is the shape Arc's partition pruner recognises, so bounded reads only open the
  hours they need. DuckDB casts the literal to TIMESTAMP, exact to the microsecond. Inside FILTER
  clauses (agent stats) bounds are `TIMESTAMP '...'` instead, which the pruner ignores; otherwise it
  would prune the whole query to the last 24 h.
- Rows are de-duplicated by id: a crash can deliver a memory to Arc twice (identical copies).
- The result stays under Arc's 10,000-character query cap or the builder raises `Invalid`.
"""

# ruff: noqa: S608  (this is the SQL builder: every interpolated piece is validated or quote_literal'd)

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from memtrace.errors import Invalid
from memtrace.memory.model import MEMORY_TYPES
from memtrace.patterns import EVENT_TYPE_RE, ID_RE, MEASUREMENT_RE, MEMORY_ID_RE, RULES, TAG_RE, in_words
from memtrace.rowfilter import fold_case, only_ids
from memtrace.rows import ARC_COLUMNS, MemoryFilter, MemoryRow, column_index
from memtrace.timeutil import MAX_US, MIN_US, format_us, parse_arc_time

COLUMNS = ARC_COLUMNS  # what every SELECT names, in MemoryRow field order
_TIME, _IMPORTANCE = column_index("time"), column_index("importance")  # the non-text columns
_TYPED = (_TIME, _IMPORTANCE)

MAX_SQL_CHARS = 10_000
"""Arc refuses longer queries with a 400."""

SELECT_LIST = ", ".join(COLUMNS)
DEDUP = "QUALIFY row_number() OVER (PARTITION BY id ORDER BY time) = 1"
# Characters that mean nothing to DuckDB's lexer nor to any of Arc's regex passes over the SQL text
# (literal masking, comment stripping, keyword denylist, partition pruner).
_PLAIN_LITERAL_RE = re.compile(r"[A-Za-z0-9 _.,:@+-]*")


def quote_ident(name: str) -> str:
    """A measurement name as a quoted SQL identifier, after checking Arc's own naming rule."""
    if not MEASUREMENT_RE.fullmatch(name):
        raise Invalid(f"measurement must match ^[A-Za-z][A-Za-z0-9_-]*$ (at most 128 chars), got {name!r}")
    return f'"{name}"'


def quote_literal(value: str) -> str:
    """A SQL expression that evaluates to exactly `value` in DuckDB, whatever characters it holds.

    Plain text (letters, digits, space and `_.,:@+-`, without `--`) is emitted as `'value'`. Anything
    else becomes `decode(unhex('<utf-8 hex>'))`, which DuckDB folds to the same VARCHAR. The SQL then
    contains no quote, backslash, comment marker, semicolon or control character taken from user
    input, so nothing in the value can end the literal: not in DuckDB, and not in Arc's regex-based
    passes over the SQL text, which do not lex like DuckDB (Arc's literal masker, for one, treats
    `\\'` as an escaped quote where DuckDB sees a backslash and the end of the string). NUL and other
    control characters are matched literally this way (DuckDB VARCHAR holds them; tested).
    Text that is not valid Unicode (a lone surrogate) cannot be sent and raises `Invalid`.
    """
    if _PLAIN_LITERAL_RE.fullmatch(value) and "--" not in value:
        return f"'{value}'"
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("text filters must be valid Unicode (no lone surrogates)") from None
    return f"decode(unhex('{raw.hex()}'))"


def _checked(value: str, pattern: re.Pattern[str], field: str) -> str:
    if not pattern.fullmatch(value):
        words = in_words(RULES[pattern.pattern]) if pattern.pattern in RULES else "is not in the accepted form"
        raise Invalid(f"{field} {words}; got {value[:80]!r}")
    return quote_literal(value)


def _in_list(values: Sequence[str], pattern: re.Pattern[str], field: str) -> str:
    return ", ".join(_checked(v, pattern, field) for v in dict.fromkeys(values))


_LISTED = {"agent_id": ID_RE, "session_id": ID_RE, "id": MEMORY_ID_RE}


def in_list(values: Sequence[str], field: str) -> str:
    """The checked, quoted items of `field IN (...)` for `field` in agent_id, session_id, id; a session_id may
    be "" (the memories of no session)."""
    pattern = _LISTED[field]
    return ", ".join("''" if field == "session_id" and not v else _checked(v, pattern, field)
                     for v in dict.fromkeys(values))


def _time_literal(us: int) -> str:
    return f"'{format_us(us)}'"


def _time_bounds(f: MemoryFilter, typed: bool = False) -> list[str]:
    """since inclusive, until exclusive; bounds outside TIMESTAMP's range become TRUE/FALSE.

    `typed` writes `TIMESTAMP '...'`, which Arc's partition pruner ignores: for bounds that must not prune
    the query (inside `NOT (...)` of a pending deletion)."""
    conds: list[str] = []
    kind = "TIMESTAMP " if typed else ""
    if f.since_us is not None:
        if f.since_us > MAX_US:
            conds.append("FALSE")
        elif f.since_us > MIN_US:
            conds.append(f"time >= {kind}{_time_literal(f.since_us)}")
    if f.until_us is not None:
        if f.until_us <= MIN_US:
            conds.append("FALSE")
        elif f.until_us <= MAX_US:
            conds.append(f"time < {kind}{_time_literal(f.until_us)}")
    return conds


def _org(org_id: str) -> str:
    if not org_id:
        raise Invalid("org_id must not be empty")
    return f"org_id = {quote_literal(org_id)}"


def where_clause(org_id: str, f: MemoryFilter) -> str:
    """The WHERE of every read of the org's memories matching `f` (pending deletions in `f.hide` excluded)."""
    return " AND ".join(_conditions(org_id, f))


def _conditions(org_id: str, f: MemoryFilter) -> list[str]:
    conds = _time_bounds(f)
    conds.append(_org(org_id))
    conds.extend(_match_conditions(f))
    if f.hide:
        conds.extend(_hidden(f.hide))
    return conds


# At most this much SQL excludes pending deletions in one query; deletions past it are still filtered out of
# Arc's answer in Python (`filters.hidden`), only pages and counts may then come out short until Arc applies them.
HIDE_SQL_BUDGET = 4000


def _hidden(deletions: Sequence[MemoryFilter]) -> list[str]:
    """`NOT (deletion)` clauses for pending deletions, id-only ones merged into one `NOT IN`, within the budget.

    `coalesce(..., FALSE)`: a NULL column makes a condition NULL, and `NOT NULL` would hide the row."""
    ids = [i for d in deletions if only_ids(d) for i in d.ids]
    parts: list[str] = []
    used = 0
    if ids:
        kept: list[str] = []
        for memory_id in dict.fromkeys(ids):
            if used + len(memory_id) + 4 > HIDE_SQL_BUDGET // 2:
                break
            kept.append(memory_id)
            used += len(memory_id) + 4
        parts.append(f"coalesce(id NOT IN ({_in_list(kept, MEMORY_ID_RE, 'id')}), TRUE)")
    for d in deletions:
        if only_ids(d):
            continue
        clause = f"NOT coalesce(({' AND '.join([*_time_bounds(d, True), *_match_conditions(d)]) or 'TRUE'}), FALSE)"
        if used + len(clause) > HIDE_SQL_BUDGET:
            break
        parts.append(clause)
        used += len(clause)
    return parts


def _match_conditions(f: MemoryFilter) -> list[str]:
    conds: list[str] = []
    if f.agent_id is not None:
        conds.append(f"agent_id = {_checked(f.agent_id, ID_RE, 'agent_id')}")
    if f.agent_ids:
        conds.append(f"agent_id IN ({_in_list(f.agent_ids, ID_RE, 'agent_id')})")
    if f.session_id is not None:
        conds.append(f"session_id = {_checked(f.session_id, ID_RE, 'session_id')}")
    if f.memory_types:
        for mt in f.memory_types:
            if mt not in MEMORY_TYPES:
                raise Invalid(f"memory_type must be one of {', '.join(MEMORY_TYPES)}, got {mt[:40]!r}")
        conds.append(f"memory_type IN ({', '.join(quote_literal(m) for m in dict.fromkeys(f.memory_types))})")
    if f.event_types:
        conds.append(f"event_type IN ({_in_list(f.event_types, EVENT_TYPE_RE, 'event_type')})")
    if f.ids:
        conds.append(f"id IN ({_in_list(f.ids, MEMORY_ID_RE, 'id')})")
    if f.min_importance is not None:
        mi = float(f.min_importance)
        if not math.isfinite(mi):
            raise Invalid("min_importance must be a finite number")
        # A string cast parses the shortest repr exactly; a bare 0.1 would be a DECIMAL literal first.
        conds.append(f"coalesce(importance, 0.5) >= CAST('{mi!r}' AS DOUBLE)")
    if f.tags:
        tags = _in_list(f.tags, TAG_RE, "tags")
        conds.append(f"list_has_all(string_split(tags_csv, ','), [{tags}])")
    if f.content_contains:
        conds.append(f"contains(lower(content), {quote_literal(fold_case(f.content_contains))})")
    return conds


def _direction(order: str) -> str:
    if order == "desc":
        return "DESC"
    if order == "asc":
        return "ASC"
    raise Invalid(f"order must be asc or desc, got {order[:20]!r}")


def _non_negative(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{field} must be a non-negative integer")
    return value


def capped(sql: str) -> str:
    """`sql`, or Invalid when it exceeds Arc's query cap."""
    if len(sql) > MAX_SQL_CHARS:
        raise Invalid(
            "the filters are too long to query (Arc accepts 10,000 characters of SQL): shorten "
            "content_contains or pass fewer event_types, tags or ids"
        )
    return sql


def select_memories(measurement: str, org_id: str, f: MemoryFilter, order: str, limit: int, offset: int) -> str:
    """The page of de-duplicated memories matching `f`, ordered by (time, id) in `order`.

    Two phases, because de-duplicating whole rows is what costs: the inner query de-duplicates and
    pages over (id, time) only, the outer fetches full rows for those ids (and de-duplicates the few
    copies again). On 100k rows in DuckDB: 26 ms, against 58 ms for one QUALIFY over full rows and
    50 ms for a plain top-N with no de-duplication at all.
    """
    table = quote_ident(measurement)
    direction = _direction(order)
    limit = _non_negative(limit, "limit")
    offset = _non_negative(offset, "offset")
    outer = [*_time_bounds(f), _org(org_id)]
    inner = " AND ".join(_conditions(org_id, f))
    sort = f"ORDER BY time {direction}, id {direction}"
    page_ids = f"SELECT id FROM {table} WHERE {inner} {DEDUP} {sort} LIMIT {limit} OFFSET {offset}"
    return capped(
        f"SELECT {SELECT_LIST} FROM {table} WHERE {' AND '.join(outer)} AND id IN ({page_ids}) {DEDUP} {sort}"
    )


def memory_stats(measurement: str, org_id: str, f: MemoryFilter, since_24h_us: int) -> str:
    """Per memory_type, over memories matching `f`: distinct ids in total, since `since_24h_us`
    (inclusive), and those of them with event_type `error`. Columns: memory_type, total, last_24h,
    errors_24h (decode with `stats_from_arc`).

    One scan. The 24 h window lives in FILTER clauses written `TIMESTAMP '...'`, a shape Arc's
    partition pruner ignores; written like a WHERE bound it would prune the all-time total to 24 h.
    """
    table = quote_ident(measurement)
    where = " AND ".join(_conditions(org_id, f))
    since = f"time >= TIMESTAMP {_time_literal(min(max(since_24h_us, MIN_US), MAX_US))}"
    return capped(
        f"SELECT memory_type, count(DISTINCT id) AS total, "
        f"count(DISTINCT id) FILTER (WHERE {since}) AS last_24h, "
        f"count(DISTINCT id) FILTER (WHERE {since} AND event_type = 'error') AS errors_24h "
        f"FROM {table} WHERE {where} GROUP BY memory_type ORDER BY memory_type"
    )


def stats_from_arc(columns: list[str], data: list[list[Any]]) -> list[tuple[str, int, int, int]]:
    """(memory_type, total, last_24h, errors_24h) rows from the answer to `memory_stats`; NULL reads as 0."""
    names = ("memory_type", "total", "last_24h", "errors_24h")
    return [(_text(mt), int(total or 0), int(recent or 0), int(errors or 0))
            for mt, total, recent, errors in by_name(columns, data, names)]


def by_name(columns: list[str], data: list[list[Any]], names: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Each row's values for `names`, found by column name (None where Arc sent no such column)."""
    index = {name: i for i, name in enumerate(columns)}
    picks = [index.get(name, -1) for name in names]
    for raw in data:
        yield tuple(raw[i] if 0 <= i < len(raw) else None for i in picks)


def select_ids(measurement: str, org_id: str, ids: Sequence[str]) -> str:
    """Which of `ids` Arc already holds for the org (rows carry only `id`; decode with `rows_from_arc`).

    The answer is meant as a membership set: when the ids do not fit Arc's query cap as an IN list,
    the query asks for every id in [min(ids), max(ids)] instead, a superset that answers the same
    membership questions for `ids`. Raises ValueError for an empty `ids`.
    """
    if not ids:
        raise ValueError("select_ids needs at least one id")
    table = quote_ident(measurement)
    listed = _in_list(ids, MEMORY_ID_RE, "id")
    sql = f"SELECT DISTINCT id FROM {table} WHERE {_org(org_id)} AND id IN ({listed})"
    if len(sql) <= MAX_SQL_CHARS:
        return sql
    low, high = quote_literal(min(ids)), quote_literal(max(ids))
    return f"SELECT DISTINCT id FROM {table} WHERE {_org(org_id)} AND id >= {low} AND id <= {high}"


def delete_condition(org_id: str, f: MemoryFilter) -> str:
    """The `where` of an Arc delete for the org's memories matching `f`: always `org_id = '<org>'` first among
    the conditions after the time bounds, so orgs sharing a database and measurement never touch each other."""
    conds = _conditions(org_id, msgspec.structs.replace(f, hide=()))
    return capped(" AND ".join(conds))


def dedup_keys_to_release(measurement: str, org_id: str, f: MemoryFilter, since_us: int) -> str:
    """`(dedup_key, time)` of the org's rows matching `f` stored at or after `since_us` (the dedup window):
    the ledger entries a deletion must release so the same content can be written again."""
    table = quote_ident(measurement)
    bounded = msgspec.structs.replace(f, hide=(), since_us=max(since_us, f.since_us or since_us))
    where = " AND ".join(_conditions(org_id, bounded))
    return capped(f"SELECT DISTINCT dedup_key, time FROM {table} WHERE {where}")


def time_span(measurement: str, org_id: str, f: MemoryFilter) -> str:
    """`lo, hi, n`: earliest and latest time and row count of the org's rows matching `f` (to split deletes)."""
    table = quote_ident(measurement)
    where = " AND ".join(_conditions(org_id, msgspec.structs.replace(f, hide=())))
    return capped(f"SELECT min(time) AS lo, max(time) AS hi, count(*) AS n FROM {table} WHERE {where}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def rows_from_arc(columns: list[str], data: list[list[Any]]) -> list[MemoryRow]:
    """MemoryRows from Arc's row-major JSON answer, whatever columns it returned and in whatever order.

    Missing columns and NULLs read as "" (strings), 0.5 (importance) and 0 (time), so a measurement
    written before a column existed still lists; a non-string value in a text column is str()'d.
    `time` arrives as an RFC 3339 string. The rows are reordered into MemoryRow's (array-like) field
    order and converted by msgspec in one call: ~3.5 µs a row (0.7 of it the time parse) against ~4.7 µs
    building each Struct from keyword arguments.
    """
    if not data:
        return []
    index = {name: i for i, name in enumerate(columns)}
    picks = [index.get(name, -1) for name in COLUMNS]
    width = len(columns)
    ordered = picks == list(range(len(COLUMNS)))
    lists: list[list[Any]] = []
    for raw in data:
        if ordered and len(raw) == width:
            values = list(raw[: len(COLUMNS)])
        else:
            values = [raw[i] if 0 <= i < len(raw) else None for i in picks]
        t, imp = values[_TIME], values[_IMPORTANCE]
        values[_TIME] = 0 if t is None else parse_arc_time(t)
        values[_IMPORTANCE] = 0.5 if imp is None else float(imp)
        if None in values:
            values = [("" if v is None else v) for v in values]
        lists.append(values)
    try:
        return msgspec.convert(lists, list[MemoryRow])
    except msgspec.ValidationError:  # a text column holding numbers or booleans: the slow, forgiving path
        return [
            msgspec.convert([v if n in _TYPED else _text(v) for n, v in enumerate(values)], MemoryRow)
            for values in lists
        ]


def timeline_counts(measurement: str, org_id: str, f: MemoryFilter, bucket_us: int) -> str:
    """Per (bucket start, memory_type) over memories matching `f`: distinct ids, and those with event_type
    `error`. Columns: bucket, memory_type, count, errors (decode with `timeline_from_arc`).

    Buckets are `bucket_us` wide and aligned on the Unix epoch (an explicit origin: DuckDB's default,
    2000-01-03, would shift widths that do not divide a day), so the journal's rows bucket the same way in
    Python (`time_us - time_us % bucket_us`). Copies of one id share its time, hence its bucket, so a
    distinct count per bucket is exact. `f` must carry both time bounds: a timeline is always a window.
    """
    if f.since_us is None or f.until_us is None:
        raise ValueError("timeline_counts needs since_us and until_us")
    if isinstance(bucket_us, bool) or not isinstance(bucket_us, int) or bucket_us <= 0 or bucket_us % 1_000_000:
        raise Invalid("bucket must be a positive whole number of seconds")
    table = quote_ident(measurement)
    where = " AND ".join(_conditions(org_id, f))
    bucket = f"time_bucket(INTERVAL '{bucket_us // 1_000_000} seconds', time, TIMESTAMP '1970-01-01 00:00:00')"
    return capped(
        f"SELECT {bucket} AS bucket, memory_type, count(DISTINCT id) AS count, "
        f"count(DISTINCT id) FILTER (WHERE event_type = 'error') AS errors "
        f"FROM {table} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2"
    )


def timeline_from_arc(columns: list[str], data: list[list[Any]]) -> list[tuple[int, str, int, int]]:
    """(bucket start µs, memory_type, count, errors) rows from the answer to `timeline_counts`."""
    return [(parse_arc_time(start), _text(mt), int(count or 0), int(errors or 0))
            for start, mt, count, errors in by_name(columns, data, ("bucket", "memory_type", "count", "errors"))
            if start is not None]
