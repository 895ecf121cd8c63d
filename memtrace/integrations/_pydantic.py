"""The connection fields of the integrations whose framework classes are pydantic models (LangChain's retriever,
LlamaIndex's memory block): `url` and `api_key`, or an open `client`; the client in use is `self._mt`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from memtrace.client import MemtraceClient
from memtrace.integrations._recall import connect

__all__ = ["Connected"]


class Connected(BaseModel):
    """Mixed in before the framework's base class: ``class MemtraceRetriever(Connected, BaseRetriever)``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str | None = None
    api_key: SecretStr | None = None
    client: MemtraceClient | None = Field(default=None, exclude=True)
    _mt: MemtraceClient = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        key = self.api_key.get_secret_value() if self.api_key else None
        self._mt = connect(self.url, key, self.client)

    def close(self) -> None:
        """Close the client this object opened (a client passed in stays open)."""
        if self.client is None:
            self._mt.close()
