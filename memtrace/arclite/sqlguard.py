"""Deciding whether a query may run, using DuckDB's own parser rather than regular expressions.

Regexes over SQL are fooled by comments, quoting and new syntax; DuckDB's parser is not. The checks are a
first line only: queries also run with external access disabled and inside a READ ONLY transaction.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb
import orjson

MAX_SQL = 10_000
MAX_WHERE = 65_536
"""A delete's `where` may be longer than a query (Arc sets no limit there): ~2,000 quoted ids fit."""

SHOW_DATABASES_RE = re.compile(r"(?i)^\s*SHOW\s+DATABASES\s*;?\s*$")
SHOW_TABLES_RE = re.compile(r"(?i)^\s*SHOW\s+(?:TABLES|MEASUREMENTS)(?:\s+FROM\s+([\w-]+))?\s*;?\s*$")

# Table functions that read files, URLs or run SQL text we never inspected. External access is off
# anyway; refusing them here turns a confusing permission error into a clear 400.
_DENIED_FUNCTION_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_")
_DENIED_FUNCTIONS = {"glob", "sniff_csv", "query", "query_table", "load_aws_credentials", "http_get"}
_PATHLIKE = re.compile(r"[./\\:]")

_parser = duckdb.connect(":memory:", config={"enable_external_access": False})


class Refused(Exception):
    """The SQL is not something a read-only Arc query endpoint will run (HTTP 400)."""


def check(sql: str, header_db: bool) -> bool:
    """Raise Refused unless `sql` is exactly one read-only SELECT touching only bare table names; returns
    whether its result has an order (a top-level ORDER BY): Arc promises none without one.

    `header_db` says whether the client chose a database by header; Arc then refuses `db.table` with a
    specific message, which we mirror. arclite refuses qualified names in every case (see the package
    docstring), so no query can reach another schema such as the hidden staging tables.
    """
    if not sql.strip():
        raise Refused("SQL query is required")
    if len(sql) > MAX_SQL:
        raise Refused(f"SQL query exceeds maximum length ({MAX_SQL} characters)")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise Refused(f"SQL parse error: {exc}") from exc
    if len(statements) != 1:
        raise Refused("Exactly one SQL statement is allowed")
    if statements[0].type != duckdb.StatementType.SELECT:
        stype = str(statements[0].type.name)
        raise Refused(f"Dangerous SQL operation not allowed: {stype} statements are refused")
    ast = _ast(sql)
    for node in _walk(ast):
        kind = node.get("type")
        if kind in ("BASE_TABLE", "SHOW_REF") and (node.get("schema_name") or node.get("catalog_name")):
            if header_db:
                raise Refused(
                    "Cross-database queries (db.table syntax) not allowed when x-arc-database header is set"
                )
            raise Refused("Qualified table names (db.table) are not supported by arclite; use x-arc-database")
        if kind == "BASE_TABLE" and _PATHLIKE.search(str(node.get("table_name", ""))):
            raise Refused("Reading files is not allowed")
        if kind == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            name = str(fn.get("function_name", "")).lower()
            if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_FUNCTION_PREFIXES):
                raise Refused(f"Table function {name}() is not allowed")
    return _ordered(ast)


def _ordered(ast: Any) -> bool:
    """True when the statement's outermost node (a SELECT or a set operation) ends with ORDER BY, or it is a
    DESCRIBE/SUMMARIZE (columns in table order, in Arc too)."""
    statements = ast.get("statements") or [{}]
    node = statements[0].get("node") or {}
    if (node.get("from_table") or {}).get("type") == "SHOW_REF":
        return True
    return any(modifier.get("type") == "ORDER_MODIFIER" for modifier in node.get("modifiers") or [])


def _ast(sql: str) -> Any:
    cur = _parser.cursor()
    try:
        raw = cur.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    finally:
        cur.close()
    doc = orjson.loads(raw[0] if raw else "{}")
    if doc.get("error"):
        raise Refused(f"SQL not accepted: {doc.get('error_message', 'unparseable')}")
    return doc


def _walk(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            out.append(cur)
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return out


# Arc refuses these words outside string literals in a delete's `where` (internal/api/delete.go); arclite
# does too, so that a `where` that works here also works against a real Arc.
_ARC_FORBIDDEN_WORDS = frozenset({
    "DROP", "DELETE", "INSERT", "UPDATE", "EXEC", "EXECUTE", "UNION", "SELECT", "CREATE", "ALTER", "COPY",
    "ATTACH", "DETACH", "LOAD", "INSTALL", "PRAGMA", "CALL", "SET",
})
WHERE_REQUIRED = "WHERE clause is required. To delete all data, use WHERE clause '1=1' with confirm=true"


def wrap_where(measurement: str, where: str, verb: str) -> str:
    """The only shapes in which a client's `where` ever reaches DuckDB (`verb` is SELECT count(*) or DELETE)."""
    return f'{verb} FROM "{measurement}" WHERE ({where}\n)'


def check_where(measurement: str, where: str) -> bool:
    """Raise Refused unless `where` is one plain boolean expression over `measurement`'s own columns.

    The text is admitted only as DuckDB parses it inside `SELECT count(*) FROM "<m>" WHERE (<where>)`:
    that must be exactly one SELECT whose only table is the bare measurement, with nothing after the
    WHERE (no LIMIT, GROUP BY, UNION, ...), and the expression may hold no subquery, table function,
    parameter or comment. Returns True when the expression names no column at all (`1=1`, `true`):
    a delete of everything, which Arc makes the caller confirm.
    """
    if not where.strip():
        raise Refused(WHERE_REQUIRED)
    if len(where) > MAX_WHERE:
        raise Refused(f"WHERE clause exceeds maximum length ({MAX_WHERE} characters)")
    try:
        tokens = duckdb.tokenize(where)
    except duckdb.Error as exc:
        raise Refused(f"WHERE clause parse error: {first_line(exc)}") from exc
    _arc_word_checks(where, tokens)
    sql = wrap_where(measurement, where, "SELECT count(*)")
    try:
        statements = duckdb.extract_statements(sql)
        deletes = duckdb.extract_statements(wrap_where(measurement, where, "DELETE"))
    except duckdb.Error as exc:
        raise Refused(f"WHERE clause parse error: {first_line(exc)}") from exc
    if len(statements) != 1 or len(deletes) != 1 or statements[0].type != duckdb.StatementType.SELECT \
            or deletes[0].type != duckdb.StatementType.DELETE:
        raise Refused("WHERE clause contains forbidden pattern: ;")
    doc = _ast(sql)
    stmts = doc.get("statements") or []
    if len(stmts) != 1 or stmts[0].get("named_param_map"):
        raise Refused("WHERE clause may not contain parameters")
    node = stmts[0].get("node") or {}
    src = node.get("from_table") or {}
    plain = (
        node.get("type") == "SELECT_NODE" and not node.get("modifiers") and not (node.get("cte_map") or {}).get("map")
        and not node.get("group_expressions") and not node.get("group_sets") and node.get("having") is None
        and node.get("qualify") is None and node.get("sample") is None and len(node.get("select_list") or []) == 1
        and src.get("type") == "BASE_TABLE" and src.get("table_name") == measurement
        and not src.get("schema_name") and not src.get("catalog_name") and not src.get("alias")
        and node.get("where_clause") is not None
    )
    if not plain:
        raise Refused("WHERE clause must be a single boolean expression")
    columns = 0
    for part in _walk(node["where_clause"]):
        cls = part.get("class")
        kind = part.get("type")
        if cls == "SUBQUERY" or kind in ("SUBQUERY", "BASE_TABLE", "TABLE_FUNCTION", "SELECT_NODE"):
            raise Refused("WHERE clause may not contain subqueries")
        if cls == "PARAMETER":
            raise Refused("WHERE clause may not contain parameters")
        if cls == "COLUMN_REF":
            columns += 1
    return columns == 0


def _arc_word_checks(where: str, tokens: list[tuple[int, Any]]) -> None:
    """Arc's punctuation and keyword refusals, applied to DuckDB's tokens so string literals stay data."""
    for i, (pos, kind) in enumerate(tokens):
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(where)
        text = where[pos:end].strip()
        if kind == duckdb.token_type.comment:
            raise Refused(f"WHERE clause contains forbidden pattern: {'--' if text.startswith('--') else '/*'}")
        if kind == duckdb.token_type.operator and ";" in text:
            raise Refused("WHERE clause contains forbidden pattern: ;")
        if kind in (duckdb.token_type.keyword, duckdb.token_type.identifier) and text.upper() in _ARC_FORBIDDEN_WORDS:
            raise Refused(f"WHERE clause contains forbidden keyword: {text.upper()}")


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
