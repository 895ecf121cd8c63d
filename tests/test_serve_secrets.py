"""`memtrace serve` refuses to start on a missing master key or a tampered Arc credential, naming why."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from memtrace.crypto import generate_master_key, parse_master_key
from memtrace.metadata.db import open_metadata
from tests.procs import free_port

ARC_SECRET = "arc-token-very-secret"


def bind_with_key(db: Path, master: str) -> str:
    async def run() -> str:
        metadata = await open_metadata(db)
        try:
            org = await metadata.orgs.create("secretive")
            await metadata.arc_instances.upsert(org.id, "http://127.0.0.1:9", "db1", api_key=ARC_SECRET,
                                                master_key=parse_master_key(master))
            return org.id
        finally:
            await metadata.close()

    return asyncio.run(run())


def serve(data: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "MEMTRACE_MASTER_KEY"}
    full.update({"MEMTRACE_STORAGE_DATA_DIR": str(data), **env})
    return subprocess.run([sys.executable, "-m", "memtrace", "serve", "--port", str(free_port())],
                          cwd=data, env=full, capture_output=True, text=True, timeout=60)


def test_missing_master_key_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    bind_with_key(tmp_path / "memtrace.db", generate_master_key())
    result = serve(tmp_path, {})
    assert result.returncode == 1
    assert "MEMTRACE_MASTER_KEY" in result.stderr
    assert "keygen master" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_tampered_credential_fails_loudly_naming_the_org(tmp_path: Path) -> None:
    master = generate_master_key()
    org_id = bind_with_key(tmp_path / "memtrace.db", master)
    with sqlite3.connect(tmp_path / "memtrace.db") as conn:
        (cipher,) = conn.execute("SELECT api_key_cipher FROM arc_instances").fetchone()
        tampered = bytes([cipher[0] ^ 1]) + bytes(cipher[1:])
        conn.execute("UPDATE arc_instances SET api_key_cipher = ?", (tampered,))
    result = serve(tmp_path, {"MEMTRACE_MASTER_KEY": master})
    assert result.returncode == 1
    assert org_id in result.stderr
    assert ARC_SECRET not in result.stderr + result.stdout
    wrong = serve(tmp_path, {"MEMTRACE_MASTER_KEY": generate_master_key()})
    assert wrong.returncode == 1 and org_id in wrong.stderr
