"""MemtraceMemory: AutoGen's Memory protocol (add, query, update_context, clear, close) over Memtrace."""

from __future__ import annotations

import contextlib
from typing import Any, Final, Self

import msgspec
from autogen_core import CancellationToken, Component
from autogen_core.memory import Memory, MemoryContent, MemoryMimeType, MemoryQueryResult, UpdateContextResult
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import SystemMessage, UserMessage
from pydantic import BaseModel, Field, SecretStr

from memtrace.client import AsyncMemtraceClient, ConflictError, MemoryType, MemtraceClient, NewMemory
from memtrace.client import Memory as StoredMemory
from memtrace.integrations._recall import Recalled, connect, memory_fields, recalled, search_fields

__all__ = ["MEMORY_EVENT", "MemtraceMemory", "MemtraceMemoryConfig"]

MEMORY_EVENT: Final = "autogen_memory"
_TEXT_TYPES: Final = {MemoryMimeType.TEXT.value, MemoryMimeType.MARKDOWN.value, MemoryMimeType.JSON.value}


class MemtraceMemoryConfig(BaseModel):
    """What `MemtraceMemory.dump_component()` saves and `load_component` rebuilds it from."""

    url: str
    api_key: SecretStr
    agent_id: str
    session_id: str | None = None
    k: int = Field(default=5, ge=1, le=100)
    memory_types: list[MemoryType] | None = None
    tags: list[str] | None = None


def _mime(content: MemoryContent) -> str:
    return content.mime_type.value if isinstance(content.mime_type, MemoryMimeType) else str(content.mime_type)


def _content(found: Recalled) -> MemoryContent:
    memory = found.memory
    mime = memory.metadata.get("mime_type")
    mime = mime if isinstance(mime, str) and mime in _TEXT_TYPES else MemoryMimeType.TEXT.value
    value: str | dict[str, Any] = memory.content
    if mime == MemoryMimeType.JSON.value:
        value = msgspec.json.decode(memory.content)
    return MemoryContent(content=value, mime_type=mime, metadata=memory_fields(memory, found.score))


def _query_text(query: str | MemoryContent) -> str:
    """A query (or a result) as text: strings as they are, JSON objects encoded, anything else empty."""
    value = query.content if isinstance(query, MemoryContent) else query
    return value if isinstance(value, str) else msgspec.json.encode(value).decode() if isinstance(value, dict) else ""


class MemtraceMemory(Memory, Component[MemtraceMemoryConfig]):
    """Memory for ``AssistantAgent(memory=[MemtraceMemory(...)])``: what is added is remembered by `agent_id`.

    `add` stores text, markdown or JSON content as an ``episodic`` memory (event type ``autogen_memory``; the
    content's metadata and mime type in the memory's metadata; an identical memory within the dedup window is
    skipped). `query` returns up to `k` of the agent's memories matching the query with the memory's fields and
    ``score`` in each result's metadata; `update_context` queries with the latest user message and adds what it
    found to the model context as one system message. `clear` forgets everything `add` stored for the agent.
    """

    component_type = "memory"
    component_config_schema = MemtraceMemoryConfig
    component_provider_override = "memtrace.integrations.autogen.MemtraceMemory"

    def __init__(self, url: str | None = None, api_key: str | None = None, *, agent_id: str,
                 session_id: str | None = None, client: MemtraceClient | None = None, k: int = 5,
                 memory_types: list[MemoryType] | None = None, tags: list[str] | None = None) -> None:
        self.client = connect(url, api_key, client)
        self._owned = client is None
        self._api_key = api_key or ""
        self.agent_id, self.session_id, self.k = agent_id, session_id, k
        self.memory_types, self.tags = memory_types, tags

    async def add(self, content: MemoryContent, cancellation_token: CancellationToken | None = None) -> None:
        mime = _mime(content)
        if isinstance(content.content, dict):
            text = msgspec.json.encode(content.content).decode()
            mime = MemoryMimeType.JSON.value
        elif isinstance(content.content, str) and mime in _TEXT_TYPES:
            text = content.content
        else:
            raise ValueError(f"MemtraceMemory stores text, markdown and JSON, not {mime} content")
        memory = NewMemory(agent_id=self.agent_id, content=text, event_type=MEMORY_EVENT,
                           session_id=self.session_id, tags=self.tags,
                           metadata={**(content.metadata or {}), "mime_type": mime})

        async def store(client: AsyncMemtraceClient) -> None:
            with contextlib.suppress(ConflictError):  # remembered already, within the dedup window
                await client.add_memory(memory)

        await self.client.arun(store)

    async def query(self, query: str | MemoryContent = "", cancellation_token: CancellationToken | None = None,
                    **kwargs: Any) -> MemoryQueryResult:
        """The agent's memories matching `query` (`k`, `memory_types` and `tags` may be overridden in kwargs)."""
        fields = search_fields(_query_text(query), limit=int(kwargs.get("k", self.k)), agent_id=self.agent_id,
                               memory_types=kwargs.get("memory_types", self.memory_types),
                               tags=kwargs.get("tags", self.tags))

        async def find(client: AsyncMemtraceClient) -> list[StoredMemory]:
            return (await client.search(**fields)).results

        return MemoryQueryResult(results=[_content(found) for found in recalled(await self.client.arun(find))])

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        messages = await model_context.get_messages()
        last = next((m.content for m in reversed(messages) if isinstance(m, UserMessage)), "")
        found = await self.query(last) if isinstance(last, str) and last.strip() else MemoryQueryResult(results=[])
        if found.results:
            lines = [f"{i}. {_query_text(item)}" for i, item in enumerate(found.results, 1)]
            await model_context.add_message(SystemMessage(
                content="\nRelevant memory content (most relevant first):\n" + "\n".join(lines) + "\n"))
        return UpdateContextResult(memories=found)

    async def clear(self) -> None:
        """Forget every memory `add` stored for the agent (a real deletion)."""

        async def forget(client: AsyncMemtraceClient) -> None:
            await client.forget(agent_id=self.agent_id, event_types=[MEMORY_EVENT])

        await self.client.arun(forget)

    async def close(self) -> None:
        if self._owned:
            self.client.close()

    def _to_config(self) -> MemtraceMemoryConfig:
        return MemtraceMemoryConfig(url=self.client.base_url, api_key=SecretStr(self._api_key),
                                    agent_id=self.agent_id, session_id=self.session_id, k=self.k,
                                    memory_types=self.memory_types, tags=self.tags)

    @classmethod
    def _from_config(cls, config: MemtraceMemoryConfig) -> Self:
        return cls(config.url, config.api_key.get_secret_value(), agent_id=config.agent_id,
                   session_id=config.session_id, k=config.k, memory_types=config.memory_types, tags=config.tags)
