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

from memtrace.client import DEFAULT_URL, AsyncMemtraceClient, AuthenticationError, MemtraceError, ServerUnreachable

ENVIRONMENT = f"""\
environment:
  MEMTRACE_URL      the Memtrace server (default {DEFAULT_URL})
  MEMTRACE_API_KEY  an API key of your org (mtk_...), from `memtrace admin key create --org ORG --name NAME`;
                    required, and checked against the server at start
"""


class InvalidKey(Exception):
    """The server answered 401 to the configured key."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memtrace-mcp", description="Memtrace memory tools for MCP clients.",
                                     epilog=ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        await _check_key(client, url)
        server = build_server(client)
        if args.transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=args.host, port=args.port, streamable_http_path=args.path)


async def _check_key(client: AsyncMemtraceClient, url: str) -> None:
    """Fail now on a key the server refuses; an unreachable server is only a warning (tools report it later)."""
    try:
        await client.list_agents()
    except AuthenticationError:
        raise InvalidKey from None
    except ServerUnreachable:
        print(f"memtrace-mcp: warning: cannot reach Memtrace at {url} yet; tools will report it", file=sys.stderr)
    except MemtraceError:
        pass  # the key authenticated (e.g. 403: it lacks `read`); the tools say what each call needs


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    api_key = os.environ.get("MEMTRACE_API_KEY", "").strip()
    if not api_key:
        print("memtrace-mcp: MEMTRACE_API_KEY is not set; export an API key (mtk_...) for your Memtrace org.",
              file=sys.stderr)
        sys.exit(1)
    url = os.environ.get("MEMTRACE_URL", "").strip() or DEFAULT_URL
    import anyio

    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve, args, url, api_key)
    except InvalidKey:
        print(f"memtrace-mcp: {url} refused MEMTRACE_API_KEY (401 invalid API key); check the key and MEMTRACE_URL.",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
