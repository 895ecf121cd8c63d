"""Real subprocesses for tests: the embedded Arc store and the Memtrace server on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests import reaper
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http_ok(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 2xx; fail early with the process output if it died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback test URL
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


class Proc:
    """A child process in its own process group, stopped (or killed) for sure at teardown, and by
    tests.reaper when the run is interrupted."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.args = list(args)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"memtrace-test-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            reaper.with_parent_death_signal(self.args), env=full_env, cwd=cwd or REPO, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        reaper.register(self, lambda: self.stop(timeout=5.0))

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def start_or_stop(self, url: str, timeout: float = 30.0) -> None:
        """Wait until `url` answers; if it never does, stop the process before raising (no strays)."""
        try:
            self.wait_ready(url, timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.popen.returncode}:\n{self.output()}")
            try:
                wait_http_ok(url, timeout=0.5)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready in {timeout}s:\n{self.output()}") from None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()
        reaper.forget(self)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log.close()
        reaper.forget(self)
        return self.popen.returncode


class ArcLite(Proc):
    """`python -m memtrace.arclite` on a free port with its own data dir.

    arclite is as strict as Arc by default (docs/arc.md); the one leniency tests get unless they ask for a
    buffer themselves is `--buffer-age-ms 0` (rows queryable at once), so only the tests about Arc's buffer
    wait for it. Deletes still never touch buffered rows, and unordered results are still shuffled.
    """

    def __init__(self, data_dir: Path, port: int | None = None, token: str | None = None, extra: Sequence[str] = ()):
        self.port = port or free_port()
        self.data_dir = data_dir
        self.token = token
        buffer = [] if "--buffer-age-ms" in extra else ["--buffer-age-ms", "0"]
        args = [sys.executable, "-m", "memtrace.arclite", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(data_dir), *buffer, *extra]
        if token:
            args += ["--token", token]
        super().__init__(args)
        self.start_or_stop(f"{self.url}/health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class MemtraceServer(Proc):
    """`python -m memtrace serve` (real Granian workers) on a free port, configured through env vars.

    Runs in `data_dir` so no memtrace.toml from the repository is picked up.
    """

    def __init__(self, data_dir: Path, workers: int = 1, port: int | None = None,
                 env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        settings_env = {
            "MEMTRACE_STORAGE_DATA_DIR": str(data_dir),
            "MEMTRACE_ARC_FLUSH_INTERVAL_MS": "100",
            "MEMTRACE_SERVER_LOG_LEVEL": "warning",
            **(env or {}),
        }
        args = [sys.executable, "-m", "memtrace", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(workers)]
        super().__init__(args, env=settings_env, cwd=data_dir)
        self.start_or_stop(f"{self.url}/health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _journal(data_dir: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the server's SQLite journal (what the server did, seen from outside)."""
    path = data_dir / "journal.db"
    assert path.is_file(), f"no journal at {path}"  # a wrong path must not read as "nothing left"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        needed = set(re.findall(r"\bFROM (\w+)", sql))
        return list(conn.execute(sql, params)) if needed <= tables else []


def journal_rows(data_dir: Path, org_id: str) -> int:
    """Rows of `org_id` still in the server's journal (pending, delivered but kept, or dead letters)."""
    return sum(int(row[0]) for table in ("journal", "dead_letter")
               for row in _journal(data_dir, f"SELECT count(*) FROM {table} WHERE org_id = ?", org_id))


def undelivered_rows(data_dir: Path, org_id: str, memory_id: str | None = None) -> int:
    """Rows of `org_id` (or only memory `memory_id`) the deliverer has not handed to Arc yet."""
    sql = "SELECT count(*) FROM journal WHERE org_id = ? AND delivered_at IS NULL"
    found = (_journal(data_dir, sql + " AND id = ?", org_id, memory_id) if memory_id
             else _journal(data_dir, sql, org_id))
    return int(found[0][0]) if found else 0


def unfinished_deletions(data_dir: Path, org_id: str) -> int:
    """Deletions of `org_id` not finished yet: pending, or settling until Arc's buffer age passed and the
    deletion was applied a second time. Zero means every forget of the org is fully done."""
    found = _journal(data_dir, "SELECT count(*) FROM deletions WHERE org_id = ?", org_id)
    return int(found[0][0]) if found else 0


def delivery_lease_held(data_dir: Path) -> bool:
    """True once a process holds the journal's delivery lease (its deliverer runs)."""
    return bool(_journal(data_dir, "SELECT holder FROM lease WHERE expires_at > ?", time.time()))


def wait_until_pruned(data_dir: Path, org_id: str, timeout: float = 30.0) -> None:
    """Wait until the journal holds nothing of `org_id`, so reads can only be answered by Arc; fail otherwise.

    Tests of the "from Arc" path call this instead of sleeping, so they cannot silently test the journal again.
    """
    wait_until(lambda: journal_rows(data_dir, org_id) == 0, f"the journal pruned of org {org_id}", timeout)


def wait_until_settled(data_dir: Path, org_id: str, timeout: float = 30.0) -> None:
    """Wait until every deletion of `org_id` is finished (applied again once Arc's buffer age passed)."""
    wait_until(lambda: unfinished_deletions(data_dir, org_id) == 0, f"the deletions of org {org_id} finished",
               timeout)
