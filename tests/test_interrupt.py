"""An interrupted test run leaves no process behind: a pytest that holds a running stack (arclite, Granian, and
a PostgreSQL cluster) is interrupted as `make test` would be, and nothing it started may outlive it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests import pgcluster
from tests.procs import REPO, Proc
from tests.waiting import wait_until

INNER = '''
import json, os, time
from pathlib import Path


def test_holds_a_stack(stack, request):
    pids = {"arclite": stack.arc.popen.pid, "server": stack.server.popen.pid}
    if os.environ.get("WITH_PG"):
        cluster = request.getfixturevalue("pg_cluster")
        pids["postgres"] = int((cluster.data / "postmaster.pid").read_text().split()[0])
    Path(os.environ["PIDS_FILE"]).write_text(json.dumps(pids))
    time.sleep(240)  # the point: the outer test interrupts the run while it sits here
'''


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every live (not zombie) process: pid -> (process group, session, command name)."""
    found: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[2]), int(fields[3]), name)
    return found


def _left_of(leaders: set[int]) -> dict[int, tuple[int, int, str]]:
    """Processes that are one of `leaders` or belong to their process groups or sessions."""
    return {pid: info for pid, info in _processes().items()
            if pid in leaders or info[0] in leaders or info[1] in leaders}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_run_leaves_no_arclite_granian_or_postgresql(tmp_path: Path, sig: signal.Signals) -> None:
    # PostgreSQL daemonizes, so only pytest's own teardown can stop it: a SIGKILLed pytest cannot.
    with_pg = sig != signal.SIGKILL and pgcluster.available()
    (tmp_path / "test_inner.py").write_text(INNER)
    pids_file = tmp_path / "pids.json"
    env = {"PIDS_FILE": str(pids_file), "WITH_PG": "1" if with_pg else "", "PYTHONPATH": str(REPO)}
    run = Proc([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")], env=env, cwd=REPO)
    try:
        wait_until(lambda: pids_file.exists() and pids_file.read_text(), "the inner run holding its stack", 90,
                   interval=0.1)
        pids = json.loads(pids_file.read_text())
        assert set(pids) == {"arclite", "server", *(["postgres"] if with_pg else [])}, pids
        leaders = {run.popen.pid, *pids.values()}
        assert set(pids.values()) <= set(_processes())
        run.signal(sig)  # its process group: pytest alone (every child runs in its own session)
        run.popen.wait(timeout=60)
        wait_until(lambda: not _left_of(leaders), f"no process of the interrupted run left ({pids})", 30,
                   interval=0.1)
    finally:
        left = _left_of({run.popen.pid, *json.loads(pids_file.read_text() or "{}").values()}) \
            if pids_file.exists() else {}
        run.stop()
        for pid in left:  # never leave them to the next test, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
