"""`make run` → `memtrace dev`: embedded store + server + demo org, and the printed key works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.procs import REPO, Proc, free_port
from tests.waiting import wait_until


def test_dev_prints_a_working_key_and_keeps_it_across_runs(tmp_path: Path) -> None:
    keys = []
    for _ in range(2):
        port, arc_port = free_port(), free_port()
        proc = Proc([sys.executable, "-m", "memtrace", "dev", "--port", str(port), "--arc-port", str(arc_port)],
                    env={"MEMTRACE_SERVER_LOG_LEVEL": "info"}, cwd=tmp_path)
        try:
            proc.wait_ready(f"http://127.0.0.1:{port}/health", timeout=60)
            found = wait_until(lambda p=proc: re.search(r"API key: (mtk_\S+)", p.output()), "the key in the banner", 10)
            key = found.group(1)
            out = proc.output()
            assert "curl" in out
            assert f"http://127.0.0.1:{port}/console" in out and f"http://127.0.0.1:{port}/docs" in out  # where next
            # The URL comes first; the key and the curl example only once the server answered.
            assert out.index(f"starting on http://127.0.0.1:{port}") < out.index("Started worker") < out.index(key)
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


def test_version_flag() -> None:
    from memtrace import __version__

    done = subprocess.run([sys.executable, "-m", "memtrace", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"memtrace {__version__}"


def test_make_run_installs_only_the_runtime_and_says_so() -> None:
    plan = subprocess.run(["make", "-n", "-B", "run"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert "pip install" in plan.stdout and "-e ." in plan.stdout
    assert "[dev]" not in plan.stdout  # test and lint tools belong to `make test`
    assert plan.stdout.count('echo "==>') >= 3
    test_plan = subprocess.run(["make", "-n", "-B", "pytest"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ".[dev]" in test_plan.stdout
