"""Unknown query parameters are refused: `GET /api/v1/memories?agnet_id=x` is a 400 naming `agnet_id`.

A misspelt filter used to be ignored, so the read answered 200 with everything the filter was meant to exclude.
Each route accepts exactly the query parameters the OpenAPI table documents for it (`openapi.accepted_queries`,
the fields of its query Struct); the pages, static assets, `/metrics` and the document itself take any. The
check runs before the handler (before authentication too): a request naming an unknown parameter cannot mean
what its sender thinks, whoever sends it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from blacksheep import Request, Response

from memtrace.api.observe import RouteLabelRouter
from memtrace.errors import Invalid

Handler = Callable[[Request], Awaitable[Response]]
SHOWN_NAMES = 5  # at most this many unknown names in one message, each cut to 64 characters
_PARAM = re.compile(r":(\w+)")


def template(pattern: str | bytes) -> str:
    """A BlackSheep route pattern as an OpenAPI template: `/agents/:agent` → `/agents/{agent}`."""
    text = pattern.decode() if isinstance(pattern, bytes) else pattern
    return _PARAM.sub(r"{\1}", text)


def unknown_names(raw_query: bytes | None, accepted: frozenset[str]) -> list[str]:
    """The parameter names of `raw_query` a route does not accept, in order, each once (`?x=` counts too)."""
    if not raw_query:
        return []
    names = (name for name, _ in parse_qsl(raw_query.decode("utf-8", "replace"), keep_blank_values=True))
    return list(dict.fromkeys(name for name in names if name not in accepted))


def refusal(unknown: Sequence[str], accepted: Sequence[str]) -> str:
    """`unknown query parameter 'agnet_id'; this route accepts agent_id, session_id, ...`."""
    shown = ", ".join(repr(name[:64]) for name in unknown[:SHOWN_NAMES])
    more = f" and {len(unknown) - SHOWN_NAMES} more" if len(unknown) > SHOWN_NAMES else ""
    head = f"unknown query parameter{'s' if len(unknown) > 1 else ''} {shown}{more}"
    if not accepted:
        return f"{head}; this route takes no query parameters"
    return f"{head}; this route accepts {', '.join(accepted)}"


def refusing_unknown(handler: Handler, accepted: Sequence[str]) -> Handler:
    """`handler`, answering 400 first when the query names a parameter not in `accepted`."""
    allowed = frozenset(accepted)

    @functools.wraps(handler)
    async def checked(request: Request) -> Response:
        scope: dict[str, Any] | None = request.scope  # type: ignore[assignment]
        unknown = unknown_names(scope.get("query_string") if scope is not None else None, allowed)
        if unknown:
            raise Invalid(refusal(unknown, accepted))
        return await handler(request)

    return checked


class QueryCheckedRouter(RouteLabelRouter):
    """The app's router: each route in `accepted` ((method, OpenAPI template) → the parameters it takes) refuses
    the others; routes absent from it take any query."""

    def __init__(self, accepted: Mapping[tuple[str, str], Sequence[str]]) -> None:
        super().__init__()
        self._accepted = accepted

    def add(self, method: str, pattern: Any, handler: Any, filters: Any = None, *, name: str | None = None
            ) -> None:
        names = self._accepted.get((str(method).upper(), template(pattern)))
        if names is not None:
            handler = refusing_unknown(handler, names)
        super().add(method, pattern, handler, filters, name=name)
