"""Settings: `memtrace.toml` < `MEMTRACE_<SECTION>_<KEY>` env vars < CLI flags, one msgspec Struct.

Unknown keys and bad values stop start-up with a one-line message naming the key, so a typo in a
deployment never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta, Struct

KIB = 1024
MIB = 1024 * KIB

Positive = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]

# Env vars with the MEMTRACE_ prefix that are not settings overrides.
RESERVED_ENV = frozenset({
    "MEMTRACE_MASTER_KEY", "MEMTRACE_CONFIG", "MEMTRACE_URL", "MEMTRACE_API_KEY", "MEMTRACE_HOME",
})
# Relative storage paths resolve against $MEMTRACE_HOME, else the loaded config file's directory, else the cwd.
HOME_ENV = "MEMTRACE_HOME"
SEARCH_PATHS = (Path("memtrace.toml"), Path("/etc/memtrace/memtrace.toml"), Path("~/.memtrace/memtrace.toml"))


class ConfigError(Exception):
    """A settings source is unreadable or holds an unknown key or a bad value."""


class _Section(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ServerSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by default
    port: Annotated[int, Meta(ge=1, le=65535)] = 9100
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    # Connections per worker that Granian serves at once, idle ones included (Granian's `backpressure`); more
    # wait in the listen backlog. Idle connections cost little, so this is far above what real clients hold;
    # capped by the open-file limit. The timeouts below are what get rid of idle and stalled connections.
    backpressure: Positive = 8192
    backlog: Annotated[int, Meta(ge=128)] = 2048
    # A connection must deliver a complete request head within this long, or it is closed; this also bounds
    # how long an idle keep-alive connection is kept (Granian's http1 header_read_timeout).
    header_read_timeout_s: PositiveFloat = 10.0
    # A request body must arrive in full within this long after the handler starts reading it, else 408.
    body_read_timeout_s: PositiveFloat = 30.0
    keep_alive: bool = True
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # "text" for people, "json" (one object per line) for log pipelines; Granian's and arclite's lines too.
    log_format: Literal["text", "json"] = "text"


class StorageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./data"
    # Empty means "<data_dir>/memtrace.db" and "<data_dir>/journal.db".
    metadata_db: str = ""
    journal_db: str = ""


class LimitsSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_body_bytes: Positive = 8 * MIB
    max_content_bytes: Positive = 64 * KIB
    max_metadata_bytes: Positive = 64 * KIB
    max_batch_items: Annotated[int, Meta(ge=1, le=10_000)] = 1000


class ArcSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # A flush sends one columnar request per org when this many rows wait, or when the interval elapses.
    batch_size: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    # ...and at most this many encoded bytes per request (Arc refuses bodies over 100 MiB with 413). A single
    # memory larger than this still goes alone.
    max_batch_bytes: Annotated[int, Meta(ge=64 * KIB, le=1024 * MIB)] = 8 * MIB
    flush_interval_ms: Positive = 500
    # Write requests in flight at once per Arc target: the next batch is read and encoded, and sent, while
    # earlier ones wait for Arc's answer (1: strictly one after another).
    max_in_flight: Annotated[int, Meta(ge=1, le=16)] = 4
    # Undelivered memories an org may hold locally before new writes get 429 with Retry-After.
    max_pending_per_org: Positive = 200_000
    connect_timeout_s: PositiveFloat = 2.0
    request_timeout_s: PositiveFloat = 15.0
    max_connections_per_host: Positive = 16
    retry_base_ms: Positive = 200
    retry_max_ms: Positive = 10_000
    # Consecutive failures that open an org's circuit; while open, only one probe per interval goes out.
    breaker_failures: Positive = 3
    breaker_probe_interval_s: PositiveFloat = 2.0
    shutdown_deadline_s: PositiveFloat = 5.0


class MetadataSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Empty: SQLite files under data_dir (one host). "postgresql://user@host/db": metadata, journal, dedup ledger
    # and delivery leases live in one shared PostgreSQL, so several hosts serve any request (docs/design.md).
    url: str = ""
    # With PostgreSQL: LISTEN for changes (revocations reach every host at once); the 1 s poll stays as fallback.
    listen: bool = True

    @property
    def shared(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))


class DeliverySettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # With a shared PostgreSQL: Arc targets hash into this many lease rows, spread over the live hosts.
    buckets: Annotated[int, Meta(ge=1, le=1024)] = 16


class DedupSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    window_s: Positive = 24 * 3600


class JournalSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Delivered rows stay readable locally this long, covering Arc's max_buffer_age_ms (5 s by default).
    retention_s: PositiveFloat = 10.0
    # Concurrent accepts are committed together: one fsync per group, at most this many rows per group.
    max_group_rows: Positive = 5000
    # Bound on the journal file (0: only the disk bounds it). When full, writes get 503 + Retry-After and
    # /ready says not ready until delivery and pruning free room (no restart needed).
    max_size_mb: Annotated[int, Meta(ge=0)] = 0


class RetentionSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # How often the delivery lease holder applies the orgs' retention policies (memtrace admin org retention).
    interval_s: PositiveFloat = 3600.0


class AuthSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    cache_size: Positive = 10_000
    cache_ttl_s: PositiveFloat = 300.0
    # How often each worker checks the metadata change counter (revocations, bindings, new orgs).
    refresh_interval_s: PositiveFloat = 1.0
    # Keys that just failed (by SHA-256), answered 401 without a DB read or an argon2 verify.
    negative_cache_size: Positive = 10_000
    negative_cache_ttl_s: PositiveFloat = 5.0
    # Failure budgets (token buckets, per worker): wrong secrets per lookup id, and failed keys per client
    # address. Over budget, new keys get 429 with Retry-After; keys already verified are never refused.
    key_failure_burst: Positive = 10
    key_failures_per_s: PositiveFloat = 1.0
    client_failure_burst: Positive = 30
    client_failures_per_s: PositiveFloat = 3.0
    failure_tracking_size: Positive = 100_000


class Settings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    arc: ArcSettings = msgspec.field(default_factory=ArcSettings)
    dedup: DedupSettings = msgspec.field(default_factory=DedupSettings)
    journal: JournalSettings = msgspec.field(default_factory=JournalSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    metadata: MetadataSettings = msgspec.field(default_factory=MetadataSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)

    @property
    def metadata_path(self) -> Path:
        return Path(self.storage.metadata_db or Path(self.storage.data_dir) / "memtrace.db")

    @property
    def journal_path(self) -> Path:
        return Path(self.storage.journal_db or Path(self.storage.data_dir) / "journal.db")


SECTIONS: dict[str, type[_Section]] = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "limits": LimitsSettings,
    "arc": ArcSettings,
    "dedup": DedupSettings,
    "journal": JournalSettings,
    "auth": AuthSettings,
    "retention": RetentionSettings,
    "metadata": MetadataSettings,
    "delivery": DeliverySettings,
}


def find_config_file(explicit: str | None) -> Path | None:
    """The file given with --config (must exist), else the first of the standard locations."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return path
    env_path = os.environ.get("MEMTRACE_CONFIG")
    if env_path:
        return find_config_file(env_path)
    for candidate in SEARCH_PATHS:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("MEMTRACE_") or name in RESERVED_ENV:
            continue
        rest = name[len("MEMTRACE_") :].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS:
            continue  # other tools' variables that happen to share the prefix
        if key not in SECTIONS[section].__struct_fields__:
            raise ConfigError(f"unknown setting in environment: {name} (no key '{key}' in [{section}])")
        out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], override: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in override.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"setting '{section}' must be a table")
        target.update(values)
    return merged


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec says `... - at `$.server.port``; turn that into the dotted key name first."""
    text = str(exc)
    if " - at `$." in text:
        message, _, where = text.rpartition(" - at `$.")
        key = where.rstrip("`")
        return f"bad setting {key}: {message}{_choices(key)}"
    if "Object contains unknown field" in text:
        return f"unknown setting: {text}"
    return f"bad settings: {text}"


def _choices(key: str) -> str:
    """`; expected one of: a, b` when the key only takes a fixed set of values."""
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    if cls is None:
        return ""
    hint = get_type_hints(cls).get(name)
    if get_origin(hint) is not Literal:
        return ""
    return "; expected one of: " + ", ".join(str(v) for v in get_args(hint))


def load_settings(
    config_file: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from file, then env, then `overrides` (CLI flags), validating everything once."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    path = find_config_file(config_file)
    if path is not None:
        data = _read_toml(path)
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, {s: {k: v for k, v in kv.items() if v is not None} for s, kv in overrides.items()})
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = f" (from {path})" if path else ""
        raise ConfigError(_explain(exc) + where) from exc
    return _resolve_storage(settings, storage_base(path, environ))


def storage_base(config_path: Path | None, environ: Mapping[str, str]) -> Path:
    """Where relative storage paths start, so `serve` and `admin` run from any directory agree on the DBs."""
    home = environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser().resolve()
    if config_path is not None:
        return config_path.expanduser().resolve().parent
    return Path.cwd()


def _resolve_storage(settings: Settings, base: Path) -> Settings:
    def absolute(raw: str) -> str:
        return str(base / Path(raw).expanduser()) if raw else raw

    storage = settings.storage
    resolved = msgspec.structs.replace(storage, data_dir=absolute(storage.data_dir),
                                       metadata_db=absolute(storage.metadata_db),
                                       journal_db=absolute(storage.journal_db))
    return msgspec.structs.replace(settings, storage=resolved)
