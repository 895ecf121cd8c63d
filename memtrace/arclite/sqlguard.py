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


def check(sql: str, header_db: bool) -> None:
    """Raise Refused unless `sql` is exactly one read-only SELECT touching only bare table names.

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
