"""The metadata store against real SQLite files: schema, migrations, repositories, tenancy, concurrency."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from memtrace import crypto
from memtrace.arc.binding import ArcBinding, decrypt_binding, decrypt_bindings
from memtrace.errors import Conflict, Invalid, NotFound
from memtrace.keys import lookup_id, verify_key
from memtrace.metadata._util import parse_ts
from memtrace.metadata.db import LATEST_VERSION, MetadataDB, SchemaError, open_metadata
from memtrace.timeutil import format_us, now_us

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataDB]:
    """Each repository test runs on both backends: SQLite files, and a fresh shared PostgreSQL database."""
    if request.param == "postgres":
        from memtrace.metadata.pg import open_pg_metadata

        store: MetadataDB = await open_pg_metadata(request.getfixturevalue("pg_cluster").new_database())
    else:
        store = await open_metadata(tmp_path / "meta" / "memtrace.db")
    yield store
    await store.close()


def _postgres(db: MetadataDB) -> bool:
    return hasattr(db, "pool")


async def _reopen(db: MetadataDB) -> MetadataDB:
    """A second connection to the same store, as another worker (or host) would have."""
    if _postgres(db):
        from memtrace.metadata.pg import open_pg_metadata

        return await open_pg_metadata(db.url)  # type: ignore[attr-defined]
    return await open_metadata(db.path)


@pytest.fixture
def master() -> bytes:
    return base64.b64decode(crypto.generate_master_key())


def _sql(target: Path | MetadataDB, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """A second, plain connection: what another process or an attacker with database access sees."""
    if isinstance(target, MetadataDB):
        if _postgres(target):
            import psycopg

            from memtrace.pgsql import to_pg

            with psycopg.connect(target.url, autocommit=True) as pg:  # type: ignore[attr-defined]
                cur = pg.execute(to_pg(sql), params)
                return [tuple(r) for r in cur.fetchall()] if cur.description else []
        target = target.path
    conn = sqlite3.connect(target)
    try:
        with conn:
            return list(conn.execute(sql, params))
    finally:
        conn.close()


def test_timestamps_are_fixed_width_and_round_trip() -> None:
    us = 1_770_495_300_123_456
    assert format_us(us) == "2026-02-07T20:15:00.123456Z"
    assert parse_ts(format_us(us)) == us
    assert format_us(0) == "1970-01-01T00:00:00.000000Z"
    assert parse_ts(format_us(now_us())) > 0


async def test_connection_settings_and_schema(db: MetadataDB) -> None:
    if _postgres(db):
        pytest.skip("SQLite connection settings")
    assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
    assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
    assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000  # type: ignore[index]
    assert (await db.fetchone("PRAGMA synchronous"))[0] == 1  # type: ignore[index]  # NORMAL
    assert await db.schema_version() == LATEST_VERSION
    tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"organizations", "arc_instances", "api_keys", "agents", "sessions", "change_counter"} <= tables


async def test_orgs(db: MetadataDB) -> None:
    acme = await db.orgs.create("Acme", id="acme")
    other = await db.orgs.create("  Other Corp ")
    assert other.id.startswith("org_") and other.name == "Other Corp"
    assert [o.id for o in await db.orgs.list()] == ["acme", other.id]
    assert await db.orgs.get("acme") == acme
    with pytest.raises(Conflict, match="'Acme'"):
        await db.orgs.create("Acme")
    with pytest.raises(Conflict, match="'acme'"):
        await db.orgs.create("Acme 2", id="acme")
    with pytest.raises(Invalid, match="org id"):
        await db.orgs.create("Bad", id="1bad")
    with pytest.raises(Invalid, match="org name"):
        await db.orgs.create("   ")
    with pytest.raises(NotFound, match="unknown org 'nope'"):
        await db.orgs.get("nope")
    assert await db.orgs.delete("acme") is True
    assert await db.orgs.delete("acme") is False
    assert [o.id for o in await db.orgs.list()] == [other.id]


async def test_deleting_an_org_cascades(db: MetadataDB, master: bytes) -> None:
    await db.orgs.create("A", id="a")
    await db.orgs.create("B", id="b")
    for org in ("a", "b"):
        await db.arc_instances.upsert(org, "http://arc:8000", "db1", api_key="t", master_key=master)
        await db.api_keys.create(org, "k")
        await db.agents.create(org, "bot")
        await db.sessions.create(org, "bot")
    await db.orgs.delete("a")
    for table in ("arc_instances", "api_keys", "agents", "sessions"):
        rows = await db.fetchall(f"SELECT DISTINCT org_id FROM {table}")
        assert [r[0] for r in rows] == ["b"], table


async def test_arc_bindings(db: MetadataDB, master: bytes) -> None:
    await db.orgs.create("A", id="a")
    with pytest.raises(NotFound, match="unknown org 'zz'"):
        await db.arc_instances.upsert("zz", "http://arc:8000", "db1")
    arc = await db.arc_instances.upsert("a", "http://arc:8000/", "db1", api_key="tok-123", master_key=master)
    assert (arc.url, arc.database, arc.measurement, arc.has_api_key) == ("http://arc:8000", "db1", "events", True)
    # Rebinding without a key keeps the stored key.
    arc = await db.arc_instances.upsert("a", "https://arc2.example:443", "db2", "mem")
    assert (arc.url, arc.database, arc.measurement, arc.has_api_key) == ("https://arc2.example:443", "db2",
                                                                         "mem", True)
    rows = await db.arc_instances.list_all()
    assert decrypt_bindings(rows, master) == [
        ArcBinding(org_id="a", url="https://arc2.example:443", database="db2", measurement="mem", api_key="tok-123")
    ]
    stored = _sql(db, "SELECT api_key_cipher FROM arc_instances")[0][0]
    assert isinstance(stored, bytes) and b"tok-123" not in stored
    with pytest.raises(crypto.MasterKeyError, match="org a"):
        decrypt_binding(rows[0], None)
    with pytest.raises(crypto.MasterKeyError, match="MEMTRACE_MASTER_KEY"):
        await db.arc_instances.upsert("a", "http://arc:8000", "db1", api_key="new")
    arc = await db.arc_instances.upsert("a", "http://arc:8000", "db1", clear_api_key=True)
    assert not arc.has_api_key
    row = await db.arc_instances.get_row("a")
    assert row is not None and decrypt_binding(row, None).api_key is None
    assert (await db.arc_instances.get("a")) == arc
    assert await db.arc_instances.delete("a") is True
    assert await db.arc_instances.get("a") is None
    assert await db.arc_instances.delete("a") is False


@pytest.mark.parametrize(
    ("url", "database", "measurement", "match"),
    [
        ("ftp://arc", "db", "events", "http"),
        ("http://", "db", "events", "host"),
        ("arc:8000", "db", "events", "http"),
        ("http://user:pw@arc", "db", "events", "credentials"),
        ("http://arc:99999", "db", "events", "malformed"),
        ("http://arc?x=1", "db", "events", "query"),
        ("http://arc", "1db", "events", "database"),
        ("http://arc", "d" * 65, "events", "database"),
        ("http://arc", "db;drop", "events", "database"),
        ("http://arc", "db", "ev ents", "measurement"),
        ("http://arc", "db", "", "measurement"),
    ],
)
async def test_arc_binding_validation(db: MetadataDB, url: str, database: str, measurement: str,
                                      match: str) -> None:
    await db.orgs.create("A", id="a")
    with pytest.raises(Invalid, match=match):
        await db.arc_instances.upsert("a", url, database, measurement)


async def test_tampered_ciphertext_fails_naming_the_org(db: MetadataDB, master: bytes) -> None:
    await db.orgs.create("Acme", id="acme")
    await db.arc_instances.upsert("acme", "http://arc:8000", "db1", api_key="secret-token", master_key=master)
    cipher = bytearray(_sql(db, "SELECT api_key_cipher FROM arc_instances")[0][0])
    cipher[3] ^= 0x40
    _sql(db, "UPDATE arc_instances SET api_key_cipher = ? WHERE org_id = 'acme'", (bytes(cipher),))
    with pytest.raises(crypto.DecryptionError, match="org acme failed authentication") as info:
        decrypt_bindings(await db.arc_instances.list_all(), master)
    assert "secret-token" not in str(info.value)


async def test_ciphertext_copied_to_another_org_fails(db: MetadataDB, master: bytes) -> None:
    for org in ("a", "b"):
        await db.orgs.create(org.upper(), id=org)
    await db.arc_instances.upsert("a", "http://arc-a:8000", "db_a", api_key="key-of-a", master_key=master)
    await db.arc_instances.upsert("b", "http://arc-b:8000", "db_b", api_key="key-of-b", master_key=master)
    _sql(db, "UPDATE arc_instances SET (api_key_cipher, api_key_nonce) = "
                  "(SELECT api_key_cipher, api_key_nonce FROM arc_instances WHERE org_id = 'a') WHERE org_id = 'b'")
    row_a, row_b = await db.arc_instances.list_all()
    assert decrypt_binding(row_a, master).api_key == "key-of-a"
    with pytest.raises(crypto.DecryptionError, match="org b "):
        decrypt_binding(row_b, master)


async def test_api_keys(db: MetadataDB) -> None:
    await db.orgs.create("A", id="a")
    await db.orgs.create("B", id="b")
    expires = now_us() + 3_600_000_000
    info, key = await db.api_keys.create("a", "ci", "read", expires)
    assert info.id.startswith("key_") and info.permissions == ["read"] and info.revoked_at is None
    assert info.expires_at == format_us(expires)
    lookup = lookup_id(key)
    assert lookup is not None
    record = await db.api_keys.get_by_lookup(lookup)
    assert record is not None
    assert (record.id, record.org_id, record.name, record.permissions) == (info.id, "a", "ci", frozenset({"read"}))
    assert record.expires_at_us == expires and record.revoked_at_us is None
    assert verify_key(record.key_hash, key) and key not in record.key_hash
    assert not _sql(db, "SELECT 1 FROM api_keys WHERE key_hash = ? OR lookup_id = ?", (key, key))
    assert await db.api_keys.get_by_lookup("A" * 12) is None

    second, _ = await db.api_keys.create("a", "admin", ["admin"])
    assert [k.id for k in await db.api_keys.list("a")] == [info.id, second.id]
    assert await db.api_keys.list("b") == []
    assert "key_hash" not in type(second).__struct_fields__
    with pytest.raises(Conflict, match="'ci'"):
        await db.api_keys.create("a", "ci")
    await db.api_keys.create("b", "ci")  # names are per org
    with pytest.raises(NotFound, match="unknown org 'zz'"):
        await db.api_keys.create("zz", "ci")
    with pytest.raises(Invalid, match="future"):
        await db.api_keys.create("a", "old", expires_at_us=now_us() - 1)
    with pytest.raises(Invalid, match="permission"):
        await db.api_keys.create("a", "x", "root")

    assert await db.api_keys.revoke(info.id, org_id="b") is False  # another org cannot revoke it
    assert await db.api_keys.revoke(info.id) is True
    record = await db.api_keys.get_by_lookup(lookup)
    assert record is not None and record.revoked_at_us is not None
    first_revocation = record.revoked_at_us
    assert await db.api_keys.revoke(info.id, org_id="a") is True
    record = await db.api_keys.get_by_lookup(lookup)
    assert record is not None and record.revoked_at_us == first_revocation
    assert await db.api_keys.revoke("key_missing") is False
    listed = await db.api_keys.get(info.id, org_id="a")
    assert listed is not None and listed.revoked_at is not None
    assert await db.api_keys.get(info.id, org_id="b") is None


async def test_agents(db: MetadataDB) -> None:
    await db.orgs.create("A", id="a")
    await db.orgs.create("B", id="b")
    first = await db.agents.create("a", "crawler", "crawls", {"depth": 2})
    second = await db.agents.create("a", "writer")
    assert first.id.startswith("agent_") and first.description == "crawls"
    assert msgspec.json.decode(first.config) == {"depth": 2}
    assert first.last_active_at == first.created_at
    assert [a.id for a in await db.agents.list("a")] == [second.id, first.id]
    assert await db.agents.get("a", first.id) == first
    assert await db.agents.get("a", "crawler") == first
    with pytest.raises(Conflict, match="'crawler'"):
        await db.agents.create("a", "crawler")
    with pytest.raises(Invalid, match="name"):
        await db.agents.create("a", "has space")
    # Tenancy: org b sees nothing of org a, by id or by name.
    assert await db.agents.list("b") == []
    for ref in (first.id, "crawler"):
        with pytest.raises(NotFound, match="agent not found"):
            await db.agents.get("b", ref)
        assert await db.agents.delete("b", ref) is False
    # An agent named like another agent's id: the id wins.
    clash = await db.agents.create("a", first.id)
    assert (await db.agents.get("a", first.id)).id == first.id
    assert await db.agents.delete("a", clash.id) is True
    assert await db.agents.delete("a", "crawler") is True
    assert [a.id for a in await db.agents.list("a")] == [second.id]


async def test_ensure_registers_once_even_when_racing(db: MetadataDB, tmp_path: Path) -> None:
    await db.orgs.create("A", id="a")
    other = await _reopen(db)  # a second connection, as another worker would have
    try:
        agents = await asyncio.gather(*(
            (db if i % 2 else other).agents.ensure("a", "agent_1") for i in range(20)
        ))
    finally:
        await other.close()
    assert len({a.id for a in agents}) == 1 and agents[0].name == "agent_1"
    registered = await db.agents.create("a", "named")
    assert (await db.agents.ensure("a", registered.id)).id == registered.id  # by id: no new agent
    assert len(await db.agents.list("a")) == 2
    with pytest.raises(Invalid, match="agent_id"):
        await db.agents.ensure("a", "bad id")


async def test_agent_touch_only_moves_forward(db: MetadataDB) -> None:
    await db.orgs.create("A", id="a")
    await db.orgs.create("B", id="b")
    one = await db.agents.create("a", "one")
    two = await db.agents.create("a", "two")
    foreign = await db.agents.create("b", "one")
    later = now_us() + 10_000_000
    await db.agents.touch_many({("a", "one"): later, ("a", two.id): later + 5, ("a", "unknown"): later})
    assert (await db.agents.get("a", one.id)).last_active_at == format_us(later)
    assert (await db.agents.get("a", two.id)).last_active_at == format_us(later + 5)
    assert (await db.agents.get("b", foreign.id)).last_active_at == foreign.created_at
    await db.agents.touch_many({("a", "one"): later - 1_000_000})
    assert (await db.agents.get("a", "one")).last_active_at == format_us(later)
    await db.agents.touch_many({})


async def test_sessions(db: MetadataDB) -> None:
    await db.orgs.create("A", id="a")
    await db.orgs.create("B", id="b")
    agent = await db.agents.create("a", "crawler")
    s1 = await db.sessions.create("a", "crawler", {"task": "x"})
    s2 = await db.sessions.create("a", agent.id)
    s3 = await db.sessions.create("a", "other")
    assert s1.id.startswith("sess_") and s1.status == "active" and s1.closed_at is None
    assert msgspec.json.decode(s1.metadata) == {"task": "x"} and s1.created_at == s1.updated_at
    assert [s.id for s in await db.sessions.list("a")] == [s3.id, s2.id, s1.id]
    aliases = ["crawler", agent.id]  # what api/resolve.agent_aliases gives for a registered agent
    assert [s.id for s in await db.sessions.list("a", aliases)] == [s2.id, s1.id]
    assert await db.sessions.list("a", []) == []
    assert await db.sessions.counts("a", aliases) == (2, 2)

    closed = await db.sessions.update("a", s1.id, status="closed")
    assert closed.status == "closed" and closed.closed_at is not None
    assert msgspec.json.decode(closed.metadata) == {"task": "x"}
    assert await db.sessions.get("a", s1.id) == closed
    again = await db.sessions.update("a", s1.id, status="closed", metadata={"done": True})
    assert again.closed_at == closed.closed_at and msgspec.json.decode(again.metadata) == {"done": True}
    assert await db.sessions.counts("a", aliases) == (2, 1)
    assert await db.sessions.counts("a") == (3, 2)
    reopened = await db.sessions.update("a", s1.id, status="active")
    assert reopened.closed_at is None and reopened.status == "active"
    with pytest.raises(Invalid, match="status"):
        await db.sessions.update("a", s1.id, status="paused")
    with pytest.raises(NotFound, match="session not found"):
        await db.sessions.update("a", "sess_missing", status="closed")
    with pytest.raises(Invalid, match="agent_id"):
        await db.sessions.create("a", "bad id")

    # Tenancy: org b can neither see nor change org a's sessions.
    assert await db.sessions.list("b") == [] and await db.sessions.counts("b") == (0, 0)
    with pytest.raises(NotFound):
        await db.sessions.get("b", s1.id)
    with pytest.raises(NotFound):
        await db.sessions.update("b", s1.id, status="closed")

    later = now_us() + 1_000_000
    await db.sessions.touch_many({("a", s2.id): later, ("b", s3.id): later})
    await db.sessions.touch_many({("a", s2.id): later - 500})

    async def last_active(session_id: str) -> str:
        row = await db.fetchone("SELECT last_active_at FROM sessions WHERE id = ?", (session_id,))
        assert row is not None
        return str(row[0])

    assert await last_active(s2.id) == format_us(later)
    assert await last_active(s3.id) == s3.created_at


async def test_change_counter_follows_orgs_bindings_and_keys(db: MetadataDB, master: bytes) -> None:
    seen = [await db.change_version()]

    async def moved() -> bool:
        seen.append(await db.change_version())
        return seen[-1] > seen[-2]

    await db.orgs.create("A", id="a")
    assert await moved()
    await db.arc_instances.upsert("a", "http://arc:8000", "db1", api_key="t", master_key=master)
    assert await moved()
    info, _ = await db.api_keys.create("a", "k")
    assert await moved()
    await db.agents.create("a", "bot")
    await db.sessions.create("a", "bot")
    await db.agents.touch_many({("a", "bot"): now_us()})
    assert not await moved()  # hot-path tables do not invalidate caches
    await db.api_keys.revoke(info.id)
    assert await moved()
    # A write through another connection (another process, in production) is seen too.
    _sql(db, "UPDATE arc_instances SET url = 'http://other:1' WHERE org_id = 'a'")
    assert await moved()
    await db.arc_instances.delete("a")
    assert await moved()
    await db.orgs.delete("a")
    assert await moved()


async def test_old_schema_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = await open_metadata(path, schema_version=1)
    assert await old.schema_version() == 1
    await old.orgs.create("Legacy", id="legacy")
    _, key = await old.api_keys.create("legacy", "k")
    await old.close()
    tables = {r[0] for r in _sql(path, "SELECT name FROM sqlite_master")}
    assert "change_counter" not in tables and "sessions_org_created" not in tables

    db = await open_metadata(path)
    try:
        assert await db.schema_version() == LATEST_VERSION
        assert [o.id for o in await db.orgs.list()] == ["legacy"]
        assert await db.api_keys.get_by_lookup(lookup_id(key) or "") is not None
        before = await db.change_version()
        await db.orgs.create("New")
        assert await db.change_version() > before
        names = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"sessions_org_created", "sessions_org_agent", "agents_org_created"} <= names
    finally:
        await db.close()
    reopened = await open_metadata(path)  # already current: a no-op
    assert await reopened.schema_version() == LATEST_VERSION
    await reopened.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = await open_metadata(path)
    await db.close()
    _sql(path, "UPDATE schema_version SET version = 99")
    with pytest.raises(SchemaError, match="schema version 99"):
        await open_metadata(path)
    with pytest.raises(ValueError):
        await open_metadata(tmp_path / "x.db", schema_version=LATEST_VERSION + 1)


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from memtrace.metadata.db import open_metadata

    async def main(path: str, n: int) -> None:
        db = await open_metadata(Path(path))
        try:
            for i in range(5):
                org = await db.orgs.create(f"org {n}-{i}", id=f"o{n}_{i}")
                await db.api_keys.create(org.id, "key")
                await db.agents.ensure(org.id, "shared")
        finally:
            await db.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_concurrent_processes_on_a_fresh_db(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(path), str(n)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(8)
    ]
    reader = await open_metadata(path)  # opens (and may migrate) while the writers start up
    versions: list[int] = []
    try:
        while any(p.poll() is None for p in procs):
            versions.append(await reader.change_version())
            await reader.orgs.list()
            await asyncio.sleep(0.01)
        outputs = [p.communicate() for p in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
            assert b"locked" not in err
        assert versions == sorted(versions)
        assert len(await reader.orgs.list()) == 40
        assert await reader.change_version() == 80  # one bump per org and per key
        assert await reader.schema_version() == LATEST_VERSION
    finally:
        await reader.close()


async def test_hosts_starting_together_on_a_fresh_postgres_migrate_once(pg_cluster: Any) -> None:
    """Migrations hold `schema_version` FOR UPDATE: five hosts opening one new database at once all succeed."""
    from memtrace.metadata.pg import open_pg_metadata

    url = pg_cluster.new_database()
    stores = await asyncio.gather(*(open_pg_metadata(url) for _ in range(5)))
    try:
        assert {await s.schema_version() for s in stores} == {LATEST_VERSION}
        assert await stores[0].change_version() == 0
        await stores[1].orgs.create("A", id="a")
        assert await stores[0].change_version() > 0  # the trigger counts writes from any host
    finally:
        for s in stores:
            await s.close()
