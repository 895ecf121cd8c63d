"""The client's error hierarchy: one exception per way a call can fail, decided in one place.

::

    MemtraceError               status, message, hint
    ├── ValidationError         400, 413 - the request itself is wrong; retrying cannot help
    ├── AuthenticationError     401 - missing, unknown, revoked or expired key
    ├── PermissionDenied        403 - the key lacks the permission (e.g. read-only key writing)
    ├── NotFoundError           404
    ├── ConflictError           409 - duplicate memory, agent name taken
    ├── RateLimited             429, 503 - overloaded; retry_after says when to come back
    ├── NoArcInstanceError      503 "no arc instance..." - an operator must bind the org to Arc
    ├── ServerError             other 5xx
    └── ServerUnreachable       no HTTP answer at all (refused, reset, timed out)

Names and statuses mirror the published ``memtrace-sdk`` so code written against it keeps its except clauses.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "MemtraceError",
    "NoArcInstanceError",
    "NotFoundError",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "ServerUnreachable",
    "ValidationError",
    "error_for_status",
]


class MemtraceError(Exception):
    """Base of every error the client raises; `status` is 0 when no HTTP answer arrived."""

    def __init__(self, message: str, status: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.hint = hint

    @property
    def status_code(self) -> int:
        """Alias kept for code written against memtrace-sdk."""
        return self.status

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ValidationError(MemtraceError):
    """The server rejected the request's content; the message names the field."""


class AuthenticationError(MemtraceError):
    """The API key is missing, unknown, revoked or expired."""


class PermissionDenied(MemtraceError):
    """The key is valid but lacks the permission the route needs."""


class NotFoundError(MemtraceError):
    """The memory, agent or session does not exist in the key's org."""


class ConflictError(MemtraceError):
    """A duplicate memory within the dedup window, or an agent name already taken. For a duplicate memory,
    `memory_id` is the id of the memory already stored under its dedup key, when the server knows it: a retry
    after a lost answer can be taken as success."""

    def __init__(self, message: str, status: int = 409, hint: str | None = None,
                 memory_id: str | None = None) -> None:
        super().__init__(message, status, hint)
        self.memory_id = memory_id


class RateLimited(MemtraceError):
    """The server is shedding load; nothing was stored, so the same request may be sent again later."""

    def __init__(self, message: str, status: int, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status, hint)
        self.retry_after = retry_after


class NoArcInstanceError(MemtraceError):
    """The org has no Arc binding; memory routes stay unavailable until an operator adds one."""


class ServerError(MemtraceError):
    """An unexpected server-side failure."""


class ServerUnreachable(MemtraceError):
    """No HTTP response: the server is down, unreachable, or did not answer in time."""


def error_for_status(status: int, message: str, hint: str | None = None,
                     retry_after: float | None = None, memory_id: str | None = None) -> MemtraceError:
    """Map an HTTP error status (and, for 503, the message) to the exception to raise."""
    if status in (400, 413, 422):
        return ValidationError(message, status, hint)
    if status == 401:
        return AuthenticationError(message, status, hint)
    if status == 403:
        return PermissionDenied(message, status, hint)
    if status == 404:
        return NotFoundError(message, status, hint)
    if status == 409:
        return ConflictError(message, status, hint, memory_id)
    if status == 503 and "arc instance" in message.lower():
        return NoArcInstanceError(message, status, hint)
    if status in (429, 503):
        return RateLimited(message, status, hint, retry_after)
    if status >= 500:
        return ServerError(message, status, hint)
    return MemtraceError(message, status, hint)
