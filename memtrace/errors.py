"""Domain errors, flat and documented; `api/errors.py` maps each to one HTTP status, once.

    MemtraceError        500  (never raised bare)
    ├── Invalid          400  bad input; the message names the field
    ├── TooLarge         413  a size cap was exceeded
    ├── Unauthorized     401  missing or invalid API key
    ├── Forbidden        403  the key lacks the permission
    ├── NotFound         404
    ├── RequestTimeout   408  the request body did not arrive in time
    ├── Conflict         409  duplicate memory, duplicate agent name
    ├── Overloaded       429  the org's local queue is full; carries retry_after
    │   ├── JournalFull  503  the journal's disk (or size bound) is full; carries retry_after
    │   └── StoreUnavailable 503  the shared PostgreSQL database is unreachable; carries retry_after
    ├── NoArcInstance    503  the org has no Arc binding; the answer carries a hint naming the admin command
    ├── ArcUnavailable   503  Arc unreachable, timed out, or its circuit is open; carries retry_after; the
    │                         client gets one fixed sentence, the details stay in the server log
    └── ArcRejected      502  Arc refused a request we built; the client gets one fixed sentence, Arc's
        │                     message stays in the server log (scrubbed of secrets)
        └── ArcDeleteRefused 409  the org's Arc refuses deletes (disabled, or the binding's token is not admin);
                                  its message names the fix, but as an ArcRejected the client gets the
                                  fixed sentence too (the server log has the fix)
"""

from __future__ import annotations


class MemtraceError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(MemtraceError):
    status = 400


class TooLarge(MemtraceError):
    status = 413


class Unauthorized(MemtraceError):
    status = 401


class Forbidden(MemtraceError):
    status = 403


class NotFound(MemtraceError):
    status = 404


class RequestTimeout(MemtraceError):
    status = 408


class Conflict(MemtraceError):
    """`memory_id`: for a duplicate memory, the id of the memory already stored under its dedup key, when known."""

    status = 409

    def __init__(self, message: str, memory_id: str | None = None) -> None:
        super().__init__(message)
        self.memory_id = memory_id


class Overloaded(MemtraceError):
    status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JournalFull(Overloaded):
    """The journal cannot store anything more (disk full, or `journal.max_size_mb`) until delivery frees room."""

    status = 503


class StoreUnavailable(Overloaded):
    """The shared PostgreSQL database (`metadata.url`) is unreachable: nothing was stored; retry later."""

    status = 503


class NoArcInstance(MemtraceError):
    status = 503


class ArcUnavailable(MemtraceError):
    status = 503

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ArcRejected(MemtraceError):
    status = 502

    def __init__(self, message: str, arc_status: int = 0) -> None:
        super().__init__(message)
        self.arc_status = arc_status


class ArcDeleteRefused(ArcRejected):
    """Arc will not delete for this org: `delete.enabled` is off in its arc.toml, or the token lacks admin.

    A configuration problem of the deployment, not of the request: 409; the message (logged) names the fix.
    """

    status = 409
