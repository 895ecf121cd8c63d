"""HTTP to Arc: a pooled aiohttp session per Arc base URL, and the one place transport errors are translated.

Why one session per URL rather than one per org or one global: orgs that share an Arc share its
keep-alive connections (no per-org socket churn), while a slow or dead Arc can only exhaust the
connection limit of its own session — the other Arcs' sessions are untouched (design property 5).

Everything that can go wrong below this module leaves it as a domain error:

    connection refused/reset, DNS, timeouts, 429, 5xx  ->  ArcUnavailable  (transient; the breaker counts it)
    other 4xx (bad token, bad SQL, bad payload)          ->  ArcRejected    (Arc's own `error` text + status)
    a query answered 500 with Arc's JSON error body      ->  ArcRejected    (Arc is up; our SQL failed to run)

A refused *write* is one of two kinds (`write_refusal`), which delivery treats very differently:

    "payload"  413, or a 400/422 whose text blames the payload  -> split the request; a single row so refused
                                                                  can never be taken (dead letter)
    "binding"  401/403/404, bad database or measurement name,   -> the org's binding is wrong: every row would
               and any 4xx we cannot attribute to the payload      fail alike, so wait (long backoff) and keep all

Messages name the org and Arc's host:port, never the token; as a last guard any text that goes
into an exception or a log record is scrubbed of the binding's key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal, NoReturn, TypeVar

import aiohttp
import msgspec

from memtrace.arc.binding import ArcBinding
from memtrace.config import ArcSettings
from memtrace.errors import ArcDeleteRefused, ArcRejected, ArcUnavailable
from memtrace.logs import Throttle
from memtrace.metrics import m

logger = logging.getLogger("memtrace.arc")
T = TypeVar("T")
# An Arc that is down fails every retry and every read: one line per org and interval, with a count.
_throttle = Throttle(logger)

WRITE_PATH = "/api/v1/write/msgpack"
QUERY_PATH = "/api/v1/query"
DELETE_PATH = "/api/v1/delete"
DELETE_CONFIG_PATH = "/api/v1/delete/config"
DEFAULT_MAX_ROWS_PER_DELETE = 1_000_000
HEALTH_PATH = "/health"

# Transport failures aiohttp (or the OS, or asyncio) may raise mid-request.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
_CONFIG_ERRORS: tuple[type[BaseException], ...] = (*_TRANSPORT_ERRORS, msgspec.DecodeError)
# Arc's error bodies can be long (a DuckDB message with the whole SQL); keep messages readable.
_MAX_ERROR_TEXT = 500


class ArcResult(msgspec.Struct):
    """A query answer, row-major as Arc sends it; an unknown measurement yields empty lists."""

    columns: list[str] = []
    data: list[list[Any]] = []


class _QueryBody(msgspec.Struct):
    sql: str


class _DeleteBody(msgspec.Struct):
    database: str
    measurement: str
    where: str
    dry_run: bool
    confirm: bool


class DeleteResult(msgspec.Struct):
    """Arc's answer to `POST /api/v1/delete` (the fields Memtrace uses)."""

    success: bool = True
    deleted_count: int = 0
    dry_run: bool = False
    error: str = ""


class DeleteConfig(msgspec.Struct):
    enabled: bool = True
    confirmation_threshold: int = 10_000
    max_rows_per_delete: int = DEFAULT_MAX_ROWS_PER_DELETE


class _ErrorBody(msgspec.Struct):
    error: str = ""
    message: str = ""


_json_encoder = msgspec.json.Encoder()
_result_decoder = msgspec.json.Decoder(ArcResult)
_delete_decoder = msgspec.json.Decoder(DeleteResult)
_delete_config_decoder = msgspec.json.Decoder(DeleteConfig)
_error_decoder = msgspec.json.Decoder(_ErrorBody)


def _scrub(text: str, binding: ArcBinding | None) -> str:
    if binding is not None and binding.api_key:
        text = text.replace(binding.api_key, "***")
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _retry_after(headers: Any, default: int = 2) -> int:
    raw = headers.get("Retry-After", "") if headers is not None else ""
    try:
        return max(1, int(float(raw)))
    except ValueError:
        return default


WriteRefusal = Literal["payload", "binding"]

# Arc's (and arclite's) texts for a write refused because of what it holds, not where it goes.
_PAYLOAD_WORDS = ("payload", "messagepack", "msgpack", "column", "record", "type conflict", "unsupported value",
                  "compression", "measurement ")
_BINDING_WORDS = ("database name", "measurement name", "token", "permission", "unauthorized", "forbidden")


def write_refusal(arc_status: int, message: str) -> WriteRefusal:
    """Whether Arc refused a write for its payload (split it, quarantine a lone row) or for the binding.

    Unknown 4xx count as "binding": that keeps the rows pending (and loudly logged) rather than setting
    aside memories that might go through once someone fixes the configuration.
    """
    if arc_status == 413:
        return "payload"
    text = (message.partition("): ")[2] or message).lower()  # Arc's own words, after our "(HTTP n): " prefix
    blames_payload = any(word in text for word in _PAYLOAD_WORDS)
    if arc_status in (400, 422) and blames_payload and not any(word in text for word in _BINDING_WORDS):
        return "payload"
    return "binding"


def _arc_error_text(status: int, body: bytes) -> str:
    """Arc's own explanation: its JSON `error`, else the start of the body, else the status."""
    try:
        parsed = _error_decoder.decode(body)
        text = parsed.error or parsed.message
    except msgspec.DecodeError:
        text = body[:_MAX_ERROR_TEXT].decode("utf-8", errors="replace").strip()
    return (text or f"HTTP {status}")[:_MAX_ERROR_TEXT]


def _is_arc_error(body: bytes) -> bool:
    """Whether `body` is Arc's own JSON error answer (`{"success": false, "error": "..."}`)."""
    try:
        return bool(_error_decoder.decode(body).error)
    except msgspec.DecodeError:
        return False


class ArcPool:
    """Lazily created, per-URL aiohttp sessions shared by every org bound to that URL.

    Must be used from one event loop; `close()` at shutdown releases every socket, after which
    calls fail with ArcUnavailable instead of silently opening new sessions. The connect timeout
    also bounds the wait for a free pooled connection, so a saturated Arc yields a quick
    ArcUnavailable (backpressure) instead of an ever-growing queue of waiting requests.
    """

    def __init__(self, settings: ArcSettings) -> None:
        self._settings = settings
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._closed = False
        # Only the TCP connect is bounded by connect_timeout_s: many orgs share one URL's pool, and a wait
        # for a free connection is normal queueing under load, bounded by the total timeout.
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s,
            sock_connect=settings.connect_timeout_s,
        )
        # A health probe must not hold a connection slot for a full request timeout.
        probe_total = min(settings.request_timeout_s, settings.connect_timeout_s * 2)
        self._probe_timeout = aiohttp.ClientTimeout(
            total=probe_total, connect=settings.connect_timeout_s, sock_connect=settings.connect_timeout_s
        )

    @property
    def urls(self) -> list[str]:
        """Base URLs that currently have an open session."""
        return list(self._sessions)

    def _session(self, url: str) -> aiohttp.ClientSession:
        if self._closed:
            raise ArcUnavailable("arc client is shut down")
        session = self._sessions.get(url)
        if session is None or session.closed:
            limit = self._settings.max_connections_per_host
            connector = aiohttp.TCPConnector(
                limit=limit, limit_per_host=limit, ttl_dns_cache=300, keepalive_timeout=30.0
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                raise_for_status=False,
                # Orgs share this session: a cookie set for one org must never ride along for another.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[url] = session
        return session

    @staticmethod
    def _headers(binding: ArcBinding, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "x-arc-database": binding.database}
        if binding.api_key:
            headers["Authorization"] = f"Bearer {binding.api_key}"
        return headers

    def _unavailable(self, binding: ArcBinding, reason: str, retry_after: int = 2, kind: str = "connection"
                     ) -> ArcUnavailable:
        message = _scrub(f"arc for org {binding.org_id} at {binding.host} is unavailable: {reason}", binding)
        m().arc_errors.labels(kind).inc()
        _throttle.warning(f"unavailable:{binding.org_id}", "%s", message)
        return ArcUnavailable(message, retry_after=retry_after)

    def _raise_for_status(
        self, binding: ArcBinding, status: int, headers: Any, body: bytes, query: bool = False
    ) -> NoReturn:
        text = _scrub(_arc_error_text(status, body), binding)
        answered = query and status == 500 and _is_arc_error(body)
        if (status == 429 or status >= 500) and not answered:
            kind = "throttled" if status == 429 else "server_error"
            raise self._unavailable(binding, f"HTTP {status}: {text}", _retry_after(headers), kind)
        where = f"arc for org {binding.org_id} at {binding.host}"
        message = f"{where} rejected the request (HTTP {status}): {text}"
        m().arc_errors.labels("rejected").inc()
        _throttle.warning(f"rejected:{binding.org_id}", "%s", message)
        raise ArcRejected(message, arc_status=status)

    async def _post(self, binding: ArcBinding, path: str, body: bytes, content_type: str) -> bytes:
        """POST and return the 2xx body; anything else leaves as ArcUnavailable or ArcRejected."""
        session = self._session(binding.url)
        try:
            async with session.post(
                binding.url + path,
                data=body,
                headers=self._headers(binding, content_type),
                allow_redirects=False,
            ) as resp:
                payload = await resp.read()
                status = resp.status
                headers = resp.headers
        except _TRANSPORT_ERRORS as exc:
            kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
            raise self._unavailable(binding, _describe(exc), kind=kind) from None
        if not 200 <= status < 300:
            self._raise_for_status(binding, status, headers, payload, query=path == QUERY_PATH)
        return payload

    async def write_msgpack(self, binding: ArcBinding, body: bytes) -> None:
        """Deliver one columnar msgpack payload; returning means Arc acknowledged it (2xx)."""
        await self._post(binding, WRITE_PATH, body, "application/msgpack")

    async def query(self, binding: ArcBinding, sql: str) -> ArcResult:
        """Run one SELECT in the binding's database; the caller is responsible for org scoping."""
        return await self.query_as(binding, sql, _result_decoder.decode)

    async def query_as(self, binding: ArcBinding, sql: str, decode: Callable[[bytes], T]) -> T:
        """`query`, with the answer's JSON body read by `decode` (e.g. straight into typed rows); `decode`
        raises msgspec.DecodeError for a body that is not Arc's JSON."""
        payload = await self._post(
            binding, QUERY_PATH, _json_encoder.encode(_QueryBody(sql)), "application/json"
        )
        try:
            return decode(payload)
        except msgspec.DecodeError as exc:
            # A 2xx that is not Arc's JSON means something else answers at that URL (proxy, wrong port).
            raise self._unavailable(binding, f"unexpected query answer: {exc}", kind="bad_answer") from None

    async def delete(self, binding: ArcBinding, where: str, *, dry_run: bool, confirm: bool) -> DeleteResult:
        """`POST /api/v1/delete` on the binding's database and measurement; `where` must be org-scoped
        (built by `memory/query.delete_condition`). A refusing Arc raises ArcDeleteRefused naming the fix."""
        body = _json_encoder.encode(_DeleteBody(binding.database, binding.measurement, where, dry_run, confirm))
        try:
            payload = await self._post(binding, DELETE_PATH, body, "application/json")
        except ArcRejected as exc:
            if exc.arc_status not in (401, 403):
                raise
            raise self._delete_refused(binding, exc.message) from None
        try:
            result = _delete_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise self._unavailable(binding, f"unexpected delete answer: {exc}", kind="bad_answer") from None
        if not result.success:
            raise self._unavailable(binding, f"delete failed: {_scrub(result.error, binding)[:_MAX_ERROR_TEXT]}",
                                    kind="server_error")
        return result

    def _delete_refused(self, binding: ArcBinding, arc_text: str) -> ArcDeleteRefused:
        where = f"arc for org {binding.org_id} at {binding.host}"
        if "delete.enabled" in arc_text or "disabled" in arc_text.lower():
            message = (f"{where} refuses deletes: set delete.enabled=true in arc.toml ([delete] enabled = true) "
                       f"and restart Arc. Arc said: {arc_text}")
        else:
            message = (f"{where} refuses deletes for this binding's token: deleting needs an Arc admin token "
                       f"(memtrace admin org add-arc ORG_ID ... --api-key ADMIN_TOKEN). Arc said: {arc_text}")
        return ArcDeleteRefused(_scrub(message, binding), arc_status=403)

    async def delete_config(self, binding: ArcBinding) -> DeleteConfig:
        """`GET /api/v1/delete/config`; an Arc without it (or failing) yields Arc's documented defaults."""
        session = self._session(binding.url)
        try:
            async with session.get(binding.url + DELETE_CONFIG_PATH, headers=self._headers(binding, "application/json"),
                                   allow_redirects=False) as resp:
                payload = await resp.read()
                if not 200 <= resp.status < 300:
                    return DeleteConfig()
            return _delete_config_decoder.decode(payload)
        except _CONFIG_ERRORS:
            return DeleteConfig()

    async def health(self, url: str) -> bool:
        """Whether Arc at `url` answers GET /health with 2xx; never raises for transport problems."""
        if self._closed:
            return False
        url = url.rstrip("/")
        session = self._session(url)
        try:
            probe = session.get(url + HEALTH_PATH, timeout=self._probe_timeout, allow_redirects=False)
            async with probe as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except _TRANSPORT_ERRORS as exc:
            logger.debug("arc health check of %s failed: %s", url, _describe(exc))
            return False

    async def close(self) -> None:
        """Close every session; idempotent."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
