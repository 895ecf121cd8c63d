"""Where one org's memories live: the Arc base URL, database, measurement and (decrypted) token.

The token is held in memory only as long as the binding; every textual form of a binding
(`repr`, `str`, rich's repr protocol) leaves it out, so a binding can be logged or put in an
exception message without leaking the secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec
from msgspec import structs

from memtrace import crypto


class ArcBinding(msgspec.Struct, frozen=True):
    org_id: str
    url: str
    database: str = "default"
    measurement: str = "events"
    api_key: str | None = None

    def __post_init__(self) -> None:
        # Paths are appended as f"{url}/api/...": a trailing slash would produce "//api" on some Arcs.
        if self.url.endswith("/"):
            structs.force_setattr(self, "url", self.url.rstrip("/"))

    @property
    def host(self) -> str:
        """host:port of the Arc, the only part of the location that error messages show."""
        return urlsplit(self.url).netloc or self.url

    def __repr__(self) -> str:
        key = "***" if self.api_key else "None"
        return (
            f"ArcBinding(org_id={self.org_id!r}, url={self.url!r}, database={self.database!r}, "
            f"measurement={self.measurement!r}, api_key={key})"
        )

    __str__ = __repr__

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("org_id", self.org_id),
            ("url", self.url),
            ("database", self.database),
            ("measurement", self.measurement),
            ("api_key", "***" if self.api_key else None),
        ]


class SealedBinding(Protocol):
    """A binding as the metadata store keeps it, the Arc API key still encrypted (`metadata.ArcInstanceRow`)."""

    @property
    def org_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def database(self) -> str: ...
    @property
    def measurement(self) -> str: ...
    @property
    def api_key_cipher(self) -> bytes | None: ...
    @property
    def api_key_nonce(self) -> bytes | None: ...


def decrypt_binding(row: SealedBinding, master_key: bytes | None) -> ArcBinding:
    """The usable binding; raises DecryptionError naming the org, or MasterKeyError if a key is needed."""
    api_key: str | None = None
    if row.api_key_cipher is not None and row.api_key_nonce is not None:
        if master_key is None:
            raise crypto.MasterKeyError(
                f"org {row.org_id} has an encrypted Arc API key but {crypto.MASTER_KEY_ENV} is not set: "
                "export the master key it was stored with"
            )
        api_key = crypto.decrypt(master_key, row.org_id, row.api_key_cipher, row.api_key_nonce)
    return ArcBinding(
        org_id=row.org_id, url=row.url, database=row.database, measurement=row.measurement, api_key=api_key
    )


def decrypt_bindings(rows: Iterable[SealedBinding], master_key: bytes | None) -> list[ArcBinding]:
    """All bindings, failing on the first one that does not decrypt (the error names its org)."""
    return [decrypt_binding(row, master_key) for row in rows]
