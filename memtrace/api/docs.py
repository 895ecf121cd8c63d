"""`GET /openapi.json`: the OpenAPI document, encoded once at app creation and served as bytes."""

from __future__ import annotations

from blacksheep import Content, Request, Response, Router

from memtrace.api.http import JSON


def register(router: Router, document: bytes) -> None:
    async def openapi(request: Request) -> Response:
        return Response(200, None, Content(JSON, document))

    router.add_get("/openapi.json", openapi)
