"""AutoGen integration: `MemtraceMemory`, an ``autogen_core.memory.Memory`` kept in Memtrace.

Install with ``pip install 'memtrace-server[autogen]'`` (autogen-core). The memory talks to a running Memtrace over
HTTP with an ``mtk_`` key through `memtrace.client.MemtraceClient`, from whatever event loop the agent runs in:
``AssistantAgent(..., memory=[MemtraceMemory(url, api_key, agent_id="assistant")])``.
"""

from __future__ import annotations

try:
    import autogen_core as _autogen_core  # noqa: F401 - only checks that the optional dependency is installed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "memtrace.integrations.autogen needs autogen-core: pip install 'memtrace-server[autogen]'"
    ) from exc

from memtrace.integrations.autogen._memory import MEMORY_EVENT, MemtraceMemory, MemtraceMemoryConfig

__all__ = ["MEMORY_EVENT", "MemtraceMemory", "MemtraceMemoryConfig"]
