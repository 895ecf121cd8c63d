"""What handlers need: the settings (known when the app is built) and the services (bound when it starts).

Routes are registered when the app is built, but the services open files and connections, which needs the
worker's event loop: so handlers capture one `Deps`, and the composition root binds its `Services` at
start-up, before the first request is served. Handlers reach services only, never the journal, the Arc
registry or the metadata connection; the agents, sessions and audit repositories serve as those
resources' services (see docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from blacksheep import Request

from memtrace.api.observe import remember_principal
from memtrace.auth import Authenticator, Principal, key_from_headers
from memtrace.config import Settings
from memtrace.memory.ranked import RankedReads
from memtrace.memory.service import MemoryService
from memtrace.metadata.agents import Agents
from memtrace.metadata.forgetting import Audit
from memtrace.metadata.sessions import Sessions
from memtrace.readiness import StatusService


@dataclass(slots=True, frozen=True, kw_only=True)
class Services:
    auth: Authenticator
    memories: MemoryService
    ranked: RankedReads
    agents: Agents
    sessions: Sessions
    audit: Audit
    status: StatusService


class Deps:
    __slots__ = ("_services", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._services: Services | None = None

    def bind(self, services: Services) -> None:
        self._services = services

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("services used before the app started")
        return self._services

    @property
    def auth(self) -> Authenticator:
        return self.services.auth

    @property
    def memories(self) -> MemoryService:
        return self.services.memories

    @property
    def ranked(self) -> RankedReads:
        return self.services.ranked

    @property
    def agents(self) -> Agents:
        return self.services.agents

    @property
    def sessions(self) -> Sessions:
        return self.services.sessions

    @property
    def audit(self) -> Audit:
        return self.services.audit

    @property
    def status(self) -> StatusService:
        return self.services.status

    async def principal(self, request: Request, permission: str) -> Principal:
        """The caller, from its key only; raises 401/403 otherwise."""
        key = key_from_headers(request.get_first_header(b"x-api-key"), request.get_first_header(b"authorization"))
        principal = await self.auth.authenticate(key, request.client_ip)
        remember_principal(request, principal.org_id, principal.key_id)
        principal.require(permission)
        return principal
