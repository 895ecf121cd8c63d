"""Domain errors → HTTP answers, in one place; every error body is `{"error": "..."}` JSON."""

from __future__ import annotations

import logging
from typing import Any

from blacksheep import Application, Request, Response
from blacksheep.exceptions import HTTPException

from memtrace.api.http import error_response
from memtrace.errors import (
    ArcDeleteRefused,
    ArcRejected,
    ArcUnavailable,
    Conflict,
    MemtraceError,
    NoArcInstance,
    Overloaded,
)

log = logging.getLogger("memtrace.api")

NO_ARC_HINT = "run: memtrace admin org add-arc <org id or name> --url URL --database DB"
# Arc's address and Arc's (or DuckDB's) own messages stay in the server log (arc/client.py logs them,
# scrubbed of the key); clients get one sentence each.
ARC_UNAVAILABLE = "this org's Arc is unavailable; retry later"
ARC_REJECTED = "the org's Arc refused a request Memtrace built; the details are in the server log"


def response_for(exc: MemtraceError) -> Response:
    if isinstance(exc, NoArcInstance):
        return error_response(exc.status, exc.message, hint=NO_ARC_HINT)
    if isinstance(exc, Overloaded | ArcUnavailable):
        headers = [(b"Retry-After", str(exc.retry_after).encode())]
        return error_response(exc.status, ARC_UNAVAILABLE if isinstance(exc, ArcUnavailable) else exc.message,
                              headers)
    if isinstance(exc, Conflict) and exc.memory_id:
        return error_response(exc.status, exc.message, memory_id=exc.memory_id)
    if isinstance(exc, ArcRejected) and not isinstance(exc, ArcDeleteRefused):
        return error_response(exc.status, ARC_REJECTED)  # ArcDeleteRefused names the setting to change, no secret
    return error_response(exc.status, exc.message)


async def _on_domain_error(app: Any, request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MemtraceError)
    return response_for(exc)


async def _on_http_exception(app: Any, request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 500)
    messages = {404: "not found", 405: "method not allowed", 413: "request body too large"}
    return error_response(status, messages.get(status, "request failed"))


def _store_unreachable(exc: BaseException) -> bool:
    """A PostgreSQL connection failure (metadata.url), recognised without importing the optional driver."""
    return any(c.__name__ in ("OperationalError", "PoolTimeout") and c.__module__.startswith("psycopg")
               for c in type(exc).__mro__)


async def _on_unexpected(app: Any, request: Request, exc: Exception) -> Response:
    if _store_unreachable(exc):
        log.warning("shared database unavailable on %s: %s", request.url.path.decode(errors="replace"), exc)
        return error_response(503, "the shared database is unavailable; retry later", [(b"Retry-After", b"2")])
    log.exception("unhandled error on %s %s", request.method, request.url.path.decode(errors="replace"))
    return error_response(500, "internal server error")


def install(app: Application) -> None:
    app.exceptions_handlers[MemtraceError] = _on_domain_error
    app.exceptions_handlers[HTTPException] = _on_http_exception
    for status in (400, 404, 405, 413):
        app.exceptions_handlers[status] = _on_http_exception
    app.exceptions_handlers[Exception] = _on_unexpected
