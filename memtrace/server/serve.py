"""`memtrace serve`: run the app under Granian (ASGI, uvloop) with N worker processes.

Settings are resolved once here (file < env < flags) and handed to every worker as JSON, so all workers
run with exactly the same configuration. Connection limits and timeouts come from `[server]`; other Granian
options from `granian_config.py` (built-in defaults, then the applicable granian.toml).
"""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from memtrace import logs, metrics
from memtrace.app import SETTINGS_ENV
from memtrace.config import ConfigError, ServerSettings, Settings
from memtrace.crypto import DecryptionError, MasterKeyError
from memtrace.metadata.db import SchemaError
from memtrace.runtime import binding_loader
from memtrace.server.dbcheck import DamagedDatabase, check_journal, check_metadata
from memtrace.server.granian_config import granian_options
from memtrace.stores import BackendError, open_journal_store, open_metadata_store

# File descriptors each worker keeps for itself (SQLite, Arc pools, logs) beyond client connections.
FD_RESERVE = 256


async def preflight(settings: Settings) -> None:
    """Check, create or upgrade the databases once before workers fork; fail now on damage or a bad master key."""
    if not settings.metadata.shared:
        check_metadata(settings.metadata_path)
        check_journal(settings.journal_path)
    Path(settings.storage.data_dir).mkdir(parents=True, exist_ok=True)
    metadata = await open_metadata_store(settings)
    try:
        await binding_loader(metadata)()
    finally:
        await metadata.close()
    journal = await open_journal_store(settings)
    await journal.close()


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (workers inherit it); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_options(server: ServerSettings, fd_limit: int) -> dict[str, Any]:
    """Granian's connection limits and timeouts from `[server]`: idle or stalled clients cannot starve it."""
    from granian.http import HTTP1Settings

    per_worker = min(server.backpressure, max(fd_limit - FD_RESERVE, 64))
    if per_worker < server.backpressure:
        print(f"memtrace: server.backpressure {server.backpressure} lowered to {per_worker} to fit the open-file "
              f"limit ({fd_limit}); raise `ulimit -n` to allow more connections", file=sys.stderr)
    return {
        # HTTP/1.1 only: in "auto" mode Granian waits for the first bytes to pick a protocol before the header
        # timeout starts, so connections that never send anything would be kept forever.
        "http": "1",
        "backpressure": per_worker,
        "backlog": server.backlog,
        "http1_settings": HTTP1Settings(
            header_read_timeout=max(1, int(server.header_read_timeout_s * 1000)),
            keep_alive=server.keep_alive,
        ),
    }


def serve(settings: Settings, granian_toml: Path | None = None, config_file: Path | None = None,
          announce: Callable[[], None] | None = None) -> int:
    """Run until stopped; `config_file` is the memtrace.toml the settings came from (its granian.toml applies)."""
    from granian import Granian
    from granian.constants import Interfaces

    try:
        extra = granian_options(settings, granian_toml, config_file)
        asyncio.run(preflight(settings))
    except (MasterKeyError, DecryptionError, ConfigError, DamagedDatabase, SchemaError, BackendError) as exc:
        print(f"memtrace: {exc}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError) as exc:
        print(f"memtrace: cannot open {settings.metadata_path} / {settings.journal_path}: {exc}", file=sys.stderr)
        return 1
    if announce is not None:
        announce()  # after the checks, so a refused start stays one line
    os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
    metrics.prepare_dir(Path(settings.storage.data_dir))
    server = settings.server
    options: dict[str, Any] = {"loop": "uvloop", "log_level": server.log_level,
                               "log_dictconfig": logs.dictconfig(server.log_format, server.log_level), **extra}
    Granian(
        "memtrace.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=server.host,
        port=server.port,
        workers=server.workers,
        **connection_options(server, raise_fd_limit()),
        **options,
    ).serve()
    return 0
