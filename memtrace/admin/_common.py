"""What every admin command shares: errors, the parser class, output, org lookup, file paths."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from memtrace.config import Settings, load_settings
from memtrace.errors import NotFound
from memtrace.metadata.db import MetadataDB
from memtrace.metadata.models import Org
from memtrace.timeutil import US_PER_SECOND, parse_duration_us

PROG = "memtrace admin"

# (human text, JSON-able value)
Output = tuple[str, Any]
Handler = Callable[[argparse.Namespace, MetadataDB], Awaitable[Output]]


class AdminError(Exception):
    """A one-line, user-facing failure of the CLI itself (bad flag value, missing DB file)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parse_duration_s(text: str) -> int:
    """`30m`, `12h`, `30d`, `4w` → seconds."""
    span = parse_duration_us(text)
    if span is None:
        raise AdminError(f"--expires-in must look like 30m, 12h, 30d or 4w, got {text!r}")
    return span // US_PER_SECOND


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def mask_secret(secret: str) -> str:
    """Enough to tell keys apart, never enough to use one."""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


async def find_org(db: MetadataDB, ref: str) -> Org:
    """An org by id, else by name (names are unique)."""
    org = await db.orgs.find(ref) or await db.orgs.find_by_name(ref)
    if org is None:
        raise NotFound(f"unknown org {ref!r} (give its id or name; see: {PROG} org list)")
    return org


def confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise AdminError("refusing to delete without confirmation: stdin is not a terminal; pass --yes")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise AdminError("not deleted")


def settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def db_path(args: argparse.Namespace) -> Path:
    """`--db`, else the configured metadata DB."""
    db = getattr(args, "db", None)
    if db:
        return Path(db).expanduser()
    return settings(args).metadata_path


def journal_path(args: argparse.Namespace, metadata: Path | None = None) -> Path:
    """`--journal`, else the configured journal file, else `journal.db` next to the metadata DB `metadata`
    (commands that open one), else the journal under the configured data directory."""
    explicit = getattr(args, "journal", None)
    if explicit:
        return Path(explicit).expanduser()
    configured = settings(args)
    if configured.storage.journal_db or metadata is None:
        return configured.journal_path
    return metadata.parent / "journal.db"
