"""`memtrace` / `python -m memtrace`: `serve`, `dev` (embedded stack for a laptop) and `admin ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from memtrace import __version__
from memtrace.config import HOME_ENV, ConfigError, Settings, find_config_file, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        {"server": {"host": args.host, "port": args.port, "workers": args.workers}},
    )


def _add_server_flags(parser: argparse.ArgumentParser, default_host: str | None = None) -> None:
    parser.add_argument("--config", help="memtrace.toml to use (default: ./, /etc/memtrace/, ~/.memtrace/)")
    parser.add_argument("--host", default=default_host, help="listen address (default from settings: 0.0.0.0)")
    parser.add_argument("--port", type=int, help="listen port (default from settings: 9100)")
    parser.add_argument("--workers", type=int, help="worker processes (default from settings: 1)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["admin"]:
        from memtrace.admin import main as admin_main

        return admin_main(argv[1:])
    parser = argparse.ArgumentParser(prog="memtrace", description="Memtrace: memory for AI agents")
    parser.add_argument("--version", action="version", version=f"memtrace {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the API server under Granian")
    _add_server_flags(serve_cmd)
    serve_cmd.add_argument("--granian-config", type=Path,
                           help="granian.toml with extra Granian options (default: the one beside memtrace.toml)")
    dev_cmd = commands.add_parser("dev", help="run the embedded Arc store + Memtrace with a demo org and key")
    _add_server_flags(dev_cmd, default_host="127.0.0.1")
    dev_cmd.add_argument("--arc-port", type=int, default=8000, help="port of the embedded Arc store")
    commands.add_parser("admin", help="manage orgs, Arc bindings and keys (see: memtrace admin --help)")
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        config_file = find_config_file(args.config)
    except ConfigError as exc:
        print(f"memtrace: {exc}", file=sys.stderr)
        return 1
    from memtrace import logs

    logs.configure(settings.server.log_format, settings.server.log_level)
    if args.command == "serve":
        from memtrace.server.serve import serve

        return serve(settings, args.granian_config, config_file,
                     announce=lambda: log_sources(settings, args.config))
    from memtrace.dev import run_dev

    return run_dev(settings, args.arc_port)


def log_sources(settings: Settings, config_arg: str | None) -> None:
    """Say where settings and data come from, so two processes can be checked to share the same DBs."""
    log = logging.getLogger("memtrace")
    config = find_config_file(config_arg)
    home = os.environ.get(HOME_ENV)
    log.info("config file: %s", config or "(none: defaults and environment)")
    log.info("data dir: %s%s", settings.storage.data_dir, f" (relative paths from {HOME_ENV}={home})" if home else "")
    log.info("metadata db: %s; journal: %s", settings.metadata_path, settings.journal_path)


if __name__ == "__main__":
    raise SystemExit(main())
