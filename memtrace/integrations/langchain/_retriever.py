"""MemtraceRetriever: Memtrace memories relevant to a query, as LangChain Documents."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from memtrace.client import AsyncMemtraceClient, MemoryType
from memtrace.integrations._pydantic import Connected
from memtrace.integrations._recall import Recalled, memory_fields, recalled, search_fields

__all__ = ["MemtraceRetriever"]


class MemtraceRetriever(Connected, BaseRetriever):
    """Retrieves the `k` memories most relevant to a query, best first, filtered by agent, session, types, tags and
    time.

    Each Document's ``page_content`` is the memory's content, its ``id`` the memory id, and its metadata the
    memory's fields (``id``, ``time``, ``agent_id``, ``session_id``, ``memory_type``, ``event_type``, ``tags``,
    ``importance``, ``metadata``) plus ``score`` (the relevance; None for an empty query, which gives the
    newest). `k` can also be given per call: ``retriever.invoke("pricing", k=2)``.
    """

    agent_id: str | None = None
    session_id: str | None = None
    k: int = Field(default=4, ge=1, le=1000)
    memory_types: list[MemoryType] | None = None
    event_types: list[str] | None = None
    tags: list[str] | None = None
    since: str | None = None
    until: str | None = None

    def _find(self, query: str, k: int | None) -> Callable[[AsyncMemtraceClient], Coroutine[Any, Any, list[Document]]]:
        fields = search_fields(query, limit=k or self.k, agent_id=self.agent_id, session_id=self.session_id,
                               memory_types=self.memory_types, event_types=self.event_types, tags=self.tags,
                               since=self.since, until=self.until)

        async def call(client: AsyncMemtraceClient) -> list[Document]:
            return [_document(found) for found in recalled((await client.search(**fields)).results)]

        return call

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        return self._mt.run(self._find(query, k))

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None) -> list[Document]:
        return await self._mt.arun(self._find(query, k))


def _document(found: Recalled) -> Document:
    return Document(page_content=found.memory.content, id=found.memory.id,
                    metadata=memory_fields(found.memory, found.score))
