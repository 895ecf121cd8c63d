"""MemtraceChatMessageHistory: a LangChain chat history stored as the session memories of one Memtrace session."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from memtrace.client import AsyncMemtraceClient, Memory, MemtraceClient, NewMemory
from memtrace.integrations._recall import connect

__all__ = ["MESSAGE_EVENT", "MemtraceChatMessageHistory"]

MESSAGE_EVENT: Final = "chat_message"
_MARK: Final = "memtrace_langchain"
_PAGE: Final = 1000
_BATCH: Final = 1000
_ATTEMPTS: Final = 5
_CONTENT_CHARS: Final = 2000
_METADATA_BYTES: Final = 60_000  # the server's default metadata cap is 64 KiB encoded


def _content(message: BaseMessage) -> str:
    text = " ".join(str(message.text).split())[:_CONTENT_CHARS]
    return f"{message.type}: {text}" if text else message.type


class MemtraceChatMessageHistory(BaseChatMessageHistory):
    """Chat history for ``RunnableWithMessageHistory`` (or any LangChain code that takes a chat history).

    Each message is one ``session`` memory (event type ``chat_message``) of `session_id`, written by `agent_id`:
    content is ``"<role>: <text>"`` (what session context and search show), metadata keeps the exact message
    (``message``) and a per-session sequence number (``seq``) that orders reads. Each memory's dedup key is
    ``lc.<session hash>.<seq>``, so the same text twice is no duplicate and two writers racing for a number collide
    on the key instead of both winning: the loser re-reads and stores under fresh numbers. `clear()` forgets the
    session's chat messages (all writers'); it is a real deletion.
    """

    def __init__(self, session_id: str, agent_id: str, url: str | None = None, api_key: str | None = None, *,
                 client: MemtraceClient | None = None, tags: Sequence[str] = ()) -> None:
        self.session_id = session_id
        self.agent_id = agent_id
        self.tags = list(tags)
        self.client = connect(url, api_key, client)
        self._owned = client is None
        self._key = "lc." + hashlib.sha256(session_id.encode()).hexdigest()[:24]

    def close(self) -> None:
        """Close the client this history opened (a client passed in stays open)."""
        if self._owned:
            self.client.close()

    # --- BaseChatMessageHistory -------------------------------------------------------------------------

    @property  # the base class declares a plain attribute; LangChain's own stores read it as a property too
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages, oldest first."""
        return self.client.run(self._load)

    async def aget_messages(self) -> list[BaseMessage]:
        return await self.client.arun(self._load)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in order; on return they are durable and every later read sees them."""
        pending = list(messages)
        self.client.run(lambda c: self._append(c, pending))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        pending = list(messages)
        await self.client.arun(lambda c: self._append(c, pending))

    def clear(self) -> None:
        self.client.run(self._forget)

    async def aclear(self) -> None:
        await self.client.arun(self._forget)

    # --- storage ----------------------------------------------------------------------------------------

    async def _forget(self, client: AsyncMemtraceClient) -> None:
        await client.forget(session_id=self.session_id, memory_types=["session"], event_types=[MESSAGE_EVENT])

    async def _memories(self, client: AsyncMemtraceClient) -> list[Memory]:
        memories: list[Memory] = []
        while True:
            page = await client.session_memories(self.session_id, memory_type="session", event_type=MESSAGE_EVENT,
                                                 order="asc", limit=_PAGE, offset=len(memories))
            memories.extend(page.memories)
            if not page.has_more or not page.memories:
                return [m for m in memories if m.metadata.get(_MARK) == 1 and isinstance(m.metadata.get("seq"), int)]

    async def _load(self, client: AsyncMemtraceClient) -> list[BaseMessage]:
        memories = sorted(await self._memories(client), key=lambda m: int(m.metadata["seq"]))
        return messages_from_dict([m.metadata["message"] for m in memories if isinstance(m.metadata.get("message"),
                                                                                          dict)])

    def _memory(self, message: BaseMessage, seq: int) -> NewMemory:
        metadata: dict[str, Any] = {_MARK: 1, "seq": seq, "message": message_to_dict(message)}
        if len(msgspec.json.encode(metadata)) > _METADATA_BYTES:
            raise ValueError(f"a {message.type} message of more than {_METADATA_BYTES} bytes of JSON does not fit "
                             f"in one Memtrace memory")
        return NewMemory(agent_id=self.agent_id, content=_content(message), memory_type="session",
                         event_type=MESSAGE_EVENT, session_id=self.session_id, metadata=metadata,
                         tags=self.tags or None, dedup_key=f"{self._key}.{seq}")

    async def _append(self, client: AsyncMemtraceClient, pending: list[BaseMessage]) -> None:
        for _ in range(_ATTEMPTS):
            if not pending:
                return
            known = await self._memories(client)
            first = 1 + max((int(m.metadata["seq"]) for m in known), default=-1)
            batch = [self._memory(message, first + i) for i, message in enumerate(pending)]
            stored: set[int] = set()
            for start in range(0, len(batch), _BATCH):
                result = await client.add_memories(batch[start:start + _BATCH])
                stored.update(int(m.metadata["seq"]) for m in result.memories)
            pending = [message for i, message in enumerate(pending) if first + i not in stored]
        if pending:
            raise RuntimeError(f"could not store {len(pending)} message(s) in session {self.session_id}: sequence "
                               f"numbers kept colliding with other writers")
