"""Which Granian options `memtrace serve` runs with, wherever it is started from.

Options come from one `granian.toml` (`[granian]` table, keyword arguments of `granian.Granian`): the one given
with `--granian-config`, else the one next to the memtrace.toml that was loaded, else none; they are laid over
built-in defaults that keep a production server up (a worker that dies is respawned; a worker that does not
stop on SIGTERM is killed after a grace period). Connection limits and timeouts come from `[server]` instead.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from memtrace.config import ConfigError, Settings

FILE_NAME = "granian.toml"
# Options `memtrace serve` sets itself from memtrace settings; granian.toml may not override them.
MANAGED = frozenset({"target", "address", "port", "workers", "interface", "factory", "backpressure", "backlog",
                     "http", "http1_settings"})


def defaults(settings: Settings) -> dict[str, Any]:
    return {
        "respawn_failed_workers": True,  # a crashed worker comes back; the leaseholder delivers its journal rows
        # SIGTERM gives each worker shutdown_deadline_s to flush; past this it is killed (rows stay journaled).
        "workers_kill_timeout": max(30, int(settings.arc.shutdown_deadline_s) + 10),
        "log_access": False,
    }


def find_granian_toml(explicit: Path | None, config_file: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"granian config not found: {explicit}")
        return explicit
    if config_file is not None:
        beside = config_file.expanduser().parent / FILE_NAME
        if beside.is_file():
            return beside
    return None


def read_granian_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("granian", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [granian] must be a table")
    clash = MANAGED & table.keys()
    if clash:
        raise ConfigError(f"{path}: {', '.join(sorted(clash))} come from memtrace settings ([server]), "
                          "not granian.toml")
    return dict(table)


def granian_options(settings: Settings, explicit: Path | None, config_file: Path | None) -> dict[str, Any]:
    """Built-in defaults, overridden by the granian.toml that applies (if any)."""
    path = find_granian_toml(explicit, config_file)
    return {**defaults(settings), **(read_granian_toml(path) if path else {})}
