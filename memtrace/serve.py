"""`memtrace serve`: run the app under Granian (ASGI, uvloop) with N worker processes.

Settings are resolved once here (file < env < flags) and handed to every worker as JSON, so all workers
run with exactly the same configuration. Extra Granian options (timeouts, respawn, HTTP tuning) come from
the `[granian]` table of `granian.toml` when present.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from memtrace import logs, metrics
from memtrace.app import SETTINGS_ENV, binding_loader
from memtrace.config import Settings
from memtrace.crypto import DecryptionError, MasterKeyError
from memtrace.journal import Journal, JournalConfig
from memtrace.metadata.db import open_metadata

# Options `memtrace serve` sets itself; granian.toml may not override them.
MANAGED = frozenset({"target", "address", "port", "workers", "interface", "factory", "backpressure"})


def granian_options(path: Path | None) -> dict[str, Any]:
    candidate = path or Path("granian.toml")
    if not candidate.is_file():
        return {}
    with candidate.open("rb") as f:
        options = dict(tomllib.load(f).get("granian", {}))
    clash = MANAGED & options.keys()
    if clash:
        raise SystemExit(f"granian.toml: {', '.join(sorted(clash))} come from memtrace settings, not granian.toml")
    return options


async def preflight(settings: Settings) -> None:
    """Create/upgrade the databases once before workers fork, and fail now on a bad master key."""
    Path(settings.storage.data_dir).mkdir(parents=True, exist_ok=True)
    metadata = await open_metadata(settings.metadata_path)
    try:
        await binding_loader(metadata)()
    finally:
        await metadata.close()
    journal = await Journal.open(JournalConfig(settings.journal_path, settings.dedup.window_s,
                                               settings.journal.retention_s, settings.arc.max_pending_per_org))
    await journal.close()


def serve(settings: Settings, granian_toml: Path | None = None, announce: Callable[[], None] | None = None) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    try:
        asyncio.run(preflight(settings))
    except (MasterKeyError, DecryptionError) as exc:
        print(f"memtrace: {exc}", file=sys.stderr)
        return 1
    if announce is not None:
        announce()  # after the checks, so a refused start stays one line
    os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
    metrics.prepare_dir(Path(settings.storage.data_dir))
    server = settings.server
    options: dict[str, Any] = {"loop": "uvloop", "log_level": server.log_level,
                               "log_dictconfig": logs.dictconfig(server.log_format, server.log_level),
                               **granian_options(granian_toml)}
    Granian(
        "memtrace.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=server.host,
        port=server.port,
        workers=server.workers,
        backpressure=server.backpressure,
        **options,
    ).serve()
    return 0
