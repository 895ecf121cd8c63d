"""Supervision for background tasks: a task that raises is logged, waits (exponential backoff) and restarts.

Why: an exception that escapes a background task ends it silently (asyncio only reports it when the task is
garbage-collected), and the server then goes on without, say, delivery or health checks. Cancellation is
not a failure: it ends the task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("memtrace.tasks")

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
