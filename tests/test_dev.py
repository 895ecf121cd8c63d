"""`make run` → `memtrace dev`: embedded store + server + demo org, and the printed key works."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx

from tests.procs import Proc, free_port


def test_dev_prints_a_working_key_and_keeps_it_across_runs(tmp_path: Path) -> None:
    keys = []
    for _ in range(2):
        port, arc_port = free_port(), free_port()
        proc = Proc([sys.executable, "-m", "memtrace", "dev", "--port", str(port), "--arc-port", str(arc_port)],
                    env={"MEMTRACE_SERVER_LOG_LEVEL": "warning"}, cwd=tmp_path)
        try:
            proc.wait_ready(f"http://127.0.0.1:{port}/health", timeout=60)
            deadline = time.monotonic() + 10
            while not (found := re.search(r"API key: (mtk_\S+)", proc.output())):
                assert time.monotonic() < deadline, proc.output()
                time.sleep(0.1)
            key = found.group(1)
            assert "curl" in proc.output()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": key}) as client:
                created = client.post("/api/v1/memories", json={"agent_id": "demo", "content": f"hi {len(keys)}"})
                assert created.status_code == 201, created.text
                listed = client.get("/api/v1/memories", params={"agent_id": "demo"}).json()
                assert listed["count"] == len(keys) + 1
            keys.append(key)
        finally:
            proc.stop()
    assert keys[0] == keys[1]
    assert (tmp_path / "data" / "demo.key").stat().st_mode & 0o077 == 0
