"""No stray arclite, Granian or PostgreSQL after an interrupted test run.

Every process the tests start (tests.procs.Proc, tests.pgcluster.PgCluster) is registered here until it is
stopped. Three layers make an interrupted `make test` leave nothing behind:
- SIGTERM and SIGHUP become KeyboardInterrupt (what Ctrl-C raises), so pytest runs its fixtures' teardown as
  for Ctrl-C;
- at interpreter exit, whatever is still registered is stopped (a teardown that was itself interrupted);
- children started from the main thread get a parent-death signal (SIGTERM, via util-linux `setpriv`), so
  even a SIGKILLed pytest takes arclite and Granian with it. PostgreSQL daemonizes (pg_ctl), out of reach of
  that signal: it relies on the first two.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import threading
from collections.abc import Callable
from types import FrameType

_stops: dict[int, Callable[[], object]] = {}
_lock = threading.Lock()
_SETPRIV = shutil.which("setpriv")


def register(owner: object, stop: Callable[[], object]) -> None:
    """Call `stop` at exit unless `forget(owner)` ran first."""
    with _lock:
        _stops[id(owner)] = stop


def forget(owner: object) -> None:
    with _lock:
        _stops.pop(id(owner), None)


def stop_all() -> None:
    """Stop everything still registered, newest first (servers before the stores they use)."""
    with _lock:
        pending = list(_stops.items())[::-1]
        _stops.clear()
    for _, stop in pending:
        with contextlib.suppress(Exception):
            stop()


def with_parent_death_signal(args: list[str]) -> list[str]:
    """`args` run so that the child gets SIGTERM when this process dies. Only from the main thread: the signal
    follows the thread that forked, and a helper thread ending would stop a child still in use."""
    if _SETPRIV is None or threading.current_thread() is not threading.main_thread():
        return args
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *args]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install() -> None:
    """Called once by tests/conftest.py (pytest_configure)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


atexit.register(stop_all)
