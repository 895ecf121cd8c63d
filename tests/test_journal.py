"""The journal on real SQLite files and on a shared PostgreSQL database: group commit,
exact dedup across processes, bounds, delivery state."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from memtrace.errors import Overloaded
from memtrace.journal import Journal, JournalConfig, RecentQuery, holder_id
from memtrace.rows import MemoryFilter, MemoryRow


def row(org: str, key: str, content: str = "c", t: int | None = None, rid: str | None = None) -> MemoryRow:
    now = t if t is not None else time.time_ns() // 1000
    return MemoryRow(
        id=rid or f"mem_{key}_{now}", time_us=now, org_id=org, agent_id="agent", session_id="s1",
        memory_type="episodic", event_type="general", content=content, metadata_json="{}", tags_csv="",
        dedup_key=key, importance=0.5, parent_id="",
    )


OpenJournal = Callable[[JournalConfig], Awaitable[Journal]]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """"sqlite", or the URL of a fresh database in the shared PostgreSQL cluster."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_cluster").new_database())
    return "sqlite"


async def _open(backend: str, cfg: JournalConfig) -> Journal:
    if backend == "sqlite":
        return await Journal.open(cfg)
    from memtrace.journal.pg import PgJournal

    return await PgJournal.open_url(cfg, backend)


@pytest.fixture
def open_journal(backend: str) -> OpenJournal:
    """Opens the journal on either backend (the same facade, the same tests)."""
    return lambda cfg: _open(backend, cfg)


def config(path: Path, **kw: object) -> JournalConfig:
    base: dict[str, object] = {"path": path, "dedup_window_s": 3600, "retention_s": 10.0,
                               "max_pending_per_org": 1000}
    base.update(kw)
    return JournalConfig(**base)  # type: ignore[arg-type]


async def test_concurrent_appends_share_commits_and_dedup_exactly(tmp_path: Path, open_journal: OpenJournal) -> None:
    journal = await open_journal(config(tmp_path / "j.db"))
    try:
        results = await asyncio.gather(*(journal.append("org1", [row("org1", f"k{i % 50}")]) for i in range(200)))
        stored = sum(len(r.stored) for r in results)
        dups = sum(len(r.duplicate_indexes) for r in results)
        assert (stored, dups) == (50, 150)
        assert journal.stats.groups < 200  # concurrent requests were committed together
        assert await journal.pending_total("org1") == 50
        # the same key in another org is not a duplicate
        other = await journal.append("org2", [row("org2", "k0")])
        assert len(other.stored) == 1
    finally:
        await journal.close()


async def test_keys_older_than_the_window_are_not_duplicates(tmp_path: Path, open_journal: OpenJournal) -> None:
    journal = await open_journal(config(tmp_path / "j.db", dedup_window_s=1))
    try:
        old = time.time_ns() // 1000 - 5_000_000
        assert len((await journal.append("o", [row("o", "k", t=old)])).stored) == 1
        assert len((await journal.append("o", [row("o", "k")])).stored) == 1
    finally:
        await journal.close()


async def test_bound_refuses_whole_request_and_other_orgs_go_on(tmp_path: Path, open_journal: OpenJournal) -> None:
    journal = await open_journal(config(tmp_path / "j.db", max_pending_per_org=10))
    try:
        await journal.append("full", [row("full", f"k{i}") for i in range(8)])
        with pytest.raises(Overloaded) as info:
            await journal.append("full", [row("full", f"x{i}") for i in range(3)])
        assert info.value.retry_after >= 1
        assert await journal.pending_total("full") == 8
        assert len((await journal.append("calm", [row("calm", f"k{i}") for i in range(10)])).stored) == 10
    finally:
        await journal.close()


async def test_delivery_state_and_recent_rows(tmp_path: Path, open_journal: OpenJournal) -> None:
    journal = await open_journal(config(tmp_path / "j.db", retention_s=0.2))
    try:
        rows = [row("o", f"k{i}", content=f"c{i}", rid=f"mem_{i}") for i in range(5)]
        await journal.append("o", rows)
        backlog = await journal.backlog()
        assert [(b.org_id, b.pending) for b in backlog] == [("o", 5)]
        (batch,) = await journal.pending_batches(["o"], 3)
        assert [r.id for r in batch.rows] == ["mem_0", "mem_1", "mem_2"]  # acceptance order
        await journal.mark_delivered([batch])
        assert await journal.pending_total("o") == 2
        assert [r.id for r in (await journal.pending_batches(["o"], 10))[0].rows] == ["mem_3", "mem_4"]
        # delivered rows stay readable for the retention, then are pruned
        assert len(await journal.recent_rows("o")) == 5
        assert [r.id for r in await journal.recent_rows("o", ids=("mem_1",))] == ["mem_1"]
        await asyncio.sleep(0.3)  # the point: the 0.2 s retention elapses (prune compares against the clock)
        pruned, _ = await journal.prune()
        assert pruned == 3
        assert sorted(r.id for r in await journal.recent_rows("o")) == ["mem_3", "mem_4"]
    finally:
        await journal.close()


async def test_recent_rows_can_stop_at_the_first_kept_rows_in_time_order(tmp_path: Path,
                                                                           open_journal: OpenJournal) -> None:
    """A page reads only the journal rows that can rank among its first `first` (by time, then id), ties on the
    last time included, dead letters too; never fewer, whatever the order the rows were written in."""
    journal = await open_journal(config(tmp_path / "j.db"))
    base = 1_770_000_000_000_000
    times = [5, 1, 9, 3, 3, 7, 3, 2, 8, 6, 4, 9, 0, 5]  # repeated times: ties broken by id
    try:
        rows = [row("o", f"k{i}", content=f"{'even' if i % 2 == 0 else 'odd'} {i}", t=base + t, rid=f"mem_{i:02d}")
                for i, t in enumerate(times)]
        await journal.append("o", rows)
        await journal.append("other", [row("other", "x", t=base + 100, rid="mem_other")])
        (batch,) = await journal.pending_batches(["o"], 1)
        assert await journal.dead_letter("o", batch.seqs[0], 400, "refused", time.time(), 1)  # mem_00 (t=5)

        def key(r: MemoryRow) -> tuple[int, str]:
            return (r.time_us, r.id)

        for keep_even in (True, False):
            def keep(r: MemoryRow, want: bool = keep_even) -> bool:
                return r.content.startswith("even") == want
            kept = [r for r in rows if keep(r)]
            for order in ("desc", "asc"):
                for first in range(len(kept) + 2):
                    got = await journal.recent_rows("o", keep=keep, first=first, order=order)
                    assert all(keep(r) and r.org_id == "o" for r in got)
                    assert len({r.id for r in got}) == len(got)
                    want = sorted(kept, key=key, reverse=order == "desc")[:first]
                    assert sorted(got, key=key, reverse=order == "desc")[:first] == want, (keep_even, order, first)
                    if first and first < len(kept) - 2:
                        assert len(got) < len(kept)  # it stopped early
        assert len(await journal.recent_rows("o")) == len(rows)  # without `first`: every candidate, as before
    finally:
        await journal.close()


async def test_recent_unless_forgetting_reads_deletions_and_rows_in_one_call(tmp_path: Path,
                                                                             open_journal: OpenJournal) -> None:
    """The bet of a first page: rows only while the org has no unfinished deletion, and the deletions otherwise
    (then the caller reads again with them hidden); other orgs' deletions change nothing."""
    journal = await open_journal(config(tmp_path / "j.db"))
    base = 1_770_000_000_000_000
    try:
        await journal.append("o", [row("o", f"k{i}", t=base + i, rid=f"mem_{i}") for i in range(4)])
        await journal.append("p", [row("p", "x", t=base, rid="mem_p")])
        query = RecentQuery("o", keep=lambda r: True, first=2, order="desc")
        assert await journal.recent_unless_forgetting(query) == ((), [
            r for r in await journal.recent_rows("o") if r.id in ("mem_3", "mem_2")][::-1])
        await journal.record_deletion("p", MemoryFilter(ids=("mem_p",), until_us=base + 10), claim_s=5.0)
        deletions, rows = await journal.recent_unless_forgetting(query)
        assert deletions == () and [r.id for r in rows] == ["mem_3", "mem_2"]
        forgotten = MemoryFilter(ids=("mem_1",), until_us=base + 10)
        await journal.record_deletion("o", forgotten, claim_s=5.0)
        assert await journal.recent_unless_forgetting(query) == ((forgotten,), [])
        assert await journal.forgotten("o") == (forgotten,)
    finally:
        await journal.close()


async def test_lease_is_exclusive_and_taken_over_from_dead_holder(tmp_path: Path, open_journal: OpenJournal) -> None:
    journal = await open_journal(config(tmp_path / "j.db"))
    try:
        me = holder_id()
        assert await journal.try_lease("deliverer", me, 5)
        assert not await journal.try_lease("deliverer", "otherhost:1:1", 5)
        await journal.release_lease("deliverer", me)
        # a holder on this host whose process is gone loses the lease at once
        dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
        dead.start()
        dead.join()
        import socket

        assert await journal.try_lease("deliverer", f"{socket.gethostname()}:{dead.pid}:1", 60)
        assert await journal.try_lease("deliverer", me, 5)
    finally:
        await journal.close()


def _append_keys(path: str, backend: str, org: str, keys: list[str], out: multiprocessing.Queue  # type: ignore[type-arg]
                 ) -> None:
    async def run() -> int:
        journal = await _open(backend, config(Path(path)))
        try:
            results = await asyncio.gather(*(journal.append(org, [row(org, k)]) for k in keys))
            return sum(len(r.stored) for r in results)
        finally:
            await journal.close()

    out.put(asyncio.run(run()))


def test_dedup_is_exact_across_processes(tmp_path: Path, backend: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    keys = [f"k{i}" for i in range(100)]
    args = (str(tmp_path / "j.db"), backend, "org", keys, out)
    procs = [ctx.Process(target=_append_keys, args=args) for _ in range(4)]
    for p in procs:
        p.start()
    stored = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(stored) == 100


async def test_pending_batches_of_many_orgs_keep_each_orgs_order_and_the_limit(tmp_path: Path,
                                                                               open_journal: OpenJournal) -> None:
    journal = await open_journal(config(tmp_path / "j.db"))
    try:
        for i in range(6):
            for org in ("a", "b", "c"):
                await journal.append(org, [row(org, f"k{i}", rid=f"mem_{org}{i}")])
        batches = await journal.pending_batches(["a", "b"], 7)
        assert sum(len(b.rows) for b in batches) == 7
        by_org = {b.org_id: [r.id for r in b.rows] for b in batches}
        assert by_org["a"] == [f"mem_a{i}" for i in range(len(by_org["a"]))]
        assert by_org["b"] == [f"mem_b{i}" for i in range(len(by_org["b"]))]
        await journal.mark_delivered(batches)
        assert await journal.pending_total("a") + await journal.pending_total("b") == 12 - 7
        assert await journal.pending_total("c") == 6
    finally:
        await journal.close()


async def test_takes_after_a_cursor_get_every_row_once_oldest_first_across_many_orgs(
        tmp_path: Path, open_journal: OpenJournal) -> None:
    """Pipelined delivery takes the next batch after the last seq it took while earlier ones are in flight.
    With more orgs than one query holds (500), the last orgs' rows are the oldest here: a take must still return
    the oldest rows of all the orgs, or the cursor would skip rows. Before: the first 500 orgs' rows came first."""
    journal = await open_journal(config(tmp_path / "j.db"))
    try:
        orgs = [f"o{i:03d}" for i in range(600)]
        for round_ in range(2):
            await asyncio.gather(*(journal.append(org, [row(org, f"k{round_}")]) for org in reversed(orgs)))
        taken: list[tuple[int, str]] = []
        after, more = 0, True
        while more:
            batches, more = await journal.take_pending(orgs, 70, 1 << 20, after)
            got = sorted((seq, b.org_id) for b in batches for seq in b.seqs)
            if not got:
                break
            taken += got
            after = got[-1][0]
        seqs = [seq for seq, _ in taken]
        assert len(seqs) == 1200 and seqs == sorted(set(seqs))
        assert {org for _, org in taken[:100]} == set(orgs[500:])  # the oldest rows first, from the last orgs
        assert await journal.pending_total("o000") == 2  # taking marks nothing
    finally:
        await journal.close()


def _execute(backend: str, path: Path, *statements: str) -> None:
    """Run SQL on the journal's database directly, as an older release (or an operator) would have left it."""
    if backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            for statement in statements:
                conn.execute(statement)
        return
    import psycopg

    with psycopg.connect(backend, autocommit=True) as pg:
        for statement in statements:
            pg.execute(statement)


async def test_a_duplicate_names_the_memory_it_duplicates_even_in_a_journal_of_an_older_release(
        tmp_path: Path, backend: str, open_journal: OpenJournal) -> None:
    """The ledger keeps each key's memory id. A journal (file or PostgreSQL schema) made before it did gets the
    column when opened; its old ledger rows still refuse duplicates, without an id."""
    path = tmp_path / "j.db"
    journal = await open_journal(config(path))
    await journal.close()
    now = time.time_ns() // 1000
    _execute(backend, path, "ALTER TABLE dedup DROP COLUMN memory_id",
             f"INSERT INTO dedup (org_id, dedup_key, time_us) VALUES ('o', 'old', {now})")
    journal = await open_journal(config(path))
    try:
        first = await journal.append("o", [row("o", "k", rid="mem_first")])
        assert (first.duplicate_indexes, first.duplicate_of) == ([], [])
        again = await journal.append("o", [row("o", "new", rid="mem_new"), row("o", "k"), row("o", "old"),
                                           row("o", "new")])
        assert [r.id for r in again.stored] == ["mem_new"]
        assert (again.duplicate_indexes, again.duplicate_of) == ([1, 2, 3], ["mem_first", None, "mem_new"])
        racing = await asyncio.gather(*(journal.append("o", [row("o", "race", rid=f"mem_r{i}")]) for i in range(8)))
        winner = next(r.stored[0].id for r in racing if r.stored)
        assert sorted(r.duplicate_of[0] for r in racing if not r.stored) == [winner] * 7
    finally:
        await journal.close()


async def test_the_commit_connection_syncs_every_commit(tmp_path: Path, backend: str,
                                                        open_journal: OpenJournal) -> None:
    """A 201 means the group's commit is on disk. Asked on the very connections the committer and the
    bookkeeping use, after open: SQLite commits with synchronous=FULL (2) in WAL mode (the bookkeeping,
    whose marks may be redone, NORMAL (1)); PostgreSQL commits with synchronous_commit=on even though the
    test cluster's default is off (tests/pgcluster.py)."""
    journal = await open_journal(config(tmp_path / "j.db"))
    try:
        commits, bookkeeping = journal.committer._db, journal._bookkeeping
        if backend == "sqlite":
            def pragmas(conn: Any) -> tuple[object, ...]:
                return tuple(conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("journal_mode", "synchronous"))

            assert await commits.run(pragmas, commits.conn) == ("wal", 2)
            assert await bookkeeping.run(pragmas, bookkeeping.conn) == ("wal", 1)
        else:
            def setting(conn: Any) -> str:
                return str(conn.raw().execute("SHOW synchronous_commit").fetchone()[0])

            assert await commits.run(setting, commits.conn) == "on"
            assert await bookkeeping.run(setting, bookkeeping.conn) == "off"  # the cluster's default
        await journal.append("o", [row("o", "k")])  # and the connection that committed it still is
        assert journal.stats.groups == 1
    finally:
        await journal.close()
