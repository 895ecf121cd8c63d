"""``python -m memtrace.mcp``: run the Memtrace MCP server.

Configuration comes from the environment because that is what MCP hosts (Claude Desktop, IDEs) let users set:
MEMTRACE_URL (default http://localhost:9100) and MEMTRACE_API_KEY (required).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from memtrace.client import DEFAULT_URL, AsyncMemtraceClient


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memtrace-mcp", description="Memtrace memory tools for MCP clients.")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                        help="stdio (default) for a host that spawns this process; http for Streamable HTTP")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP listen port (default 8765)")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    return parser


async def _serve(args: argparse.Namespace, url: str, api_key: str) -> None:
    # One client for the whole process: Streamable HTTP runs one MCP session per connection, and they all
    # share its connection pool.
    from memtrace.mcp.server import build_server  # deferred: the MCP SDK takes a while to import

    async with AsyncMemtraceClient(url, api_key) as client:
        server = build_server(client)
        if args.transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=args.host, port=args.port, streamable_http_path=args.path)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    api_key = os.environ.get("MEMTRACE_API_KEY", "").strip()
    if not api_key:
        print("memtrace-mcp: MEMTRACE_API_KEY is not set; export an API key (mtk_...) for your Memtrace org.",
              file=sys.stderr)
        sys.exit(1)
    url = os.environ.get("MEMTRACE_URL", "").strip() or DEFAULT_URL
    import anyio

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve, args, url, api_key)


if __name__ == "__main__":
    main()
