"""`GET /health` (liveness) and `GET /ready` (readiness).

With an `admin` key, `/health` also lists the rows waiting for Arc per org and the age of the oldest.

The public `/ready` body is overall status and counts only: org ids and Arc addresses are nobody's business
but an operator's, so the per-org Arc health is added only when a valid `admin` key is presented.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec
from blacksheep import Request, Response, Router
from msgspec import Struct

from memtrace import __version__
from memtrace.api.deps import Deps
from memtrace.api.http import json_response
from memtrace.auth import key_from_headers
from memtrace.errors import MemtraceError
from memtrace.keys import has_permission


class OrgPending(Struct, kw_only=True):
    org_id: str
    rows: int
    oldest_age_s: float


class Health(Struct, kw_only=True, omit_defaults=True):
    status: Literal["ok"]
    version: str
    # Admin key only: rows accepted but not yet in Arc, per org (with a shared PostgreSQL: of every host).
    pending: list[OrgPending] | None = None


class OrgCounts(Struct, kw_only=True):
    """Orgs by Arc health: `degraded` means its Arc is failing (circuit open); `unknown` means not probed yet."""

    ok: int
    degraded: int
    unknown: int


class OrgArcHealth(Struct, kw_only=True):
    """One org's Arc health (admin only): the Arc host and circuit state, never a token."""

    status: Literal["ok", "down", "unknown"]
    circuit: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    last_error: str | None
    last_ok_at: str | None
    arc: str


class Readiness(Struct, kw_only=True, omit_defaults=True):
    """Ready once the metadata DB answers and every org's Arc health is known; `arc` only for an admin key."""

    status: Literal["ready", "not_ready"]
    metadata: Literal["ok", "unavailable"]
    journal: Literal["ok", "full"]  # full: writes get 503 until delivery and pruning free space
    orgs: OrgCounts
    arc: dict[str, OrgArcHealth] | None = None


_COUNTED = {"ok": "ok", "down": "degraded", "unknown": "unknown"}


def org_counts(snapshot: dict[str, OrgArcHealth]) -> OrgCounts:
    counts = {"ok": 0, "degraded": 0, "unknown": 0}
    for org in snapshot.values():
        counts[_COUNTED[org.status]] += 1
    return OrgCounts(**counts)


def register(router: Router, deps: Deps) -> None:
    async def is_admin(request: Request) -> bool:
        """A valid admin key unlocks the detail; any other key (or none) gets the public body, never a 401."""
        key = key_from_headers(request.get_first_header(b"x-api-key"), request.get_first_header(b"authorization"))
        if key is None:
            return False
        try:
            principal = await deps.auth.authenticate(key, request.client_ip)
        except MemtraceError:  # unknown, revoked, or over the failure budget: the public body
            return False
        return has_permission(principal.permissions, "admin")

    async def health(request: Request) -> Response:
        pending = None
        try:
            if await is_admin(request):
                now = time.time()
                pending = [OrgPending(org_id=b.org_id, rows=b.pending,
                                      oldest_age_s=round(max(0.0, now - b.oldest_accepted_at), 3))
                           for b in await deps.status.backlog()]
        except Exception:  # liveness never fails on the detail (a shared database may be away, a key refused)
            pending = None
        return json_response(200, Health(status="ok", version=__version__, pending=pending))

    async def ready(request: Request) -> Response:
        snapshot = msgspec.convert(deps.status.arc_health(), dict[str, OrgArcHealth])
        metadata_ok = await deps.status.metadata_ok()
        counts = org_counts(snapshot)
        journal_full = deps.status.journal_full
        ready = metadata_ok and counts.unknown == 0 and not journal_full
        body = Readiness(
            status="ready" if ready else "not_ready",
            metadata="ok" if metadata_ok else "unavailable",
            journal="full" if journal_full else "ok",
            orgs=counts,
            arc=snapshot if metadata_ok and await is_admin(request) else None,
        )
        return json_response(200 if ready else 503, body)

    router.add_get("/health", health)
    router.add_get("/ready", ready)
