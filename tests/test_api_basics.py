"""Error shapes, auth and health of the real server over HTTP."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Stack
from tests.provision import add_key

JSON = {"content-type": "application/json"}


def test_health_is_public_json(stack: Stack) -> None:
    resp = httpx.get(f"{stack.server.url}/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def _ready(stack: Stack, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET /ready until it answers 200 (Arc health becomes known within a probe interval)."""
    deadline = time.monotonic() + 10
    while True:
        resp = httpx.get(f"{stack.server.url}/ready", headers=headers)
        if resp.status_code == 200 or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def test_public_ready_gives_counts_only(stack: Stack) -> None:
    for headers in (None, {"x-api-key": stack.tenant.key}, {"x-api-key": "mtk_" + "A" * 43}):
        resp = _ready(stack, headers)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"status": "ready", "metadata": "ok", "journal": "ok",
                               "orgs": {"ok": 1, "degraded": 0, "unknown": 0}}
        assert stack.tenant.org_id not in resp.text
        assert "127.0.0.1" not in resp.text


def test_admin_key_gets_per_org_arc_health_without_secrets(stack: Stack) -> None:
    admin = add_key(stack.db, stack.tenant.org_id, "ops", "admin")
    for headers in ({"x-api-key": admin}, {"Authorization": f"Bearer {admin}"}):
        resp = _ready(stack, headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["orgs"] == {"ok": 1, "degraded": 0, "unknown": 0}
        org = body["arc"][stack.tenant.org_id]
        assert (org["status"], org["circuit"], org["arc"]) == ("ok", "closed", stack.arc.url.removeprefix("http://"))
        assert admin not in resp.text and stack.tenant.key not in resp.text


def test_unknown_route_is_json_404(api: httpx.Client) -> None:
    resp = api.get("/api/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {"error": "not found"}


def test_wrong_method_is_json_405_with_allow(api: httpx.Client) -> None:
    resp = api.patch("/api/v1/memories", json={})
    assert resp.status_code == 405
    assert resp.json() == {"error": "method not allowed"}
    assert resp.headers["allow"] == "GET, POST"
    for method, path, allow in (("POST", "/api/v1/agents/a1", "GET, DELETE"), ("DELETE", "/health", "GET"),
                                ("GET", "/api/v1/search", "POST"), ("HEAD", "/api/v1/sessions/s1", "GET, PUT")):
        resp = api.request(method, path)
        assert (resp.status_code, resp.headers.get("allow")) == (405, allow), (method, path)


def test_malformed_json_is_400(api: httpx.Client) -> None:
    resp = api.post("/api/v1/memories", content=b'{"agent_id": "a", "content": ', headers=JSON)
    assert resp.status_code == 400
    assert "malformed JSON" in resp.json()["error"]


def test_body_over_cap_is_413(api: httpx.Client) -> None:
    resp = api.post("/api/v1/memories", content=b"x" * (8 * 1024 * 1024 + 1), headers=JSON)
    assert resp.status_code == 413
    assert "error" in resp.json()


def test_missing_key_is_401(stack: Stack) -> None:
    resp = httpx.get(f"{stack.server.url}/api/v1/memories")
    assert resp.status_code == 401
    assert resp.json() == {"error": "missing API key"}


def test_invalid_keys_get_the_same_answer_and_are_never_echoed(stack: Stack) -> None:
    bogus = [
        "mtk_" + "A" * 43,
        "not-a-key",
        stack.tenant.key[:-2] + ("AA" if not stack.tenant.key.endswith("AA") else "BB"),
    ]
    for key in bogus:
        with stack.client(key) as client:
            resp = client.get("/api/v1/memories")
        assert resp.status_code == 401
        assert resp.json() == {"error": "invalid API key"}
        assert key not in resp.text


def test_bearer_header_is_accepted(stack: Stack) -> None:
    resp = httpx.get(f"{stack.server.url}/api/v1/agents", headers={"Authorization": f"Bearer {stack.tenant.key}"})
    assert resp.status_code == 200


def test_read_only_key_cannot_write(stack: Stack) -> None:
    key = add_key(stack.db, stack.tenant.org_id, "reader", "read")
    with stack.client(key) as client:
        assert client.get("/api/v1/memories").status_code == 200
        resp = client.post("/api/v1/memories", json={"agent_id": "a1", "content": "hello"})
    assert resp.status_code == 403
    assert "write" in resp.json()["error"]


def test_expired_key_is_refused(stack: Stack) -> None:
    expires = time.time_ns() // 1000 + 1_500_000
    key = add_key(stack.db, stack.tenant.org_id, "short-lived", "read", expires_at_us=expires)
    with stack.client(key) as client:
        assert client.get("/api/v1/agents").status_code == 200  # verified and cached
        while time.time_ns() // 1000 < expires:
            time.sleep(0.1)
        resp = client.get("/api/v1/agents")
    assert resp.status_code == 401
    assert resp.json() == {"error": "invalid API key"}


def test_offset_beyond_its_bound_is_400_not_an_arc_error(api: httpx.Client) -> None:
    """Found by tests/test_fuzz_api.py: an unbounded offset reached Arc's SQL and came back as a 503."""
    resp = api.get("/api/v1/memories", params={"offset": 30144451258})
    assert resp.status_code == 400
    assert "offset" in resp.json()["error"]
