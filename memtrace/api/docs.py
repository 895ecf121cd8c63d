"""`GET /openapi.json`, the `/docs` page and its assets, and `/` → `/docs`.

The document is encoded once at app creation. The docs page is Swagger UI, vendored under `static/swagger-ui/`
and read into memory when the routes are registered, so it works on a machine with no internet.
"""

from __future__ import annotations

from importlib import resources

from blacksheep import Content, Request, Response, Router

from memtrace.api.http import JSON, error_response
from memtrace.api.openapi import ASSET_MEDIA, DOC_ASSETS

ASSETS_PATH = "/docs/assets/"
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Memtrace API</title>
<link rel="stylesheet" href="{ASSETS_PATH}swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}init.js"></script>
</body>
</html>
""".encode()
CACHE = (b"Cache-Control", b"public, max-age=86400")
NOSNIFF = (b"X-Content-Type-Options", b"nosniff")


def load_assets() -> dict[str, tuple[bytes, bytes]]:
    """name → (media type, bytes) of every file the page references."""
    folder = resources.files("memtrace.api").joinpath("static", "swagger-ui")
    out: dict[str, tuple[bytes, bytes]] = {}
    for name in DOC_ASSETS:
        media = ASSET_MEDIA[name[name.rindex("."):]]
        out[name] = (media.encode(), folder.joinpath(name).read_bytes())
    return out


def register(router: Router, document: bytes) -> None:
    assets = load_assets()

    async def openapi(request: Request) -> Response:
        return Response(200, None, Content(JSON, document))

    async def docs(request: Request) -> Response:
        return Response(200, [NOSNIFF], Content(b"text/html; charset=utf-8", PAGE))

    async def asset(request: Request) -> Response:
        found = assets.get(request.route_values.get("asset") or "")
        if found is None:
            return error_response(404, "not found")
        media, data = found
        return Response(200, [CACHE, NOSNIFF], Content(media, data))

    async def root(request: Request) -> Response:
        return Response(302, [(b"Location", b"/docs")])

    router.add_get("/openapi.json", openapi)
    router.add_get("/docs", docs)
    router.add_get(ASSETS_PATH + "{asset}", asset)
    router.add_get("/", root)
