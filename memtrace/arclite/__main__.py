"""`python -m memtrace.arclite`: run the embedded Arc-compatible store."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from memtrace.arclite.delete import DeleteConfig
from memtrace.arclite.server import Settings, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m memtrace.arclite",
                                description="Arc-compatible store on DuckDB")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", type=Path, default=Path("./data/arc"))
    p.add_argument("--token", default=os.environ.get("ARCLITE_TOKEN") or None,
                   help="require this token (Bearer/Token/raw Authorization or x-api-key); default: no auth")
    p.add_argument("--buffer-age-ms", type=int, default=0,
                   help="rows become queryable this long after their write is acknowledged (Arc's buffer)")
    p.add_argument("--query-timeout-s", type=float, default=30.0, help="queries running longer get 504")
    p.add_argument("--delete-enabled", action="store_true",
                   default=os.environ.get("ARCLITE_DELETE_ENABLED", "").lower() in ("1", "true", "yes"),
                   help="serve POST /api/v1/delete (Arc's [delete] enabled; default off, like Arc)")
    p.add_argument("--delete-confirmation-threshold", type=int, default=10_000,
                   help="deletes matching more rows than this need confirm=true (Arc's default)")
    p.add_argument("--delete-max-rows-per-delete", type=int, default=1_000_000,
                   help="deletes matching more rows than this are refused (Arc's default)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.buffer_age_ms < 0:
        raise SystemExit("--buffer-age-ms must be >= 0")
    if args.delete_confirmation_threshold < 0 or args.delete_max_rows_per_delete < 0:
        raise SystemExit("--delete-confirmation-threshold and --delete-max-rows-per-delete must be >= 0")
    delete = DeleteConfig(enabled=args.delete_enabled, confirmation_threshold=args.delete_confirmation_threshold,
                          max_rows_per_delete=args.delete_max_rows_per_delete)
    settings = Settings(data_dir=args.data_dir.resolve(), token=args.token, buffer_age_ms=args.buffer_age_ms,
                        query_timeout_s=args.query_timeout_s, delete=delete)
    coro = serve(settings, args.host, args.port)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
