"""LangChain integration: a Memtrace-backed chat message history and a retriever over Memtrace memories.

Install with ``pip install 'memtrace-server[langchain]'`` (langchain-core). Both talk to a running Memtrace over
HTTP with an ``mtk_`` key through `memtrace.client.MemtraceClient`; their blocking and async methods share it.

- `MemtraceChatMessageHistory(session_id, agent_id, url, api_key)`: a ``BaseChatMessageHistory`` whose messages
  are the session memories of one Memtrace session, in order, with their roles; ``clear()`` forgets them.
- `MemtraceRetriever(url=..., api_key=..., agent_id=None, k=4, ...)`: a ``BaseRetriever`` returning memories as
  ``Document``s, the memory's fields and its score in metadata.
"""

from __future__ import annotations

try:
    import langchain_core as _langchain_core  # noqa: F401 - only checks that the optional dependency is installed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "memtrace.integrations.langchain needs langchain-core: pip install 'memtrace-server[langchain]'"
    ) from exc

from memtrace.integrations.langchain._history import MESSAGE_EVENT, MemtraceChatMessageHistory
from memtrace.integrations.langchain._retriever import MemtraceRetriever

__all__ = ["MESSAGE_EVENT", "MemtraceChatMessageHistory", "MemtraceRetriever"]
