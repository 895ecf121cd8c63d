"""Per-request observation, as a thin ASGI wrapper around the app: request id, metrics, access line.

The route label comes from the router (`RouteLabelRouter` records the matched template in the ASGI scope),
so `/v1/memories/{id}` is one series however many ids are read; requests no route matches share the label
`unmatched`. `Deps.principal` records who called (org id and the public key id) for the access line.
The wrapper does a few dict lookups, two clock reads and two mmap'd increments per request; the label
children are cached so the hot path never re-resolves labels.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from blacksheep import Request, Router
from blacksheep.server.routing import RouteMatch

from memtrace import logs
from memtrace.api.asgi import ASGIApp, Message, Receive, Scope, Send
from memtrace.metrics import UNMATCHED_ROUTE, m

ROUTE_KEY = "memtrace.route"
PRINCIPAL_KEY = "memtrace.principal"
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 128
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,%d}$" % MAX_REQUEST_ID)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

access_log = logging.getLogger("memtrace.access")


class RouteLabelRouter(Router):
    """A Router that leaves the matched route template in the request's ASGI scope for the metrics label."""

    def get_match(self, request: Request) -> RouteMatch | None:
        match = super().get_match(request)
        scope: dict[str, Any] | None = request.scope  # type: ignore[assignment]
        if scope is not None:
            fallback = self.fallback
            if match is None or (fallback is not None and match.handler is fallback.handler):
                scope[ROUTE_KEY] = UNMATCHED_ROUTE
            else:
                scope[ROUTE_KEY] = match.pattern.decode()
        return match


def remember_principal(request: Request, org_id: str, key_id: str) -> None:
    scope: dict[str, Any] | None = request.scope  # type: ignore[assignment]
    if scope is not None:
        scope[PRINCIPAL_KEY] = (org_id, key_id)


class RequestIds:
    """Fresh request ids: 24 hex digits, a random per-process prefix and a counter. Unique across workers and
    restarts without a `getrandom` call per request (they need to be unique, not secret)."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count()

    def next(self) -> bytes:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFF:012x}".encode()


_fresh = RequestIds()
os.register_at_fork(after_in_child=_fresh.reseed)  # a forked worker must not repeat its parent's ids


def request_id_from(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The client's X-Request-ID when it is short and of a safe charset; a fresh id otherwise. ASGI servers
    hand header names over in lower case (Granian does), so they are compared as they come."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SAFE_ID.match(value):
                return value
            break
    return _fresh.next()


class Observed:
    """ASGI middleware: X-Request-ID in and out, request counter + latency histogram, one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id_from(scope.get("headers") or [])
        token = logs.request_id.set(rid.decode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            logs.request_id.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope.get("method", "")
        if method not in KNOWN_METHODS:
            method = "OTHER"
        route = scope.get(ROUTE_KEY, UNMATCHED_ROUTE)
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = m().http_requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[(method, route)] = m().http_duration.labels(method, route)
        histogram.observe(seconds)
        level = logging.ERROR if status >= 500 else logging.INFO
        if access_log.isEnabledFor(level):
            org_id, key_id = scope.get(PRINCIPAL_KEY, (None, None))
            access_log.log(level, "%s %s %d", method, route, status, extra=logs.fields(
                method=method, route=route, status=status, duration_ms=round(seconds * 1000, 3),
                org_id=org_id, key_id=key_id))
