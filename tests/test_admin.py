"""`python -m memtrace.admin` as real subprocesses against a real SQLite file."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memtrace import crypto
from memtrace.keys import lookup_id, verify_key
from memtrace.metadata.db import open_metadata

REPO = Path(__file__).resolve().parent.parent


def _env(master: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRACE_")}
    if master is not None:
        env["MEMTRACE_MASTER_KEY"] = master
    return env


def cli(*args: str, master: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memtrace.admin", *args], capture_output=True, text=True,
                          env=_env(master), cwd=cwd, timeout=60, check=False)


def ok(*args: str, master: str | None = None) -> str:
    proc = cli(*args, master=master)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ok_json(*args: str, master: str | None = None) -> Any:
    return json.loads(ok(*args, "--json", master=master))


def fails(*args: str, master: str | None = None, code: int = 1) -> str:
    """Run a failing command; return its single stderr line."""
    proc = cli(*args, master=master)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _counter(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT version FROM change_counter").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "memtrace.db"


@pytest.fixture
def master() -> str:
    return crypto.generate_master_key()


def test_keygen_master_prints_a_usable_key() -> None:
    key = ok("keygen", "master").strip()
    assert len(base64.b64decode(key)) == 32
    assert crypto.load_master_key({"MEMTRACE_MASTER_KEY": key})
    data = ok_json("keygen", "master")
    assert len(base64.b64decode(data["master_key"])) == 32 and data["master_key"] != key


def test_round_trip(db: Path, master: str) -> None:
    d = ("--db", str(db))
    org = ok_json(*d, "org", "create", "Acme Corp", "--id", "acme")
    assert org["id"] == "acme" and org["name"] == "Acme Corp"
    other = ok_json("org", "create", "Other", *d)  # global flags work after the command too
    assert other["id"].startswith("org_")
    assert "created org" in ok(*d, "org", "create", "Third")

    v0 = _counter(db)
    arc_token = "arc-secret-token-XYZ9"
    arc = ok_json(*d, "org", "add-arc", "acme", "--url", "http://127.0.0.1:8000", "--database", "acme_mem",
                  "--api-key", arc_token, master=master)
    assert arc == {**arc, "org_id": "acme", "url": "http://127.0.0.1:8000", "database": "acme_mem",
                   "measurement": "events", "has_api_key": True}
    assert _counter(db) > v0

    shown = ok(*d, "org", "show-arc", "acme", master=master)
    assert arc_token not in shown and "****XYZ9" in shown and "acme_mem" in shown
    shown_json = ok_json(*d, "org", "show-arc", "acme", master=master)
    assert shown_json["api_key"] == "****XYZ9"
    without_master = ok_json(*d, "org", "show-arc", "acme")
    assert arc_token not in json.dumps(without_master) and "set" in without_master["api_key"]

    # Rebinding without --api-key keeps the stored key and needs no master key.
    v1 = _counter(db)
    ok(*d, "org", "add-arc", "acme", "--url", "https://arc.example", "--database", "acme2", "--measurement", "mem")
    assert _counter(db) > v1
    assert ok_json(*d, "org", "show-arc", "acme", master=master)["api_key"] == "****XYZ9"
    listed = {o["id"]: o for o in ok_json(*d, "org", "list")}
    assert listed["acme"]["arc_url"] == "https://arc.example" and listed[other["id"]]["arc_url"] is None
    assert "https://arc.example" in ok(*d, "org", "list")

    v2 = _counter(db)
    created = ok_json(*d, "key", "create", "--org", "acme", "--name", "ci", "--expires-in", "30d")
    assert _counter(db) > v2
    key = created["key"]
    assert key.startswith("mtk_") and created["permissions"] == ["read", "write"]
    assert created["expires_at"] is not None
    human = ok(*d, "key", "create", "--org", "acme", "--name", "ro", "--permissions", "read")
    printed = [line for line in human.splitlines() if line.startswith("mtk_")]
    assert len(printed) == 1 and lookup_id(printed[0])

    conn = sqlite3.connect(db)
    try:
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE lookup_id = ?", (lookup_id(key),)).fetchone()
        cipher = conn.execute("SELECT api_key_cipher FROM arc_instances").fetchone()[0]
    finally:
        conn.close()
    assert verify_key(stored[0], key)
    assert arc_token.encode() not in cipher

    keys = ok_json(*d, "key", "list", "--org", "acme")
    assert [(k["name"], k["status"]) for k in keys] == [("ci", "active"), ("ro", "active")]
    text = ok(*d, "key", "list", "--org", "acme")
    assert "mtk_" not in text and "argon2" not in text and "key_hash" not in json.dumps(keys)

    v3 = _counter(db)
    revoked = ok_json(*d, "key", "revoke", created["id"])
    assert revoked["revoked_at"] is not None and _counter(db) > v3
    statuses = {k["name"]: k["status"] for k in ok_json(*d, "key", "list", "--org", "acme")}
    assert statuses == {"ci": "revoked", "ro": "active"}

    ok(*d, "org", "remove-arc", "acme")
    assert "has no Arc binding" in fails(*d, "org", "show-arc", "acme")
    v4 = _counter(db)
    assert "pass --yes" in fails(*d, "org", "delete", "acme")  # stdin is not a terminal here
    assert _counter(db) == v4
    ok(*d, "org", "delete", "acme", "--yes")
    assert _counter(db) > v4
    assert "acme" not in {o["id"] for o in ok_json(*d, "org", "list")}


async def test_running_server_sees_cli_changes_without_reopening(db: Path) -> None:
    ok("--db", str(db), "org", "create", "Acme", "--id", "acme")
    server = await open_metadata(db)  # stands in for a server worker holding its connection open
    try:
        before = await server.change_version()
        created = ok_json("--db", str(db), "key", "create", "--org", "acme", "--name", "k")
        after_create = await server.change_version()
        assert after_create > before
        record = await server.api_keys.get_by_lookup(lookup_id(created["key"]) or "")
        assert record is not None and record.revoked_at_us is None
        ok("--db", str(db), "key", "revoke", created["id"])
        assert await server.change_version() > after_create
        record = await server.api_keys.get_by_lookup(lookup_id(created["key"]) or "")
        assert record is not None and record.revoked_at_us is not None
    finally:
        await server.close()


def test_errors_are_one_line_with_exit_1(db: Path, master: str) -> None:
    d = ("--db", str(db))
    assert "no metadata DB" in fails(*d, "org", "list")
    ok(*d, "org", "create", "Acme", "--id", "acme")
    assert "'Acme' already exists" in fails(*d, "org", "create", "Acme")
    assert "'acme' already exists" in fails(*d, "org", "create", "Other", "--id", "acme")
    assert "org id" in fails(*d, "org", "create", "Bad", "--id", "has space")
    assert "unknown org 'nope'" in fails(*d, "org", "delete", "nope")
    assert "unknown org 'nope'" in fails(*d, "org", "show-arc", "nope")
    assert "unknown org 'nope'" in fails(*d, "org", "remove-arc", "nope")
    assert "unknown org 'nope'" in fails(*d, "key", "list", "--org", "nope")
    assert "unknown org 'nope'" in fails(*d, "key", "create", "--org", "nope", "--name", "k")
    assert "unknown org 'nope'" in fails(*d, "org", "add-arc", "nope", "--url", "http://a", "--database", "x")
    arc = ("org", "add-arc", "acme", "--database", "db1")
    assert "Arc URL" in fails(*d, *arc, "--url", "ftp://arc:8000")
    assert "Arc URL" in fails(*d, *arc, "--url", "not a url")
    assert "database" in fails(*d, "org", "add-arc", "acme", "--url", "http://a", "--database", "9x")
    assert "measurement" in fails(*d, *arc, "--url", "http://a", "--measurement", "bad name")
    missing = fails(*d, *arc, "--url", "http://a", "--api-key", "t")
    assert "MEMTRACE_MASTER_KEY is not set" in missing and "keygen master" in missing
    malformed = fails(*d, *arc, "--url", "http://a", "--api-key", "t", master="c2hvcnQ=")
    assert "MEMTRACE_MASTER_KEY" in malformed and "32 bytes" in malformed and "c2hvcnQ=" not in malformed
    assert "has no Arc binding" in fails(*d, "org", "show-arc", "acme")
    assert "unknown permission 'root'" in fails(*d, "key", "create", "--org", "acme", "--name", "k",
                                                "--permissions", "read,root")
    assert "--expires-in" in fails(*d, "key", "create", "--org", "acme", "--name", "k", "--expires-in", "soon")
    ok(*d, "key", "create", "--org", "acme", "--name", "k")
    assert "already has a key named 'k'" in fails(*d, "key", "create", "--org", "acme", "--name", "k")
    assert "unknown API key 'key_nope'" in fails(*d, "key", "revoke", "key_nope")
    assert "config file not found" in fails("--config", str(db.parent / "missing.toml"), "org", "list")


def test_usage_errors_exit_2_with_one_line(db: Path) -> None:
    assert "invalid choice" in fails("--db", str(db), "org", "frobnicate", code=2)
    assert "required" in fails("--db", str(db), "key", "create", "--name", "x", code=2)
    assert "required" in fails(code=2)


def test_tampered_ciphertext_is_reported_naming_the_org(db: Path, master: str) -> None:
    d = ("--db", str(db))
    for org in ("a", "b"):
        ok(*d, "org", "create", org.upper(), "--id", org)
        ok(*d, "org", "add-arc", org, "--url", "http://arc:8000", "--database", "db", "--api-key",
           f"token-of-{org}-1234", master=master)
    conn = sqlite3.connect(db)
    with conn:
        cipher = bytearray(conn.execute("SELECT api_key_cipher FROM arc_instances WHERE org_id = 'a'").fetchone()[0])
        cipher[0] ^= 0xFF
        conn.execute("UPDATE arc_instances SET api_key_cipher = ? WHERE org_id = 'a'", (bytes(cipher),))
    conn.close()
    line = fails(*d, "org", "show-arc", "a", master=master)
    assert line == "error: stored Arc API key for org a failed authentication: tampered or wrong master key"
    assert ok_json(*d, "org", "show-arc", "b", master=master)["api_key"] == "****1234"
    wrong_master = crypto.generate_master_key()
    assert "org b failed authentication" in fails(*d, "org", "show-arc", "b", master=wrong_master)


def test_ciphertext_copied_from_another_org_is_rejected(db: Path, master: str) -> None:
    d = ("--db", str(db))
    for org in ("a", "b"):
        ok(*d, "org", "create", org.upper(), "--id", org)
        ok(*d, "org", "add-arc", org, "--url", "http://arc:8000", "--database", "db", "--api-key",
           f"token-of-{org}-1234", master=master)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE arc_instances SET (api_key_cipher, api_key_nonce) = (SELECT api_key_cipher, "
                     "api_key_nonce FROM arc_instances WHERE org_id = 'a') WHERE org_id = 'b'")
    conn.close()
    assert "org b failed authentication" in fails(*d, "org", "show-arc", "b", master=master)
    assert ok_json(*d, "org", "show-arc", "a", master=master)["api_key"] == "****1234"


def test_db_location_from_settings(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "meta.db"
    config = tmp_path / "conf" / "memtrace.toml"
    config.parent.mkdir()
    config.write_text(f'[storage]\nmetadata_db = "{target}"\n')
    ok("--config", str(config), "org", "create", "Acme", "--id", "acme")
    assert target.exists()
    assert [o["id"] for o in ok_json("--db", str(target), "org", "list")] == ["acme"]
    # Without --db or --config, the data_dir default applies relative to the working directory.
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = cli("org", "create", "Local", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "data" / "memtrace.db").exists()


def test_concurrent_cli_processes_on_a_fresh_db(db: Path) -> None:
    d = ("--db", str(db))
    base = [sys.executable, "-m", "memtrace.admin", *d]
    procs = [
        subprocess.Popen([*base, "org", "create", f"Org {i}", "--id", f"org{i}"], env=_env(), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(10)
    ]
    results = [(p, *p.communicate(timeout=60)) for p in procs]
    for proc, _, err in results:
        assert proc.returncode == 0, err
    procs = [
        subprocess.Popen([*base, "key", "create", "--org", f"org{i % 10}", "--name", f"k{i}"], env=_env(),
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(20)
    ]
    conn = sqlite3.connect(db, timeout=5)
    try:
        while any(p.poll() is None for p in procs):
            conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()
        results = [(p, *p.communicate(timeout=60)) for p in procs]
        for proc, _, err in results:
            assert proc.returncode == 0, err
            assert "locked" not in err
        assert conn.execute("SELECT COUNT(*) FROM organizations").fetchone()[0] == 10
        assert conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == 20
    finally:
        conn.close()


def test_orgs_are_addressed_by_name_as_well_as_id(db: Path) -> None:
    d = ("--db", str(db))
    org = ok_json(*d, "org", "create", "Acme Corp")
    key = ok_json(*d, "key", "create", "--org", "Acme Corp", "--name", "k1")
    assert key["org_id"] == org["id"]
    ok(*d, "org", "add-arc", "Acme Corp", "--url", "http://127.0.0.1:8000", "--database", "acme")
    assert ok_json(*d, "org", "show-arc", "Acme Corp")["org_id"] == org["id"]
    assert [k["name"] for k in ok_json(*d, "key", "list", "--org", org["id"])] == ["k1"]
    assert "memtrace admin org list" in fails(*d, "key", "list", "--org", "Nobody")
    assert ok_json(*d, "org", "delete", "Acme Corp", "--yes")["deleted"] == org["id"]


@pytest.mark.parametrize(("answer", "deleted"), [("n\n", False), ("\n", False), ("y\n", True)])
def test_org_delete_asks_on_a_terminal(db: Path, answer: str, deleted: bool) -> None:
    ok("--db", str(db), "org", "create", "Acme", "--id", "acme")
    primary, secondary = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "memtrace.admin", "--db", str(db), "org", "delete", "Acme"],
                                stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env(), cwd=REPO)
        os.write(primary, answer.encode())
        _out, err = proc.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert "delete org acme (Acme)" in err and "[y/N]" in err
    assert (proc.returncode == 0) is deleted, err
    remaining = {o["id"] for o in ok_json("--db", str(db), "org", "list")}
    assert ("acme" in remaining) is not deleted
