"""The HTTP side of AsyncMemtraceClient: one pooled aiohttp session, bounded retries, errors translated once.

Errors are translated once, in `_request`, into the hierarchy of `_errors`; callers never see aiohttp.
Overload answers (429, and 503 other than "no arc instance") are retried for every request, because the
server guarantees nothing was stored; transport failures are retried only where sending twice is harmless
(reads, PUT/DELETE, and connections refused before a byte was sent).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp
import msgspec

from memtrace.client._errors import MemtraceError, RateLimited, ServerUnreachable, error_for_status
from memtrace.client._retry import RetryPolicy, parse_retry_after

DEFAULT_URL: Final = "http://localhost:9100"
log = logging.getLogger("memtrace.client")

T = TypeVar("T")


class _ErrorBody(msgspec.Struct):
    error: str = ""
    hint: Any = None
    memory_id: Any = None  # a 409 duplicate memory: the id already stored under its dedup key


_encoder: Final = msgspec.json.Encoder()
_error_decoder: Final = msgspec.json.Decoder(_ErrorBody)
_decoders: Final[dict[type[Any], msgspec.json.Decoder[Any]]] = {}  # one per response type, built on first use


def decode(kind: type[T], data: bytes) -> T:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        value: T = decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MemtraceError(f"unexpected {kind.__name__} response from Memtrace: {exc}") from exc
    return value


def _error_from(status: int, data: bytes, retry_after: str | None) -> MemtraceError:
    try:
        body = _error_decoder.decode(data)
        message, hint, memory_id = body.error, body.hint, body.memory_id
    except msgspec.DecodeError:
        message, hint, memory_id = data[:200].decode("utf-8", "replace").strip(), None, None
    return error_for_status(status, message or f"HTTP {status}", None if hint is None else str(hint),
                            parse_retry_after(retry_after), memory_id if isinstance(memory_id, str) else None)


class Transport:
    """Sends requests to one Memtrace; the session is created on first use inside the running event loop and
    reused (keep-alive pool) until `close()`."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str = "", *, timeout: float = 30.0,
                 connect_timeout: float = 5.0, max_connections: int = 32,
                 retry: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_connections = max_connections
        self.retry = retry or RetryPolicy()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Release pooled connections; the client cannot be used afterwards."""
        self._closed = True
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("AsyncMemtraceClient is closed")
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                             keepalive_timeout=30)
            headers = {"x-api-key": self._api_key, "accept": "application/json",
                       "user-agent": "memtrace-client/0.1"}
            self._http = aiohttp.ClientSession(connector=connector, timeout=self._timeout, headers=headers)
        return self._http

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       body: msgspec.Struct | None = None, idempotent: bool = True,
                       answers: tuple[int, ...] = ()) -> tuple[int, bytes]:
        """Send with bounded retries; returns (status, body) for 2xx and `answers`, raises MemtraceError else."""
        http = self._session()
        url = self.base_url + path
        data = None if body is None else _encoder.encode(body)
        headers = None if data is None else {"content-type": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            try:
                async with http.request(method, url, params=params, data=data, headers=headers) as resp:
                    payload = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                never_sent = isinstance(exc, aiohttp.ClientConnectorError)
                reason = str(exc) or type(exc).__name__
                error: MemtraceError = ServerUnreachable(f"cannot reach Memtrace at {self.base_url}: {reason}")
                if attempt >= self.retry.attempts or not (idempotent or never_sent):
                    raise error from exc
                delay = self.retry.delay(attempt, None)
            else:
                if status < 400 or status in answers:
                    return status, payload
                error = _error_from(status, payload, retry_after)
                if not isinstance(error, RateLimited) or attempt >= self.retry.attempts:
                    raise error
                delay = self.retry.delay(attempt, error.retry_after)
            log.warning("memtrace %s %s failed (%s); retry %d/%d in %.2fs", method, path, error,
                        attempt, self.retry.attempts - 1, delay,
                        extra={"retry_delay": delay, "retry_status": error.status})
            await asyncio.sleep(delay)

    async def _get(self, kind: type[T], path: str, params: dict[str, str] | None = None) -> T:
        _, data = await self._request("GET", path, params=params)
        return decode(kind, data)

    async def _send(self, kind: type[T], method: str, path: str, body: msgspec.Struct, *,
                    idempotent: bool = True) -> T:
        _, data = await self._request(method, path, body=body, idempotent=idempotent)
        return decode(kind, data)
