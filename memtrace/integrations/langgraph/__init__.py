"""LangGraph integration: `MemtraceStore`, a ``BaseStore`` that keeps a graph's long-term memory in Memtrace.

Install with ``pip install 'memtrace-server[langgraph]'``. The store talks to a running Memtrace over HTTP with an
``mtk_`` key through `memtrace.client.MemtraceClient`; ``batch`` and ``abatch`` (so ``get``/``put``/``delete``/
``search``/``list_namespaces`` and their async forms) share that one client. See `MemtraceStore` for how
namespaces, keys and values map onto memories.
"""

from __future__ import annotations

try:
    import langgraph.store.base as _langgraph_store  # noqa: F401 - only checks that the optional dependency is there
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "memtrace.integrations.langgraph needs LangGraph: pip install 'memtrace-server[langgraph]'"
    ) from exc

from memtrace.integrations.langgraph._store import ITEM_EVENT, MemtraceStore

__all__ = ["ITEM_EVENT", "MemtraceStore"]
