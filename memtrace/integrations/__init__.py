"""Integrations of Memtrace with agent frameworks, each an optional extra.

- `memtrace.integrations.openai_agents` — OpenAI Agents SDK tools and session
  (``pip install 'memtrace-server[openai-agents]'``).

Integrations talk to Memtrace only over HTTP through `memtrace.client`; importing this package imports no framework.
"""

__all__: list[str] = []  # each integration is a subpackage with its own __all__
