"""What handlers need, built once by `app.py` and captured by each resource's routes."""

from __future__ import annotations

from dataclasses import dataclass

from blacksheep import Request

from memtrace.arc.registry import ArcRegistry
from memtrace.auth import Authenticator, Principal, key_from_headers
from memtrace.config import Settings
from memtrace.journal import Journal
from memtrace.memory.service import MemoryService
from memtrace.metadata.agents import Agents
from memtrace.metadata.db import MetadataDB
from memtrace.metadata.sessions import Sessions
from memtrace.observe import remember_principal


@dataclass(slots=True)
class Deps:
    settings: Settings
    metadata: MetadataDB
    journal: Journal
    registry: ArcRegistry
    auth: Authenticator
    memories: MemoryService
    agents: Agents
    sessions: Sessions

    async def principal(self, request: Request, permission: str) -> Principal:
        """The caller, from its key only; raises 401/403 otherwise."""
        key = key_from_headers(request.get_first_header(b"x-api-key"), request.get_first_header(b"authorization"))
        principal = await self.auth.authenticate(key, request.client_ip)
        remember_principal(request, principal.org_id, principal.key_id)
        principal.require(permission)
        return principal
