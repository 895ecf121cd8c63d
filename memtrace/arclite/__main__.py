"""`python -m memtrace.arclite`: run the embedded Arc-compatible store."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from memtrace import logs
from memtrace.arclite.delete import DeleteConfig
from memtrace.arclite.ingest import MAX_BODY
from memtrace.arclite.server import Settings, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m memtrace.arclite",
                                description="Arc-compatible store on DuckDB")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", type=Path, default=Path("./data/arc"))
    p.add_argument("--token", default=os.environ.get("ARCLITE_TOKEN") or None,
                   help="require this token (Bearer/Token/raw Authorization or x-api-key); default: no auth")
    p.add_argument("--buffer-age-ms", type=int, default=5000,
                   help="rows become queryable this long after their write is acknowledged (Arc's buffer, "
                        "max_buffer_age_ms; default 5000 as in Arc; 0: at once)")
    p.add_argument("--keep-order", action="store_true",
                   help="lenient: return rows of a query without ORDER BY in storage order (Arc promises no "
                        "order; by default they are shuffled)")
    p.add_argument("--query-timeout-s", type=float, default=30.0, help="queries running longer get 504")
    p.add_argument("--delete-enabled", action="store_true",
                   default=os.environ.get("ARCLITE_DELETE_ENABLED", "").lower() in ("1", "true", "yes"),
                   help="serve POST /api/v1/delete (Arc's [delete] enabled; default off, like Arc)")
    p.add_argument("--delete-confirmation-threshold", type=int, default=10_000,
                   help="deletes matching more rows than this need confirm=true (Arc's default)")
    p.add_argument("--delete-max-rows-per-delete", type=int, default=1_000_000,
                   help="deletes matching more rows than this are refused (Arc's default)")
    p.add_argument("--delete-buffered", action="store_true",
                   help="lenient: deletes also match rows still in the ingest buffer (Arc's do not: they "
                        "appear at the flush)")
    p.add_argument("--max-body-mb", type=float, default=MAX_BODY / (1024 * 1024),
                   help="refuse write bodies larger than this with 413, as Arc does (default: 100)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", choices=("text", "json"),
                   default=os.environ.get("MEMTRACE_SERVER_LOG_FORMAT", "text"),
                   help="text, or json: one object per line, as Memtrace writes (default: $MEMTRACE_SERVER_LOG_FORMAT)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    if args.buffer_age_ms < 0:
        raise SystemExit("--buffer-age-ms must be >= 0")
    if not 0 < args.max_body_mb <= 4096:
        raise SystemExit("--max-body-mb must be in (0, 4096]")
    if args.delete_confirmation_threshold < 0 or args.delete_max_rows_per_delete < 0:
        raise SystemExit("--delete-confirmation-threshold and --delete-max-rows-per-delete must be >= 0")
    delete = DeleteConfig(enabled=args.delete_enabled, confirmation_threshold=args.delete_confirmation_threshold,
                          max_rows_per_delete=args.delete_max_rows_per_delete, buffered=args.delete_buffered)
    settings = Settings(data_dir=args.data_dir.resolve(), token=args.token, buffer_age_ms=args.buffer_age_ms,
                        shuffle=not args.keep_order, query_timeout_s=args.query_timeout_s, delete=delete,
                        max_body=int(args.max_body_mb * 1024 * 1024))
    coro = serve(settings, args.host, args.port)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
