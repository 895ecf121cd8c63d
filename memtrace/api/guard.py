"""An ASGI wrapper in front of the BlackSheep app for requests BlackSheep cannot even represent.

A request target with raw non-ASCII bytes (HTTP requires them percent-encoded) makes BlackSheep's URL
parser raise outside any handler, and Granian then answers a plain-text 500. Such a target is answered
here with a JSON 400 before BlackSheep sees it; everything else passes through untouched.
"""

from __future__ import annotations

import msgspec

from memtrace.api.asgi import ASGIApp, Receive, Scope, Send

BAD_TARGET = "invalid request target: non-ASCII bytes must be percent-encoded"
_BODY = msgspec.json.encode({"error": BAD_TARGET})


class TargetGuard:
    """Refuse (400 JSON) an HTTP request whose path or query holds raw non-ASCII bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _ascii_target(scope):
            await send({"type": "http.response.start", "status": 400, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)


def _ascii_target(scope: Scope) -> bool:
    raw_path = scope.get("raw_path")
    path_ok = raw_path.isascii() if isinstance(raw_path, bytes) else str(scope.get("path", "")).isascii()
    query = scope.get("query_string", b"")
    return path_ok and (not isinstance(query, bytes) or query.isascii())
