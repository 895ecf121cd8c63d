"""The OpenAPI document: valid 3.1, complete against the served route table, and carrying the Structs' rules."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
from openapi_spec_validator import validate

from memtrace.api.openapi import FREE_QUERY, OPERATIONS, build
from memtrace.app import create_app
from memtrace.config import LimitsSettings, Settings, StorageSettings
from tests.conftest import Stack

METHODS = ("get", "post", "put", "delete", "patch")


def _served_routes(routes: dict[bytes, list[Any]]) -> set[tuple[str, str]]:
    """(METHOD, template) of every route, with BlackSheep's `/:name` spelled as OpenAPI's `/{name}`."""
    return {
        (method.decode(), re.sub(r"/:(\w+)", r"/{\1}", route.pattern.decode()))
        for method, table in routes.items() for route in table
    }


def test_served_document_is_valid_openapi_3_1(stack: Stack) -> None:
    resp = httpx.get(f"{stack.server.url}/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    document = resp.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_served_route_is_documented_and_every_documented_route_is_served(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(data_dir=str(tmp_path)))
    app = create_app(settings)
    await app.start()
    try:
        served = _served_routes(app.router.routes)
    finally:
        await app.stop()
    paths = build(settings.limits)["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops if method in METHODS}
    assert served, "the app registered no routes"
    assert served - documented == set(), "served but not in memtrace/api/openapi.py OPERATIONS"
    assert documented - served == set(), "documented but not served"


def test_constraints_of_the_structs_appear() -> None:
    document = build(LimitsSettings())
    schemas = document["components"]["schemas"]
    new = schemas["NewMemory"]["properties"]
    # "" is accepted as absent (the original Go SDK sends it), so the enum carries it as a second choice
    assert new["memory_type"]["anyOf"] == [{"enum": ["decision", "entity", "episodic", "session"]}, {"enum": [""]}]
    assert new["agent_id"]["pattern"].startswith("^[A-Za-z]")
    assert new["importance"]["anyOf"][0] == {"type": "number", "minimum": 0.0, "maximum": 1.0, "examples": [0.8]}
    assert new["tags"]["anyOf"][0]["maxItems"] == 32
    assert schemas["NewMemory"]["required"] == ["agent_id", "content"]
    assert schemas["SessionUpdate"]["properties"]["status"]["anyOf"][0]["enum"] == ["active", "closed"]
    params = {p["name"]: p for p in document["paths"]["/api/v1/memories"]["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100,
                                         "examples": [50]}
    assert params["order"]["schema"]["enum"] == ["asc", "desc"]
    agent_params = {p["name"] for p in document["paths"]["/api/v1/agents/{agent}/memories"]["get"]["parameters"]}
    assert "agent_id" not in agent_params and {"agent", "since", "limit"} <= agent_params
    assert set(schemas["Readiness"]["properties"]) == {"status", "metadata", "journal", "orgs", "arc"}
    assert document["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header",
                                                                    "name": "x-api-key"}


def test_settings_limits_are_written_in() -> None:
    limits = LimitsSettings(max_batch_items=50, max_content_bytes=1000, max_body_bytes=4096)
    document = build(limits)
    schemas = document["components"]["schemas"]
    assert schemas["NewMemoryBatch"]["properties"]["memories"]["maxItems"] == 50
    assert schemas["NewMemory"]["properties"]["content"]["maxLength"] == 1000
    assert "4096" in document["paths"]["/api/v1/memories"]["post"]["requestBody"]["description"]


def test_every_operation_documents_its_error_answers() -> None:
    paths = build(LimitsSettings())["paths"]
    for op in OPERATIONS:
        spec = paths[op.path][op.method.lower()]
        statuses = set(spec["responses"])
        if op.permission:
            assert {"401", "403"} <= statuses, op.operation_id
            assert spec["security"] == [{"apiKey": []}, {"bearer": []}]
        else:
            assert not {"401", "403"} & statuses, op.operation_id
        if op.body:
            assert {"400", "413"} <= statuses, op.operation_id
        assert ("400" in statuses) == (op.operation_id not in FREE_QUERY), op.operation_id  # unknown parameters
        if op.params and op.permission:
            assert "404" in statuses, op.operation_id
        assert any(s.startswith("2") or s == "302" for s in statuses), op.operation_id


class _Refs(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_docs_page_uses_only_its_own_assets(stack: Stack) -> None:
    base = stack.server.url
    page = httpx.get(f"{base}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = _Refs()
    parser.feed(page.text)
    assert len(parser.urls) == 4, parser.urls
    expected = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in parser.urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not same-origin"
        asset = httpx.get(base + url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(expected[url[url.rindex("."):]]), url
        assert len(asset.content) > 100, url
    init = httpx.get(f"{base}/docs/assets/init.js").text
    spec_urls = re.findall(r'url:\s*"([^"]+)"', init)
    assert spec_urls == ["/openapi.json"]
    assert httpx.get(base + spec_urls[0]).status_code == 200
    assert httpx.get(f"{base}/docs/assets/nothing.js").status_code == 404


def test_root_redirects_to_docs(stack: Stack) -> None:
    resp = httpx.get(f"{stack.server.url}/")
    assert (resp.status_code, resp.headers["location"]) == (302, "/docs")
