"""The OpenAPI 3.1 document of every route, built from the msgspec Structs the handlers decode and encode.

`OPERATIONS` is the one table of routes: template, method, permission, request body, query Struct and answers.
Schemas come from `msgspec.json.schema_components`, so the enums, lengths, ranges and patterns a client reads are
the ones the server enforces; limits that depend on settings are written in when the app is created.
`tests/test_openapi.py` walks the served route table against this one, so neither can drift from the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import Struct

from memtrace import __version__
from memtrace.api.agents import AgentCreate, AgentDeleteParams, AgentList, AgentStats
from memtrace.api.forget import ForgetRequest, ForgetResult
from memtrace.api.health import Health, Readiness
from memtrace.api.params import ListParams
from memtrace.api.sessions import (
    ContextRequest,
    ContextResponse,
    SessionCreate,
    SessionList,
    SessionListParams,
    SessionUpdate,
)
from memtrace.api.timelines import AgentTimeline, SessionTimeline, TimelineParams
from memtrace.config import LimitsSettings
from memtrace.memory.model import (
    MAX_TAGS,
    BatchCreated,
    Memory,
    MemoryList,
    NewMemory,
    NewMemoryBatch,
    RecallRequest,
    RecallResult,
    SearchRequest,
    SearchResults,
)
from memtrace.metadata.models import Agent, Session
from memtrace.timeutil import _ISO, _RELATIVE

JSON = "application/json"
HTML = "text/html"
REF = "#/components/schemas/{name}"
KEY_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]


class ErrorBody(Struct, kw_only=True, omit_defaults=True):
    """Every error answer: a sentence naming what went wrong; `hint` is the admin step that fixes it, if any;
    `memory_id` (409 `duplicate memory`) the id of the memory already stored under the dedup key, when known."""

    error: str
    hint: str | None = None
    memory_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented response: body types (none: no body; several: any of them), media types, headers."""

    description: str
    body: tuple[Any, ...] = ()
    media: tuple[str, ...] = (JSON,)
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """One route. `permission` None means public; a permission adds the 401 and 403 answers."""

    operation_id: str
    method: str
    path: str  # an OpenAPI template, which BlackSheep also accepts: /api/v1/agents/{agent}
    summary: str
    tag: str
    answers: dict[int, Answer]
    errors: tuple[int, ...] = ()
    permission: str | None = None
    body: tuple[Any, ...] = ()
    body_required: bool = True
    query: type[Struct] | None = None
    query_skip: tuple[str, ...] = ()  # query fields this route takes from its path instead
    params: dict[str, str] = field(default_factory=dict)  # path parameter → description
    param_enums: dict[str, tuple[str, ...]] = field(default_factory=dict)  # path parameter → its only values
    optional_key: bool = False  # public, but a key changes the answer (/ready)


HEADERS = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "Where the resource is.", "schema": {"type": "string"}},
}

ERRORS: dict[int, Answer] = {
    400: Answer("Invalid input: the message names the field and states its rule in words with an example, or "
                "names an unknown query parameter (every route refuses the parameters it does not list).",
                (ErrorBody,)),
    401: Answer("Missing or invalid API key.", (ErrorBody,)),
    403: Answer("The API key lacks the permission this route needs.", (ErrorBody,)),
    404: Answer("Not found in the caller's org.", (ErrorBody,)),
    409: Answer("Duplicate memory within the dedup window (`memory_id` names the memory already stored, when "
                "known), agent name already taken, or the org's Arc refuses deletes (the message names the Arc "
                "setting).", (ErrorBody,)),
    413: Answer("Request body, content or metadata over its size limit.", (ErrorBody,)),
    429: Answer("The org's local queue is full; retry after `Retry-After` seconds.", (ErrorBody,),
                headers=("Retry-After",)),
    502: Answer("Arc rejected a query Memtrace built.", (ErrorBody,)),
    503: Answer("The org has no Arc instance (see `hint`), or its Arc is unavailable (retry after `Retry-After`).",
                (ErrorBody,), headers=("Retry-After",)),
}

DOC_ASSETS: tuple[str, ...] = ("swagger-ui.css", "swagger-ui-bundle.js", "init.js", "favicon-32x32.png")
CONSOLE_ASSETS: tuple[str, ...] = (
    "app.js", "agents.js", "api.js", "chart.js", "dom.js", "errors.js", "memories.js", "sessions.js", "style.css",
)
ASSET_MEDIA: dict[str, str] = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}

# What the Structs' `str` fields cannot say: the grammar their handlers parse (timeutil, params.parse_tags).
TIME_PATTERN = rf"^\s*(?:{_RELATIVE.pattern}|{_ISO.pattern})\s*$"
TAGS_CSV_PATTERN = rf"^\s*[A-Za-z0-9_.-]{{1,64}}\s*(?:,\s*[A-Za-z0-9_.-]{{1,64}}\s*){{0,{MAX_TAGS - 1}}}$"
TIME_FIELD = {"pattern": TIME_PATTERN, "description": "Relative (`30m`, `2h`, `7d`, `4w`) or ISO 8601 / RFC 3339."}
QUERY_GRAMMAR: dict[str, dict[str, str]] = {
    "since": TIME_FIELD,
    "until": TIME_FIELD,
    "tags": {"pattern": TAGS_CSV_PATTERN, "description": "Comma-separated tags; a memory must carry every one."},
    "bucket": {"pattern": rf"^\s*{_RELATIVE.pattern}\s*$",
               "description": "Bucket width from `1m` to `1d` (`5m`, `1h`, `1d`); at most 10,000 buckets a window."},
}
BODY_GRAMMAR: dict[str, dict[str, dict[str, str]]] = {
    "SearchRequest": {"since": TIME_FIELD, "until": TIME_FIELD},
    "RecallRequest": {"since": TIME_FIELD, "until": TIME_FIELD},
    "ContextRequest": {"since": TIME_FIELD},
}

# Reading memories may meet an unbound org or an unavailable Arc (503) or an Arc that refuses the query (502).
MEMORY_READ = (502, 503)
AGENT = {"agent": "The agent's id or name; a well-formed name never registered still matches its memories."}
SESSION = {"session_id": "The session's id."}

OPERATIONS: tuple[Operation, ...] = (
    # memories
    Operation("createMemories", "POST", "/api/v1/memories", "Store one memory or a batch", "memories",
              {201: Answer("The stored memory, or for a batch the stored ones and how many were duplicates.",
                           (Memory, BatchCreated))},
              (400, 409, 413, 429, 503), "write", body=(NewMemory, NewMemoryBatch)),
    Operation("listMemories", "GET", "/api/v1/memories", "List memories, newest first by default", "memories",
              {200: Answer("A page of memories.", (MemoryList,))}, (400, *MEMORY_READ), "read", query=ListParams),
    Operation("getMemory", "GET", "/api/v1/memories/{memory_id}", "Get one memory", "memories",
              {200: Answer("The memory.", (Memory,))}, (404, *MEMORY_READ), "read",
              params={"memory_id": "The memory's id (`mem_` + a ULID)."}),
    Operation("deleteMemory", "DELETE", "/api/v1/memories/{memory_id}", "Forget one memory", "memories",
              {204: Answer("Forgotten everywhere."),
               202: Answer("Forgotten here; Arc has not confirmed yet, every read already hides it.")},
              (404, 409, 503), "write", params={"memory_id": "The memory's id (`mem_` + a ULID)."}),
    Operation("forget", "POST", "/api/v1/forget", "Forget the memories matching a filter (or count them)",
              "memories",
              {200: Answer("How many matched and were deleted.", (ForgetResult,)),
               202: Answer("Recorded; Arc has not confirmed yet, every read already hides them.", (ForgetResult,))},
              (400, 409, 413, 503), "write", body=(ForgetRequest,)),
    Operation("searchMemories", "POST", "/api/v1/search",
              "Search memories: by relevance to a `query` (each result with its `score`), or by filters in time order",
              "memories",
              {200: Answer("Matching memories, best first with a query (scores non-increasing).", (SearchResults,))},
              (400, 413, *MEMORY_READ), "read", body=(SearchRequest,)),
    Operation("recall", "POST", "/api/v1/recall",
              "The memories most relevant to a query, as LLM-ready markdown within a token budget", "memories",
              {200: Answer("The markdown and exactly the memories whose lines it holds, with their scores.",
                           (RecallResult,))},
              (400, 413, *MEMORY_READ), "read", body=(RecallRequest,)),
    # agents
    Operation("createAgent", "POST", "/api/v1/agents", "Register an agent", "agents",
              {201: Answer("The agent.", (Agent,))}, (400, 409, 413), "write", body=(AgentCreate,)),
    Operation("listAgents", "GET", "/api/v1/agents", "List the org's agents, newest first", "agents",
              {200: Answer("The agents.", (AgentList,))}, (), "read"),
    Operation("getAgent", "GET", "/api/v1/agents/{agent}", "Get an agent by id or name", "agents",
              {200: Answer("The agent.", (Agent,))}, (404,), "read", params=AGENT),
    Operation("deleteAgent", "DELETE", "/api/v1/agents/{agent}",
              "Delete an agent; with erase=true also its sessions and memories", "agents",
              {204: Answer("Deleted."), 202: Answer("Erased here; Arc has not confirmed yet, reads already hide it.")},
              (400, 404, 409, 503), "write", query=AgentDeleteParams, params=AGENT),
    Operation("listAgentMemories", "GET", "/api/v1/agents/{agent}/memories",
              "List an agent's memories (since defaults to 24h)", "agents",
              {200: Answer("A page of memories.", (MemoryList,))}, (400, 404, *MEMORY_READ), "read",
              query=ListParams, query_skip=("agent_id",), params=AGENT),
    Operation("getAgentStats", "GET", "/api/v1/agents/{agent}/stats", "An agent's memory and session counts",
              "agents", {200: Answer("The agent's stats.", (AgentStats,))}, (404, *MEMORY_READ), "read",
              params=AGENT),
    Operation("getAgentTimeline", "GET", "/api/v1/agents/{agent}/timeline",
              "An agent's memory counts per time bucket, by memory type, with errors", "agents",
              {200: Answer("Non-empty buckets, oldest first.", (AgentTimeline,))}, (400, 404, *MEMORY_READ), "read",
              query=TimelineParams, params=AGENT),
    # sessions
    Operation("createSession", "POST", "/api/v1/sessions", "Open a session (registers an unknown agent)",
              "sessions", {201: Answer("The session.", (Session,))}, (400, 413), "write", body=(SessionCreate,)),
    Operation("listSessions", "GET", "/api/v1/sessions", "List sessions, newest first", "sessions",
              {200: Answer("The sessions.", (SessionList,))}, (400, 404), "read", query=SessionListParams),
    Operation("getSession", "GET", "/api/v1/sessions/{session_id}", "Get a session", "sessions",
              {200: Answer("The session.", (Session,))}, (404,), "read", params=SESSION),
    Operation("updateSession", "PUT", "/api/v1/sessions/{session_id}", "Close a session or replace its metadata",
              "sessions", {200: Answer("The updated session.", (Session,))}, (400, 404, 413), "write",
              body=(SessionUpdate,), params=SESSION),
    Operation("listSessionMemories", "GET", "/api/v1/sessions/{session_id}/memories", "List a session's memories",
              "sessions", {200: Answer("A page of memories.", (MemoryList,))}, (400, 404, *MEMORY_READ), "read",
              query=ListParams, query_skip=("session_id",), params=SESSION),
    Operation("sessionContext", "POST", "/api/v1/sessions/{session_id}/context",
              "A session as markdown for a prompt, cut to a token budget", "sessions",
              {200: Answer("The rendered context.", (ContextResponse,))}, (400, 404, 413, *MEMORY_READ), "read",
              body=(ContextRequest | None,), body_required=False, params=SESSION),
    Operation("getSessionTimeline", "GET", "/api/v1/sessions/{session_id}/timeline",
              "A session's memory counts per time bucket, by memory type, with errors", "sessions",
              {200: Answer("Non-empty buckets, oldest first.", (SessionTimeline,))}, (400, 404, *MEMORY_READ),
              "read", query=TimelineParams, params=SESSION),
    # operations
    Operation("health", "GET", "/health", "Liveness", "operations", {200: Answer("Alive.", (Health,))}),
    Operation("ready", "GET", "/ready", "Readiness: counts for anyone, per-org Arc health for an admin key",
              "operations",
              {200: Answer("Ready.", (Readiness,)), 503: Answer("Not ready yet (same body).", (Readiness,))},
              optional_key=True),
    Operation("metrics", "GET", "/metrics", "Prometheus metrics of every worker (no org ids, keys or payloads)",
              "operations", {200: Answer("Prometheus text exposition format.", (str,), media=("text/plain",))}),
    Operation("openapi", "GET", "/openapi.json", "This document", "operations",
              {200: Answer("The OpenAPI 3.1 document.", (dict[str, Any],))}),
    Operation("docs", "GET", "/docs", "Interactive API docs (served locally, no internet needed)", "operations",
              {200: Answer("The docs page.", (str,), media=(HTML,))}),
    Operation("docsAsset", "GET", "/docs/assets/{asset}", "A static file of the docs page", "operations",
              {200: Answer("The file.", (), media=tuple(dict.fromkeys(ASSET_MEDIA.values())))}, (404,),
              params={"asset": "The file name."}, param_enums={"asset": DOC_ASSETS}),
    Operation("console", "GET", "/console", "The web console (sign in with an API key; no key in the page)",
              "operations", {200: Answer("The console page.", (str,), media=(HTML,))}),
    Operation("consoleAsset", "GET", "/console/assets/{asset}", "A static file of the console", "operations",
              {200: Answer("The file.", (), media=tuple(dict.fromkeys(ASSET_MEDIA.values())))}, (404,),
              params={"asset": "The file name."}, param_enums={"asset": CONSOLE_ASSETS}),
    Operation("root", "GET", "/", "Redirects to the docs page", "operations",
              {302: Answer("To /docs.", headers=("Location",))}),
)


# Browser pages, their static files, the scrape and this document take any query (cache busters, scrape params).
FREE_QUERY = frozenset({"metrics", "openapi", "docs", "docsAsset", "console", "consoleAsset", "root"})


def accepted_queries() -> dict[tuple[str, str], tuple[str, ...]]:
    """(METHOD, template) → the query parameters the route takes (its query Struct's fields, in order; none
    without one): every other parameter is refused (`querycheck.py`). Those of `query_skip` come from the path
    and are still accepted (and ignored), as the published SDK sends some of them."""
    return {(op.method, op.path): tuple(f.encode_name for f in msgspec.structs.fields(op.query)) if op.query else ()
            for op in OPERATIONS if op.operation_id not in FREE_QUERY}


def _types(op: Operation) -> list[Any]:
    answers = [*op.answers.values(), *(ERRORS[s] for s in op.errors)]
    return [*op.body, *(t for a in answers for t in a.body)]


def _schema_of(types: tuple[Any, ...], schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if not types:
        return {}
    if len(types) == 1:
        return schemas[types[0]]
    return {"anyOf": [schemas[t] for t in types]}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: drop the `null` branch and default of an optional field."""
    out = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    options = [s for s in out.pop("anyOf", []) if s != {"type": "null"}]
    if len(options) == 1:
        out.update(options[0])
    elif options:
        out["anyOf"] = options
    return out


def _query(op: Operation) -> list[dict[str, Any]]:
    """Query parameters from the query Struct's fields; an empty value (`?order=`) counts as absent."""
    if op.query is None:
        return []
    _, components = msgspec.json.schema_components([op.query], ref_template=REF)
    struct = components[op.query.__name__]
    assert len(components) == 1, "query Structs hold scalars only, so parameters need no shared components"
    required = set(struct.get("required", ()))
    params = [
        {"name": name, "in": "query", "required": name in required, "allowEmptyValue": True,
         "schema": _not_null(schema)}
        for name, schema in struct["properties"].items() if name not in op.query_skip
    ]
    for param in params:
        grammar = QUERY_GRAMMAR.get(param["name"])
        if grammar:
            param["description"] = grammar["description"]
            param["schema"]["pattern"] = grammar["pattern"]
    return params


def _path_schema(op: Operation, name: str) -> dict[str, Any]:
    if name in op.param_enums:
        return {"enum": list(op.param_enums[name])}
    return {"type": "string", "minLength": 1}


def _response(answer: Answer, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.media and (answer.body or answer.media != (JSON,)):
        out["content"] = {media: {"schema": _schema_of(answer.body, schemas)} for media in answer.media}
    if answer.headers:
        out["headers"] = {name: HEADERS[name] for name in answer.headers}
    return out


def _operation(op: Operation, schemas: dict[Any, dict[str, Any]], limits: LimitsSettings) -> dict[str, Any]:
    checked = () if op.operation_id in FREE_QUERY else (400,)  # an unknown query parameter
    statuses = {**op.answers,
                **{s: ERRORS[s] for s in (*checked, *((401, 403) if op.permission else ()), *op.errors)}}
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.permission:
        out["description"] = f"Needs an API key with the `{op.permission}` permission (`admin` implies it)."
        out["security"] = KEY_SECURITY
    elif op.optional_key:
        out["security"] = [{}, *KEY_SECURITY]
    else:
        out["security"] = []
    parameters = [
        {"name": name, "in": "path", "required": True, "description": text, "schema": _path_schema(op, name)}
        for name, text in op.params.items()
    ] + _query(op)
    if parameters:
        out["parameters"] = parameters
    if op.body:
        out["requestBody"] = {
            "required": op.body_required,
            "description": f"JSON, at most {limits.max_body_bytes} bytes.",
            "content": {JSON: {"schema": _schema_of(op.body, schemas)}},
        }
    out["responses"] = {str(status): _response(statuses[status], schemas) for status in sorted(statuses)}
    return out


def _string_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The `{"type": "string"}` part of an optional string field's schema."""
    return next((s for s in schema.get("anyOf", ()) if s.get("type") == "string"), schema)


def _refine(components: dict[str, Any], limits: LimitsSettings) -> None:
    """Write in what the Structs cannot know: the settings' size limits and the grammar of parsed strings."""
    for struct, fields in BODY_GRAMMAR.items():
        for name, grammar in fields.items():
            prop = components[struct]["properties"][name]
            prop["description"] = grammar["description"]
            _string_branch(prop)["pattern"] = grammar["pattern"]
    memory = components["NewMemory"]["properties"]
    memory["content"]["maxLength"] = limits.max_content_bytes
    memory["content"]["description"] = f"At most {limits.max_content_bytes} bytes (UTF-8)."
    memory["metadata"]["description"] = f"A JSON object of at most {limits.max_metadata_bytes} bytes encoded."
    batch = components["NewMemoryBatch"]["properties"]["memories"]
    batch["minItems"], batch["maxItems"] = 1, limits.max_batch_items


def build(limits: LimitsSettings) -> dict[str, Any]:
    """The whole document as a JSON-ready dict."""
    types = list(dict.fromkeys(t for op in OPERATIONS for t in _types(op)))
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schemas = dict(zip(types, refs, strict=True))
    _refine(components, limits)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas, limits)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Memtrace",
            "version": __version__,
            "description": "Durable, queryable, multi-tenant memory for AI agents, stored in Arc. "
                           "Every error is JSON `{\"error\": \"...\"}`; the org comes from the API key only. "
                           "Any route may also answer 503 while a worker is at its concurrency limit (backpressure).",
        },
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "The same API key as a bearer token."},
            },
        },
    }


def document_bytes(limits: LimitsSettings) -> bytes:
    """The document encoded once, to be served as is."""
    return msgspec.json.encode(build(limits))
