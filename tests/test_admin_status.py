"""`memtrace admin status`: each org's Arc health and backlog, from outside the server, never a secret."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.procs import ArcLite, MemtraceServer, free_port
from tests.provision import provision


def status(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memtrace", "admin", "status", "--db", str(db), *extra],
                          capture_output=True, text=True, timeout=60, check=False)


def test_status_shows_health_pending_rows_and_no_secrets(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "arc")
    data = tmp_path / "mt"
    db = data / "memtrace.db"
    data.mkdir()
    up = provision(db, "alive", arc.url)
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = provision(db, "gone", dead_url)
    provision(db, "lonely", None)
    server = MemtraceServer(data)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(3):
                resp = client.post("/api/v1/memories", headers={"x-api-key": down.key},
                                   json={"agent_id": "a", "content": f"waits for a dead Arc {i}"})
                assert resp.status_code == 201, resp.text
        proc = status(db, "--json")
        assert proc.returncode == 0, proc.stderr
        by_name = {row["name"]: row for row in json.loads(proc.stdout)}
        assert by_name["alive"]["arc"] == "ok"
        assert by_name["alive"]["org_id"] == up.org_id
        assert by_name["gone"]["arc"].startswith("down")
        assert by_name["gone"]["pending_rows"] == 3
        assert by_name["gone"]["oldest_pending_s"] is not None
        assert by_name["lonely"]["arc"] == "unbound"
        text = status(db)
        assert text.returncode == 0
        assert "HEALTH" in text.stdout and "unbound" in text.stdout
        for key in (up.key, down.key):
            assert key not in text.stdout + proc.stdout
    finally:
        server.stop()
        arc.stop()
