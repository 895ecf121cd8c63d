"""Supervision for background tasks: a task that raises is logged, waits (exponential backoff) and restarts.

Why: an exception that escapes a background task ends it silently (asyncio only reports it when the task is
garbage-collected), and the server then goes on without, say, delivery or health checks. Cancellation is
not a failure: it ends the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("memtrace.tasks")
_loops_log = logging.getLogger("memtrace")  # periodic steps have always logged as "memtrace"

BASE_S = 0.5
MAX_S = 30.0


def backoff_s(failures: int, base_s: float = BASE_S, max_s: float = MAX_S) -> float:
    """The wait after `failures` consecutive failures (≥ 1): base, 2×base, 4×base, … up to max_s."""
    return float(min(max_s, base_s * 2 ** min(max(failures, 1) - 1, 30)))


async def supervised(name: str, run: Callable[[], Awaitable[None]], base_s: float = BASE_S,
                     max_s: float = MAX_S) -> None:
    """Run `run()` until it returns; whenever it raises, log it, back off and run it again."""
    failures = 0
    while True:
        try:
            await run()
            return
        except Exception:
            failures += 1
            delay = backoff_s(failures, base_s, max_s)
            log.exception("background task %s failed (%d in a row); restarting in %.1f s", name, failures, delay)
            await asyncio.sleep(delay)


def start(name: str, run: Callable[[], Awaitable[None]], base_s: float = BASE_S,
          max_s: float = MAX_S) -> asyncio.Task[None]:
    """`supervised(...)` as a named task."""
    return asyncio.create_task(supervised(name, run, base_s, max_s), name=name)


async def every(interval: float, step: Callable[[], Awaitable[None]], name: str, stopping: asyncio.Event) -> None:
    """Run `step` every `interval` until `stopping` is set; a step in progress is never cancelled midway.
    A failing step is logged and the next one waits longer (backoff up to MAX_S), so a persistent fault
    neither stops the loop nor floods the log."""
    failures = 0
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=backoff_s(failures, interval) if failures else interval)
        if stopping.is_set():
            return
        try:
            await step()
            failures = 0
        except Exception:
            failures += 1
            _loops_log.exception("%s failed (%d in a row)", name, failures)
