"""`GET /health` (liveness) and `GET /ready` (readiness with per-org Arc health, no secrets)."""

from __future__ import annotations

from blacksheep import Request, Response, Router

from memtrace import __version__
from memtrace.api.deps import Deps
from memtrace.api.http import json_response


def register(router: Router, deps: Deps) -> None:
    async def health(request: Request) -> Response:
        return json_response(200, {"status": "ok", "version": __version__})

    async def ready(request: Request) -> Response:
        orgs = deps.registry.health_snapshot()
        try:
            await deps.metadata.change_version()
            metadata_ok = True
        except Exception:
            metadata_ok = False
        known = all(org.get("status") != "unknown" for org in orgs.values())
        journal_full = deps.journal.full
        ready = metadata_ok and known and not journal_full
        body = {
            "status": "ready" if ready else "not_ready",
            "metadata": "ok" if metadata_ok else "unavailable",
            "journal": "full" if journal_full else "ok",
            "arc": orgs,
        }
        return json_response(200 if ready else 503, body)

    router.add_get("/health", health)
    router.add_get("/ready", ready)
