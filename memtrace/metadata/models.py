"""Records the metadata repositories return.

`Agent` and `Session` are the API's response objects with exactly the field names of api.md, so
handlers encode them directly. The other records carry what auth, the Arc registry and the admin CLI
need, and nothing secret unless the name says so (`KeyRecord.key_hash`, `ArcInstanceRow` cipher).
"""

from __future__ import annotations

from typing import Literal, get_args

from msgspec import Raw, Struct

SessionStatus = Literal["active", "closed"]
SESSION_STATUSES: tuple[str, ...] = get_args(SessionStatus)


class Org(Struct, kw_only=True):
    id: str
    name: str
    created_at: str


class ArcInstance(Struct, kw_only=True):
    """An org's Arc binding without its secret: safe to print or return."""

    org_id: str
    url: str
    database: str
    measurement: str
    has_api_key: bool
    created_at: str
    updated_at: str


class ArcInstanceRow(Struct, kw_only=True):
    """A binding as stored: the Arc API key still encrypted (decrypt with `arc.binding.decrypt_binding`)."""

    org_id: str
    url: str
    database: str
    measurement: str
    api_key_cipher: bytes | None
    api_key_nonce: bytes | None


class ApiKeyInfo(Struct, kw_only=True):
    """An API key as listed to its org's admins: never the key or its hash."""

    id: str
    org_id: str
    name: str
    permissions: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class KeyRecord(Struct, frozen=True, kw_only=True):
    """What auth needs to verify a presented key and authorize the request."""

    id: str
    org_id: str
    name: str
    key_hash: str
    permissions: frozenset[str]
    expires_at_us: int | None
    revoked_at_us: int | None


class Agent(Struct, kw_only=True):
    id: str
    org_id: str
    name: str
    description: str
    config: Raw  # the stored JSON object, passed through (see jsonlimits.stored_object)
    created_at: str
    last_active_at: str  # starts at created_at; moves with memory and session activity


class Session(Struct, kw_only=True):
    id: str
    org_id: str
    agent_id: str
    status: str
    metadata: Raw  # the stored JSON object, passed through
    created_at: str
    updated_at: str
    closed_at: str | None = None
