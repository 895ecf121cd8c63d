"""OpenAI Agents SDK integration: Memtrace memory tools and a Memtrace-backed `Session`.

Install with ``pip install 'memtrace-server[openai-agents]'``. Everything here talks to a running Memtrace over HTTP
with an ``mtk_`` key through `memtrace.client.AsyncMemtraceClient`; nothing runs in-process with the server.

- `memtrace_tools(client, agent_id, ...)` returns function tools ``remember``, ``recall``, ``search`` and ``decide``
  bound to one client and agent id, to put in ``Agent(tools=...)``.
- `MemtraceSession` implements the SDK's session protocol (``get_items`` / ``add_items`` / ``pop_item`` /
  ``clear_session``) over session memories, and `MemtraceSession.instructions(...)` builds dynamic instructions that
  append the session's context markdown (``POST /api/v1/sessions/{id}/context``) to a base prompt.

How the session protocol maps onto memories:

- ``add_items`` stores each item as a ``session`` memory with event_type ``conversation_item``. ``metadata`` holds the
  item's exact JSON (``item``), a per-session sequence number (``seq``) that orders items, and a marker
  (``memtrace_session: 1``); ``content`` is a short readable rendering (``user: ...``, ``function_call recall(...)``),
  which is what the session-context markdown shows. Items whose JSON exceeds 8000 characters are split across
  several memories (``part`` / ``parts``) so every memory stays under the 64 KiB metadata limit; all parts of one
  item go in the same batch request.
- Every memory gets an explicit ``dedup_key`` ``oas.<session hash>.<seq>.<part>``, so identical content (the same
  user message twice) is never a 409 duplicate, and two writers racing for the same sequence number collide on the
  key instead of both succeeding: the loser re-reads the session and stores its items under fresh numbers.
- ``pop_item`` deletes the newest live item's memories (``DELETE /api/v1/memories/{id}``; a 404 means another
  writer popped it first, so the next one is popped); ``clear_session`` forgets the session's conversation items
  (``POST /api/v1/forget`` with the session id, type ``session`` and the integration's event types). Both are real
  deletions: the content leaves Memtrace and Arc, and its dedup keys are released, so sequence numbers may be
  reused. Sessions written by older versions may hold tombstones (``item_popped`` with ``metadata.seq``,
  ``session_cleared`` with ``metadata.through_seq``); ``get_items`` still honours them.
"""

from __future__ import annotations

try:
    import agents as _agents  # noqa: F401 - only checks that the optional dependency is installed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "memtrace.integrations.openai_agents needs the OpenAI Agents SDK: pip install 'memtrace-server[openai-agents]'"
    ) from exc

from memtrace.integrations.openai_agents._session import (
    CLEAR_EVENT,
    ITEM_EVENT,
    POP_EVENT,
    MemtraceSession,
)
from memtrace.integrations.openai_agents._tools import memtrace_tools

__all__ = ["CLEAR_EVENT", "ITEM_EVENT", "POP_EVENT", "MemtraceSession", "memtrace_tools"]
