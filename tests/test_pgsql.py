"""The SQLite → PostgreSQL rewrite the shared backend runs every repository query through (`memtrace/pgsql.py`)."""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg")

from memtrace.pgsql import bind, describe, to_pg


def test_placeholders_and_literal_percent_signs() -> None:
    assert to_pg("SELECT * FROM t WHERE a = ? AND b LIKE '5%'") == "SELECT * FROM t WHERE a = %s AND b LIKE '5%%'"


def test_numbered_placeholders_are_repeated_in_order_of_use() -> None:
    sql, params = bind("UPDATE a SET x = ?1 WHERE o = ?2 AND (x IS NULL OR x < ?1)", ("t", "org"))
    assert sql == "UPDATE a SET x = %s WHERE o = %s AND (x IS NULL OR x < %s)"
    assert params == ("t", "org", "t")
    assert bind("SELECT ?", (1,)) == ("SELECT %s", (1,))


def test_sqlite_only_constructs() -> None:
    assert to_pg("SELECT id FROM agents ORDER BY created_at DESC, rowid DESC") == \
        "SELECT id FROM agents ORDER BY created_at DESC, seq DESC"
    assert to_pg("SELECT 1 FROM s WHERE org_id = ? AND 0") == "SELECT 1 FROM s WHERE org_id = %s AND false"
    assert to_pg("SELECT COUNT(*), COALESCE(SUM(status = 'active'), 0) FROM sessions") == \
        "SELECT COUNT(*), COALESCE(count(*) FILTER (WHERE status = 'active'), 0) FROM sessions"
    assert to_pg("UPDATE org_pending SET n = max(0, n - ?) WHERE org_id = ?") == \
        "UPDATE org_pending SET n = greatest(0, n - %s) WHERE org_id = %s"
    assert to_pg("INSERT OR REPLACE INTO lease(name, holder, expires_at) VALUES (?, ?, ?)") == (
        "INSERT INTO lease(name, holder, expires_at) VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
        " holder = excluded.holder, expires_at = excluded.expires_at")


def test_a_url_is_described_without_its_password() -> None:
    text = describe("postgresql://memtrace:s3cret@db.internal:6543/meta")
    assert text == "db.internal:6543/meta"
    assert "s3cret" not in describe("postgresql://u:s3cret@/x?host=/run/pg")
