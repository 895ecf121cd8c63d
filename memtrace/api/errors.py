"""Domain errors → HTTP answers, in one place; every error body is `{"error": "..."}` JSON."""

from __future__ import annotations

import logging
from typing import Any

from blacksheep import Application, Request, Response
from blacksheep.exceptions import HTTPException

from memtrace.api.http import error_response
from memtrace.errors import ArcUnavailable, MemtraceError, NoArcInstance, Overloaded
from memtrace.metrics import m

log = logging.getLogger("memtrace.api")

NO_ARC_HINT = "run: memtrace admin org add-arc <org id or name> --url URL --database DB"


def response_for(exc: MemtraceError) -> Response:
    if isinstance(exc, NoArcInstance):
        return error_response(exc.status, exc.message, hint=NO_ARC_HINT)
    if isinstance(exc, Overloaded):
        m().backpressure.inc()
    if isinstance(exc, Overloaded | ArcUnavailable):
        headers = [(b"Retry-After", str(exc.retry_after).encode())]
        return error_response(exc.status, exc.message, headers)
    return error_response(exc.status, exc.message)


async def _on_domain_error(app: Any, request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MemtraceError)
    return response_for(exc)


async def _on_http_exception(app: Any, request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 500)
    messages = {404: "not found", 405: "method not allowed", 413: "request body too large"}
    return error_response(status, messages.get(status, "request failed"))


async def _on_unexpected(app: Any, request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path.decode(errors="replace"))
    return error_response(500, "internal server error")


def install(app: Application) -> None:
    app.exceptions_handlers[MemtraceError] = _on_domain_error
    app.exceptions_handlers[HTTPException] = _on_http_exception
    for status in (400, 404, 405, 413):
        app.exceptions_handlers[status] = _on_http_exception
    app.exceptions_handlers[Exception] = _on_unexpected
