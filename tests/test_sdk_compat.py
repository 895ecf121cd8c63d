"""The published client `memtrace-sdk` 0.2.0, unchanged, against the real server (see sdk_driver.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import Stack
from tests.procs import REPO
from tests.provision import provision

SDK_PYTHON = os.environ.get("MEMTRACE_SDK_PYTHON", str(REPO / ".venv-sdk" / "bin" / "python"))


def test_published_sdk_works_unchanged(stack: Stack, tmp_path: Path) -> None:
    assert Path(SDK_PYTHON).exists(), f"no SDK virtualenv at {SDK_PYTHON}: `make test` creates it"
    unbound = provision(stack.db, "sdk-noarc", None)
    driver = REPO / "tests" / "sdk_driver.py"
    result = subprocess.run(
        [SDK_PYTHON, "-I", str(driver), stack.server.url, stack.tenant.key, unbound.key],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], report
    assert report["checks"] >= 50  # every method of both clients was exercised
    assert result.returncode == 0, result.stderr
