"""One log format for every line a Memtrace host prints: Memtrace's, Granian's and arclite's.

`server.log_format = "text" | "json"`. JSON is one object per line with `time`, `level`, `logger`, `message`,
`pid` (the worker process) and any structured fields of the record (the access line's `request_id`, `method`,
`route`, `status`, `duration_ms`, `org_id`, `key_id`). The same `dictconfig()` is handed to Granian
(`log_dictconfig`, applied in its main process and in every worker) and applied by arclite, so no line escapes
the format.

Secrets: no code logs a key, but as a last guard every handler redacts anything shaped like a Memtrace key,
an `Authorization` credential, or the master key before it is written.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FIELDS_ATTR = "fields"
# Set by the HTTP middleware for the duration of a request; every line logged meanwhile carries it.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("memtrace_request_id", default=None)

_KEY_RE = re.compile(r"mtk_[A-Za-z0-9_-]{8,}")
_CREDENTIAL_RE = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+")
_HASH_RE = re.compile(r"\$argon2[a-z]*\$[^\s\"',;]+")


class Redact(logging.Filter):
    """Replaces key-shaped text, credentials and the master key in the final message (defence in depth)."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        master = os.environ.get("MEMTRACE_MASTER_KEY", "")
        self._master = master if len(master) >= 8 else ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, self._master)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def scrub(text: str, master: str = "") -> str:
    if master and master in text:
        text = text.replace(master, "***")
    if "mtk_" in text:
        text = _KEY_RE.sub("mtk_***", text)
    if "$argon2" in text:
        text = _HASH_RE.sub("***", text)
    return _CREDENTIAL_RE.sub(lambda found: f"{found.group(1)} ***", text)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS_ATTR, None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; structured fields of the record become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name.removeprefix("_"),  # Granian's Rust side logs as `_granian`
            "message": record.getMessage(),
            "pid": record.process,  # which worker process wrote it
        }
        rid = request_id.get()
        if rid is not None:
            out["request_id"] = rid
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def dictconfig(log_format: str, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for this format and level, complete enough to replace Granian's own."""
    formatter = "memtrace.logs.JsonFormatter" if log_format == "json" else "memtrace.logs.TextFormatter"
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "memtrace",
               "filters": ["redact"]}
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "memtrace.logs.Redact"}},
        "formatters": {"memtrace": {"()": formatter}},
        "handlers": {"memtrace": handler},
        "root": {"handlers": ["memtrace"], "level": upper},
        "loggers": {
            "_granian": {"handlers": ["memtrace"], "level": upper, "propagate": False},
            "granian.access": {"handlers": ["memtrace"], "level": upper, "propagate": False},
            # BlackSheep logs every handled 4xx at INFO; our access line already says it.
            "blacksheep.server": {"level": "WARNING"},
        },
    }


def configure(log_format: str, level: str) -> None:
    logging.config.dictConfig(dictconfig(log_format, level))


def fields(**values: Any) -> dict[str, Any]:
    """`log.info(msg, extra=fields(...))`: structured values for the JSON line (or key=value in text)."""
    return {FIELDS_ATTR: values}


class Throttle:
    """Rate-limits a repeating warning: the first of a key is logged, repeats within `interval_s` are only
    counted, and the next one after the interval says how many were folded into it."""

    MAX_KEYS = 10_000

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._seen: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._interval:
            self._seen[key] = (last[0], last[1] + 1)
            return
        if len(self._seen) >= self.MAX_KEYS:
            self._seen.clear()
        suppressed = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        if suppressed:
            msg += f" ({suppressed} similar in the last {self._interval:g}s)"
        self._logger.warning(msg, *args, extra=fields(repeats=suppressed) if suppressed else None)

