"""`/console`: the web console, a static single page (plain ES modules, no build step) under `static/console/`.

Files are read into memory when the routes are registered, so nothing is fetched from the internet and a
missing file fails at start-up. The page holds no key: the browser keeps the one it is given in session
storage and sends it as `x-api-key`. A strict Content-Security-Policy allows only this origin's scripts,
styles and API, so even a memory whose content is markup cannot run anything.
"""

from __future__ import annotations

from importlib import resources

from blacksheep import Content, Request, Response, Router

from memtrace.api.http import error_response
from memtrace.api.openapi import ASSET_MEDIA, CONSOLE_ASSETS

PAGE_PATH = "/console"
ASSETS_PATH = "/console/assets/"
CSP = (b"Content-Security-Policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY = [CSP, (b"X-Content-Type-Options", b"nosniff"), (b"Referrer-Policy", b"no-referrer")]
REVALIDATE = (b"Cache-Control", b"no-cache")  # small files; a new release must not mix with cached modules


def load() -> tuple[bytes, dict[str, tuple[bytes, bytes]]]:
    """The page, and name → (media type, bytes) of every asset it loads."""
    folder = resources.files("memtrace.api").joinpath("static", "console")
    assets = {name: (ASSET_MEDIA[name[name.rindex("."):]].encode(), folder.joinpath(name).read_bytes())
              for name in CONSOLE_ASSETS}
    return folder.joinpath("index.html").read_bytes(), assets


def register(router: Router) -> None:
    page, assets = load()

    async def console(request: Request) -> Response:
        return Response(200, [*SECURITY, REVALIDATE], Content(b"text/html; charset=utf-8", page))

    async def asset(request: Request) -> Response:
        found = assets.get(request.route_values.get("asset") or "")
        if found is None:
            return error_response(404, "not found")
        media, data = found
        return Response(200, [*SECURITY, REVALIDATE], Content(media, data))

    router.add_get(PAGE_PATH, console)
    router.add_get(ASSETS_PATH + "{asset}", asset)
