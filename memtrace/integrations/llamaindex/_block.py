"""MemtraceMemoryBlock: a long-term memory block of llama_index.core.memory.Memory kept in Memtrace."""

from __future__ import annotations

from typing import Any, Final

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import BaseMemoryBlock
from pydantic import Field

from memtrace.client import AsyncMemtraceClient, MemoryType, NewMemory
from memtrace.integrations._pydantic import Connected
from memtrace.integrations._recall import recalled, search_fields

__all__ = ["MESSAGE_EVENT", "MemtraceMemoryBlock"]

MESSAGE_EVENT: Final = "chat_message"
_CONTENT_CHARS: Final = 2000
_CHARS_PER_TOKEN: Final = 4  # the estimate Memtrace's session context uses too
_BATCH: Final = 1000


def _text(message: ChatMessage) -> str:
    return " ".join((message.content or "").split())


def _tokens(text: str) -> int:
    return -(-len(text) // _CHARS_PER_TOKEN)


def _within(lines: list[str], budget: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for line in lines:
        used += _tokens(line) + 1
        if used > budget:
            break
        kept.append(line)
    return kept


class MemtraceMemoryBlock(Connected, BaseMemoryBlock[str]):
    """Puts the messages the Memory flushes from its short-term history into Memtrace, and gets back the memories
    relevant to the latest user message, within `max_tokens` (and within what the Memory's own token limit leaves:
    `atruncate` drops the least relevant lines first).

    Each flushed message is an ``episodic`` memory of `agent_id` (event type ``chat_message``, content
    ``"<role>: <text>"``, tagged `tags`, in Memtrace session `session_id` when given). Recall searches `agent_id`'s
    memories of `memory_types` carrying every tag of `recall_tags`; today a memory matches when its content contains
    the user's latest message (case-insensitive), newest first, and with ranked recall the most relevant first.
    """

    name: str = "memtrace"
    description: str | None = "What Memtrace remembers that bears on the conversation."
    priority: int = 1
    agent_id: str
    session_id: str | None = None
    k: int = Field(default=10, ge=1, le=100)
    max_tokens: int = Field(default=1000, ge=1)
    memory_types: list[MemoryType] | None = None
    tags: list[str] | None = None
    recall_tags: list[str] | None = None

    async def _aput(self, messages: list[ChatMessage]) -> None:
        memories = [NewMemory(agent_id=self.agent_id, content=f"{m.role.value}: {text}"[:_CONTENT_CHARS],
                              event_type=MESSAGE_EVENT, session_id=self.session_id, tags=self.tags or None,
                              metadata={"role": m.role.value})
                    for m in messages if (text := _text(m))]

        async def store(client: AsyncMemtraceClient) -> None:
            for start in range(0, len(memories), _BATCH):  # a message remembered already is skipped, not an error
                await client.add_memories(memories[start:start + _BATCH])

        if memories:
            await self._mt.arun(store)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        query = next((_text(m) for m in reversed(messages or []) if m.role.value == "user" and _text(m)), "")
        if not query:
            return ""
        fields = search_fields(query, limit=self.k, agent_id=self.agent_id, memory_types=self.memory_types,
                               tags=self.recall_tags)

        async def find(client: AsyncMemtraceClient) -> list[str]:
            return [f"- {found.memory.content}" for found in recalled((await client.search(**fields)).results)]

        return "\n".join(_within(await self._mt.arun(find), self.max_tokens))

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop whole lines from the end (the least relevant) until `tokens_to_truncate` are saved."""
        lines = content.splitlines()
        kept = _within(lines, max(0, _tokens(content) + len(lines) - tokens_to_truncate))
        return "\n".join(kept) or None
