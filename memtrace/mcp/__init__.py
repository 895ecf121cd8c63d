"""Memtrace as an MCP server (``python -m memtrace.mcp`` / ``memtrace-mcp``), over stdio or Streamable HTTP.

The server module (and with it the MCP SDK, slow to import) loads on first attribute access, so the CLI can
reject a missing API key instantly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memtrace.mcp.server import INSTRUCTIONS, TOOL_NAMES, build_server

__all__ = ["INSTRUCTIONS", "TOOL_NAMES", "build_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from memtrace.mcp import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
