"""Integrations of Memtrace with agent frameworks, each an optional extra.

- `memtrace.integrations.openai_agents` — OpenAI Agents SDK tools and session
  (``pip install 'memtrace-server[openai-agents]'``).
- `memtrace.integrations.langchain` — LangChain chat message history and retriever (``[langchain]``).
- `memtrace.integrations.langgraph` — LangGraph ``BaseStore`` for long-term memory (``[langgraph]``).
- `memtrace.integrations.autogen` — AutoGen ``Memory`` (``[autogen]``).
- `memtrace.integrations.llamaindex` — a memory block of LlamaIndex's ``Memory`` (``[llamaindex]``).

Pages with runnable examples: docs/integrations/. Retrieval goes through `_recall.search_fields`, the one place that
chooses how Memtrace matches a query.

Integrations talk to Memtrace only over HTTP through `memtrace.client`; importing this package imports no framework.
"""

__all__: list[str] = []  # each integration is a subpackage with its own __all__
