"""Building the distribution is quiet: the licence is an SPDX expression, so setuptools prints no deprecation
box (it printed three per `make` before), and the wheel's metadata carries it as `License-Expression`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.procs import REPO


def test_the_wheel_builds_without_deprecation_warnings_and_names_its_licence(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "deprecat" not in output.lower() and "!!" not in output, output
    (wheel,) = tmp_path.glob("memtrace_server-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers, headers
