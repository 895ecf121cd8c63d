"""Where one org's memories live: the Arc base URL, database, measurement and (decrypted) token.

The token is held in memory only as long as the binding; every textual form of a binding
(`repr`, `str`, rich's repr protocol) leaves it out, so a binding can be logged or put in an
exception message without leaking the secret.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec
from msgspec import structs


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
