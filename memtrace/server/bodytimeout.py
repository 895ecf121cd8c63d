"""A deadline on reading each request body, which Granian does not have.

Granian closes a connection that does not send its request head in time, but once a handler waits for the
body, a client that sends part of it and stalls would hold the connection (and a backpressure slot) forever.
This ASGI wrapper gives every request `timeout_s` from the first body read to the last body chunk; past it
the read raises `RequestTimeout`, answered 408, and Granian closes the connection since the body is unread.

Why not `asyncio.timeout` around each read: it schedules and cancels a timer per read, ~4.5 µs of the event
loop on every request (measured under uvloop), almost always for a body that is already there. Instead the
reads that are actually waiting sit in one table, and one timer per second per loop cancels those past their
deadline, so a stalled body is refused within a second after `timeout_s`.
"""

from __future__ import annotations

import asyncio

from memtrace.api.asgi import ASGIApp, Message, Receive, Scope, Send
from memtrace.errors import RequestTimeout

SWEEP_S = 1.0


class _Waiting:
    """The body reads now waiting, per event loop, with their deadlines; a per-second sweep while any wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.deadlines: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, task: asyncio.Task[object], deadline: float) -> None:
        self.deadlines[task] = deadline
        if self._timer is None:
            self._timer = self.loop.call_later(SWEEP_S, self._sweep)

    def remove(self, task: asyncio.Task[object]) -> bool:
        """Forget `task`'s read; True when the sweep cancelled it for its deadline."""
        self.deadlines.pop(task, None)
        if task in self.expired:
            self.expired.discard(task)
            return True
        return False

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        for task, deadline in list(self.deadlines.items()):
            if deadline <= now:
                del self.deadlines[task]
                self.expired.add(task)
                task.cancel()
        if self.deadlines:
            self._timer = self.loop.call_later(SWEEP_S, self._sweep)


_per_loop: dict[asyncio.AbstractEventLoop, _Waiting] = {}


def _waiting(loop: asyncio.AbstractEventLoop) -> _Waiting:
    table = _per_loop.get(loop)
    if table is None:
        for old in [old for old in _per_loop if old.is_closed()]:
            del _per_loop[old]
        table = _per_loop[loop] = _Waiting(loop)
    return table


def with_body_timeout(app: ASGIApp, timeout_s: float) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline: float | None = None
        done = False

        async def timed_receive() -> Message:
            nonlocal deadline, done
            if done:
                return await receive()  # after the body, only a disconnect can come: no deadline
            loop = asyncio.get_running_loop()
            now = loop.time()
            if deadline is None:
                deadline = now + timeout_s
            elif now >= deadline:
                raise RequestTimeout(f"request body not received within {timeout_s:g} s")
            task = asyncio.current_task()
            if task is None:  # not inside a task (never under an ASGI server): no deadline
                return await receive()
            table = _waiting(loop)
            table.add(task, deadline)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if table.remove(task):
                    task.uncancel()
                    raise RequestTimeout(f"request body not received within {timeout_s:g} s") from None
                raise
            table.remove(task)  # a sweep's cancel always lands in the await above, never after it returned
            if message.get("type") != "http.request" or not message.get("more_body"):
                done = True
            return message

        await app(scope, timed_receive, send)

    return wrapped
