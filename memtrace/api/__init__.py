"""The HTTP layer: one module per resource (memories, agents, sessions, forget, health, metrics, docs), each with
`register(router, deps)`; handlers reach services only, through `Deps`.

    deps.py       Deps (settings + lazily bound Services) and the caller's Principal
    http.py       bounded body reads, decoding, JSON answers      errors.py   domain errors → HTTP, once
    params.py     query strings and bodies → MemoryFilter, Page   resolve.py  path ids → agents
    observe.py    access log + metrics middleware, route labels   guard.py    ASGI guard for unparseable requests
    openapi.py    the OpenAPI document
"""

from memtrace.api import agents, docs, errors, forget, health, memories, metrics, openapi, sessions
from memtrace.api.deps import Deps, Services
from memtrace.api.guard import TargetGuard
from memtrace.api.http import error_response
from memtrace.api.observe import Observed, RouteLabelRouter

__all__ = [
    "Deps",
    "Observed",
    "RouteLabelRouter",
    "Services",
    "TargetGuard",
    "agents",
    "docs",
    "error_response",
    "errors",
    "forget",
    "health",
    "memories",
    "metrics",
    "openapi",
    "sessions",
]
