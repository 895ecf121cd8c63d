"""Start-up checks of the metadata DB and the journal: refuse a damaged file with one line naming it.

Without them a 0-byte metadata DB was silently re-initialised (every key then 401), a journal with one bad
page started and then failed every write, and other damage ended in a traceback that did not name the file.
Each check is cheap next to a start: file size and header, SQLite's `PRAGMA quick_check`, and the tables
the file must hold. Only files that exist are checked; a missing file is created fresh by the caller.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from memtrace.metadata.db import LATEST_VERSION, MIGRATIONS

SQLITE_HEADER = b"SQLite format 3\x00"
# A concurrent start creates the file and writes its header within milliseconds; a file that stays empty
# this long was not made by Memtrace.
EMPTY_GRACE_S = 1.0
BUSY_TIMEOUT_S = 10.0
_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", re.IGNORECASE)
_RENAME_TABLE = re.compile(r"ALTER TABLE (\w+) RENAME TO (\w+)", re.IGNORECASE)
_DROP_TABLE = re.compile(r"DROP TABLE (?:IF EXISTS )?(\w+)", re.IGNORECASE)


class DamagedDatabase(Exception):
    """A database file Memtrace must not open; the message names the file and what to do."""


def _metadata_tables(version: int) -> set[str]:
    """The tables a metadata DB at schema `version` must have: those its steps created, dropped or renamed."""
    tables = {"schema_version"}
    for statement in (s for step in MIGRATIONS[:version] for s in step):
        if created := _CREATE_TABLE.search(statement):
            tables.add(created[1])
        elif renamed := _RENAME_TABLE.search(statement):
            tables.discard(renamed[1])
            tables.add(renamed[2])
        elif dropped := _DROP_TABLE.search(statement):
            tables.discard(dropped[1])
    return tables


_WHAT_TO_DO = {
    "metadata DB": "restore it from a backup (orgs, Arc bindings and keys live only there), or move it away "
                   "to start with a new, empty metadata DB",
    "journal": "recover what you can (sqlite3 FILE .recover) into a new file put in its place, or move it away "
               "to start with an empty journal (its undelivered memories are then lost)",
}


def _restore(kind: str) -> str:
    return _WHAT_TO_DO[kind]


def _check_file(path: Path, kind: str) -> bool:
    """File-level checks; False when the file is absent (nothing to check)."""
    if not path.exists():
        return False
    if not path.is_file():
        raise DamagedDatabase(f"{kind} {path} is not a regular file: point [storage] at a file")
    wal = path.with_name(path.name + "-wal")
    deadline = time.monotonic() + EMPTY_GRACE_S
    while path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        if time.monotonic() >= deadline:
            raise DamagedDatabase(f"{kind} {path} is empty (0 bytes), which Memtrace never leaves it: "
                                  f"it was truncated or made by something else; {_restore(kind)}")
        time.sleep(0.05)
    if path.stat().st_size == 0:
        return True  # everything is still in the WAL: SQLite's own checks below decide
    with path.open("rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise DamagedDatabase(f"{kind} {path} is not a SQLite database (damaged, or another file); {_restore(kind)}")
    return True


def _inspect(path: Path, kind: str) -> tuple[set[str], sqlite3.Connection]:
    """Run quick_check; return the table names and the open connection (caller closes it)."""
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise DamagedDatabase(f"{kind} {path} cannot be opened ({exc}); check its permissions") from None
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            lines = [line.strip() for p in problems for line in p.splitlines()]
            first = next((line for line in lines if line and not line.startswith("***")), "unknown error")
            raise DamagedDatabase(f"{kind} {path} is damaged (SQLite quick_check: {first}); {_restore(kind)}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return tables, conn
    except sqlite3.Error as exc:
        conn.close()
        raise DamagedDatabase(f"{kind} {path} is damaged ({exc}); {_restore(kind)}") from None
    except BaseException:
        conn.close()
        raise


def check_metadata(path: Path) -> None:
    """Refuse a metadata DB that is empty, not SQLite, corrupt, or missing tables for its schema version."""
    kind = "metadata DB"
    if not _check_file(path, kind):
        return
    tables, conn = _inspect(path, kind)
    try:
        if not tables - {"sqlite_sequence"}:
            return  # a valid, table-less file: the migrations create everything
        if "schema_version" not in tables:
            raise DamagedDatabase(f"{kind} {path} is not a Memtrace metadata DB (no schema_version table); "
                                  "check [storage] metadata_db")
        try:
            row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            raise DamagedDatabase(f"{kind} {path} is damaged ({exc}); {_restore(kind)}") from None
        version = int(row[0]) if row else 0
        if version > LATEST_VERSION:
            return  # opening reports "newer than this Memtrace" itself
        missing = sorted(_metadata_tables(version) - tables)
        if missing:
            raise DamagedDatabase(f"{kind} {path} lacks table(s) {', '.join(missing)} of schema version {version}; "
                                  f"{_restore(kind)}")
    finally:
        conn.close()


def check_journal(path: Path) -> None:
    """Refuse a journal that is empty, not SQLite, corrupt, or not a Memtrace journal."""
    kind = "journal"
    if not _check_file(path, kind):
        return
    tables, conn = _inspect(path, kind)
    conn.close()
    if tables - {"sqlite_sequence"} and "journal" not in tables:
        raise DamagedDatabase(f"{kind} {path} is not a Memtrace journal (no journal table); check [storage] "
                              "journal_db")
