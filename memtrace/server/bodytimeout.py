"""A deadline on reading each request body, which Granian does not have.

Granian closes a connection that does not send its request head in time, but once a handler waits for the
body, a client that sends part of it and stalls would hold the connection (and a backpressure slot) forever.
This ASGI wrapper gives every request `timeout_s` from the first body read to the last body chunk; past it
the read raises `RequestTimeout`, answered 408, and Granian closes the connection since the body is unread.
"""

from __future__ import annotations

import asyncio

from memtrace.api.asgi import ASGIApp, Message, Receive, Scope, Send
from memtrace.errors import RequestTimeout


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
            if deadline is None:
                deadline = loop.time() + timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"request body not received within {timeout_s:g} s") from None
            if message.get("type") != "http.request" or not message.get("more_body"):
                done = True
            return message

        await app(scope, timed_receive, send)

    return wrapped
