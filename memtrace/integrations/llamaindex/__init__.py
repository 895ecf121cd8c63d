"""LlamaIndex integration: `MemtraceMemoryBlock`, a long-term memory block of ``llama_index.core.memory.Memory``.

Install with ``pip install 'memtrace-server[llamaindex]'`` (llama-index-core). The block talks to a running Memtrace
over HTTP with an ``mtk_`` key through `memtrace.client.MemtraceClient`, from whatever event loop the Memory runs in:
``Memory.from_defaults(memory_blocks=[MemtraceMemoryBlock(agent_id=..., url=..., api_key=...)])``.
"""

from __future__ import annotations

try:
    import llama_index.core.memory as _llama_memory  # noqa: F401 - only checks that the optional dependency is there
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "memtrace.integrations.llamaindex needs llama-index-core: pip install 'memtrace-server[llamaindex]'"
    ) from exc

from memtrace.integrations.llamaindex._block import MESSAGE_EVENT, MemtraceMemoryBlock

__all__ = ["MESSAGE_EVENT", "MemtraceMemoryBlock"]
