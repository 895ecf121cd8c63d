"""Damaged databases stop `memtrace serve` and `memtrace admin` with one line naming the file (exit 1).

Before: a 0-byte metadata DB started "ready" with every key 401; a journal with one corrupt page started and
then failed every write; other damage ended in a traceback that did not name the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from memtrace.journal import Journal, JournalConfig
from tests.procs import free_port
from tests.provision import provision

PAGE = 4096


def serve(data: Path) -> subprocess.CompletedProcess[str]:
    """`memtrace serve` expected to refuse; if it starts instead, its whole process group is killed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRACE_")}
    env["MEMTRACE_STORAGE_DATA_DIR"] = str(data)
    args = [sys.executable, "-m", "memtrace", "serve", "--host", "127.0.0.1", "--port", str(free_port())]
    proc = subprocess.Popen(args, cwd=data, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def admin(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memtrace", "admin", "org", "list", "--db",
                           str(data / "memtrace.db")], cwd=data, capture_output=True, text=True, timeout=60,
                          check=False)


def assert_refused(result: subprocess.CompletedProcess[str], path: Path) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]


def real_journal(path: Path, rows: int = 20_000) -> None:
    """A journal made by Memtrace itself, with many rows (pages of table and index b-trees)."""
    async def make() -> None:
        journal = await Journal.open(JournalConfig(path, 86400, 10.0, 1_000_000))
        await journal.close()

    asyncio.run(make())
    rng = random.Random(7)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO journal (org_id, id, agent_id, session_id, time_us, accepted_at, row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((f"org_{i % 7}", f"mem_{i:08d}", "agent", "", i, float(i), rng.randbytes(120)) for i in range(rows)),
        )
        conn.executemany("INSERT INTO dedup (org_id, dedup_key, time_us) VALUES (?, ?, ?)",
                         ((f"org_{i % 7}", f"k{i}", i) for i in range(rows)))
    # The last connection closed checkpoints: everything is in the main file now.
    assert not path.with_name(path.name + "-wal").exists()


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(64 * 1024))


def truncated(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(max(PAGE * 2, (size // PAGE // 2) * PAGE))


def corrupt_middle_page(path: Path) -> None:
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as f:
        f.seek((pages // 2) * PAGE)
        f.write(random.Random(3).randbytes(PAGE))


Damage = Callable[[Path], None]


@pytest.mark.parametrize("damage", [zero_bytes, random_bytes, truncated], ids=lambda d: d.__name__)
def test_damaged_metadata_db_is_refused_naming_it(tmp_path: Path, damage: Damage) -> None:
    db = tmp_path / "memtrace.db"
    provision(db, "acme", None)
    for i in range(60):  # enough rows that a truncation cuts into tables
        provision(db, f"org{i}", None)
    damage(db)
    assert_refused(serve(tmp_path), db)
    assert_refused(admin(tmp_path), db)
    assert not (tmp_path / "journal.db").exists() or damage is not zero_bytes


@pytest.mark.parametrize("damage", [zero_bytes, random_bytes, truncated, corrupt_middle_page],
                         ids=lambda d: d.__name__)
def test_damaged_journal_is_refused_naming_it(tmp_path: Path, damage: Damage) -> None:
    provision(tmp_path / "memtrace.db", "acme", None)
    journal = tmp_path / "journal.db"
    real_journal(journal)
    damage(journal)
    assert_refused(serve(tmp_path), journal)


def test_a_metadata_db_of_another_program_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "memtrace.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE something_else (x)")
    assert_refused(serve(tmp_path), db)


def test_missing_tables_of_the_schema_version_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "memtrace.db"
    provision(db, "acme", None)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE sessions")
    result = serve(tmp_path)
    assert_refused(result, db)
    assert "sessions" in result.stderr
