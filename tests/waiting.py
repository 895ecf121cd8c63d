"""Waiting on conditions, never on the clock: the one polling helper of the test suite.

A test that needs something to have happened (a row delivered, a deletion settled, a key picked up) polls for
exactly that, with a deadline; when the deadline passes it fails saying what it waited for and what it saw
last. A fixed sleep either wastes time or, on a busy machine, fails at random; a sleep that IS the point of a
test (letting a timeout elapse) stays and says so in a comment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL_S = 0.05


class NotReached(AssertionError):
    """The condition did not hold before the deadline (an AssertionError, so pytest reports it as a failure)."""


def _failure(what: str, timeout: float, last: object, error: BaseException | None) -> NotReached:
    seen = f"; last error: {error!r}" if error is not None else f"; last value: {last!r}"
    return NotReached(f"{what}: not reached within {timeout:g} s{seen}")


def wait_until(check: Callable[[], T], what: str, timeout: float = 15.0, interval: float = INTERVAL_S,
               retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """Call `check` until it returns something truthy and return that; raise NotReached after `timeout`.

    Exceptions listed in `retry_on` (e.g. a connection refused while a server starts) count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            last = check()
            error = None
        except retry_on as exc:
            error = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise _failure(what, timeout, last, error)
        time.sleep(interval)


async def wait_until_async(check: Callable[[], Awaitable[T]], what: str, timeout: float = 15.0,
                           interval: float = INTERVAL_S) -> T:
    """`wait_until` for a coroutine condition, sleeping with asyncio so the loop keeps running meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _failure(what, timeout, last, None)
        await asyncio.sleep(interval)
