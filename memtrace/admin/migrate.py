"""`memtrace admin migrate --to postgresql://…`: move one host's SQLite stores into a shared PostgreSQL.

Copies the metadata (orgs, Arc bindings as they are — still AES-GCM ciphertext —, keys, agents, sessions,
retention policies, deletion audit), the journal's undelivered rows and dead letters, and the dedup ledger,
in one PostgreSQL transaction, into an empty database. Refuses while a server uses the SQLite files (a live
delivery lease in the journal) and when the target already holds orgs. Delivered rows are not copied: Arc has
them. Unfinished deletions are refused: let them finish first (`memtrace admin status`).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from memtrace.admin._common import db_path
from memtrace.admin._common import journal_path as journal_file
from memtrace.journal.lease import holder_alive


class MigrateError(Exception):
    """The migration cannot start (a live server, a non-empty target, unfinished deletions)."""


# Metadata tables in dependency order; rows in creation order (rowid) so the identity columns keep it.
_METADATA = ("organizations", "arc_instances", "api_keys", "agents", "sessions", "retention_policies",
             "deletion_audit")
_PENDING = ("SELECT org_id, id, agent_id, session_id, time_us, accepted_at, row FROM journal"
            " WHERE delivered_at IS NULL ORDER BY seq")


def add_command(groups: Any, common: argparse.ArgumentParser) -> None:
    p = groups.add_parser("migrate", parents=[common],
                          help="copy this host's SQLite metadata, pending rows and dedup ledger into PostgreSQL")
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://… (an empty database)")
    p.add_argument("--journal", default=argparse.SUPPRESS, help="journal DB file (default: from settings)")


def _live_server(journal: sqlite3.Connection) -> str | None:
    """The holder of a live delivery lease: a server still using these files."""
    for holder, expires_at in journal.execute("SELECT holder, expires_at FROM lease"):
        if expires_at > time.time() and holder_alive(holder):
            return str(holder)
    return None


def _rows(conn: sqlite3.Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = conn.execute(sql)
    return [d[0] for d in cur.description], list(cur)


def _ledger_columns(journal: sqlite3.Connection) -> str:
    """The dedup ledger's columns; a journal of an older release (opened read-only here) has no `memory_id`."""
    present = {row[1] for row in journal.execute("PRAGMA table_info(dedup)")}
    return "org_id, dedup_key, time_us" + (", memory_id" if "memory_id" in present else "")


def migrate(metadata_path: Path, journal_path: Path, url: str) -> dict[str, int]:
    """Copy everything in one PostgreSQL transaction; returns rows copied per table."""
    import psycopg

    from memtrace.journal.pg import SCHEMA as JOURNAL_SCHEMA
    from memtrace.metadata.pg import open_pg_metadata

    if not metadata_path.exists():
        raise MigrateError(f"no metadata DB at {metadata_path}")
    meta = sqlite3.connect(f"file:{metadata_path}?mode=ro", uri=True)
    journal = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True) if journal_path.exists() else None
    try:
        if journal is not None:
            live = _live_server(journal)
            if live is not None:
                raise MigrateError(f"a server still uses {journal_path} (delivery lease held by {live}); stop it first")
            if journal.execute("SELECT count(*) FROM deletions").fetchone()[0]:
                raise MigrateError("unfinished deletions wait in the journal; let them finish, then migrate")
        asyncio.run(_create_metadata_schema(open_pg_metadata, url))
        copied: dict[str, int] = {}
        with psycopg.connect(url) as pg, pg.transaction():
            for statement in JOURNAL_SCHEMA:
                pg.execute(statement)
            found = pg.execute("SELECT count(*) FROM organizations").fetchone()
            if found and found[0]:
                raise MigrateError("the target database already holds orgs; migrate into an empty one")
            for table in _METADATA:
                names, rows = _rows(meta, f"SELECT * FROM {table} ORDER BY rowid")  # noqa: S608 - fixed names
                _copy(pg, table, names, rows)
                copied[table] = len(rows)
            # deletion_audit keeps its ids: move its identity past them, or the next audit line would collide
            pg.execute("SELECT setval(pg_get_serial_sequence('deletion_audit', 'id'),"
                       " (SELECT COALESCE(max(id), 0) + 1 FROM deletion_audit), false)")
            if journal is not None:
                names, rows = _rows(journal, _PENDING)
                _copy(pg, "journal", names, rows)
                copied["journal"] = len(rows)
                pg.execute("INSERT INTO org_pending(org_id, n) SELECT org_id, count(*) FROM journal"
                           " WHERE delivered_at IS NULL GROUP BY org_id")
                names, rows = _rows(journal, "SELECT org_id, seq, id, agent_id, session_id, time_us, accepted_at,"
                                             " row, arc_status, arc_error, first_attempt_at, last_attempt_at,"
                                             " attempts FROM dead_letter ORDER BY entry")
                _copy(pg, "dead_letter", names, rows)
                copied["dead_letter"] = len(rows)
                names, rows = _rows(journal, f"SELECT {_ledger_columns(journal)} FROM dedup")  # noqa: S608
                _copy(pg, "dedup", names, rows)
                copied["dedup"] = len(rows)
        return copied
    finally:
        meta.close()
        if journal is not None:
            journal.close()


async def _create_metadata_schema(opener: Any, url: str) -> None:
    db = await opener(url)
    await db.close()


def _copy(pg: Any, table: str, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    with pg.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def run(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    url: str = args.to
    if not url.startswith(("postgresql://", "postgres://")):
        raise MigrateError("--to must be a postgresql:// URL")
    metadata_path, journal_path = db_path(args), journal_file(args)
    copied = migrate(metadata_path, journal_path, url)
    text = "\n".join(f"{table:18} {n}" for table, n in copied.items())
    hint = "now set metadata.url (MEMTRACE_METADATA_URL) on every host and start them"
    return f"{text}\n{hint}", {"copied": copied}
