"""JSON logs from a real 2-worker server: one object per line for Memtrace, Granian and arclite; an access line
per request with its request id; 4xx never at WARNING; repeated Arc failures folded; no secret ever printed."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from memtrace.crypto import generate_master_key, parse_master_key
from memtrace.metadata.db import open_metadata
from tests.procs import ArcLite, MemtraceServer
from tests.waiting import wait_until

ARC_TOKEN = "arc-live-token-" + secrets.token_hex(8)
DEAD_TOKEN = "arc-dead-token-" + secrets.token_hex(8)


@dataclass
class Org:
    id: str
    key: str


async def _org(db: Path, name: str, url: str, token: str, master: str) -> Org:
    metadata = await open_metadata(db)
    try:
        org = await metadata.orgs.create(name)
        await metadata.arc_instances.upsert(org.id, url, name, api_key=token, master_key=parse_master_key(master))
        _, key = await metadata.api_keys.create(org.id, f"{name}-key", "read,write")
        return Org(org.id, key)
    finally:
        await metadata.close()


def _failed_deliveries(metrics: str) -> float:
    """Failed write requests to Arc, as /metrics counts them."""
    return sum(float(x.split()[-1]) for x in metrics.splitlines()
               if x.startswith('memtrace_delivery_requests_total{outcome="failed"}'))


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        obj = json.loads(line)  # every line is one JSON object, whoever wrote it
        assert {"time", "level", "logger", "message"} <= obj.keys(), line
        parsed.append(obj)
    return parsed


def test_json_logs_request_ids_quiet_4xx_and_no_secrets(tmp_path: Path) -> None:
    master = generate_master_key()
    arc = ArcLite(tmp_path / "arc", token=ARC_TOKEN, extra=["--log-format", "json"])
    try:
        data = tmp_path / "memtrace"
        data.mkdir()
        live = asyncio.run(_org(data / "memtrace.db", "live", arc.url, ARC_TOKEN, master))
        dead = asyncio.run(_org(data / "memtrace.db", "dead", "http://127.0.0.1:9", DEAD_TOKEN, master))
        server = MemtraceServer(data, workers=2, env={
            "MEMTRACE_SERVER_LOG_FORMAT": "json", "MEMTRACE_SERVER_LOG_LEVEL": "info", "MEMTRACE_MASTER_KEY": master,
            "MEMTRACE_ARC_RETRY_BASE_MS": "20", "MEMTRACE_ARC_RETRY_MAX_MS": "50",
            "MEMTRACE_ARC_BREAKER_PROBE_INTERVAL_S": "0.05"})
        try:
            base = server.url
            ok = httpx.post(f"{base}/api/v1/memories", json={"agent_id": "a", "content": "hi"},
                            headers={"x-api-key": live.key, "x-request-id": "req-abc.123"})
            assert ok.status_code == 201, ok.text
            assert ok.headers["x-request-id"] == "req-abc.123"
            unsafe = httpx.get(f"{base}/health", headers={"x-request-id": "bad id\twith spaces" + "x" * 200})
            generated = unsafe.headers["x-request-id"]
            assert generated and " " not in generated and len(generated) <= 128
            assert httpx.get(f"{base}/health").headers["x-request-id"]
            # Sent in mixed case on the wire: Granian lowers header names, the id is still taken.
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: Mixed-Case.1\r\n\r\n")
                assert b"Mixed-Case.1" in raw.recv(65536)
            # Fresh ids are unique across requests and both workers.
            fresh = [httpx.get(f"{base}/health").headers["x-request-id"] for _ in range(60)]
            assert len(set(fresh)) == 60 and all(re.fullmatch(r"[0-9a-f]{24}", rid) for rid in fresh)
            wrong_key = "mtk_" + secrets.token_urlsafe(32)[:43]
            assert httpx.get(f"{base}/api/v1/memories", headers={"x-api-key": wrong_key}).status_code == 401
            assert httpx.get(f"{base}/api/v1/memories", headers={"authorization": f"Bearer {live.key}x"}
                             ).status_code == 401
            assert httpx.get(f"{base}/api/v1/nothing-here").status_code == 404
            assert httpx.post(f"{base}/api/v1/memories", content=b"{", headers={"x-api-key": live.key}
                              ).status_code == 400
            for i in range(5):
                httpx.post(f"{base}/api/v1/memories", json={"agent_id": "a", "content": f"d{i}"},
                           headers={"x-api-key": dead.key})
                httpx.get(f"{base}/api/v1/memories", headers={"x-api-key": dead.key})
            # delivery to the dead Arc retries every few tens of ms meanwhile: dozens of failures to fold
            wait_until(lambda: _failed_deliveries(httpx.get(f"{base}/metrics").text) >= 10,
                       "10 failed deliveries in /metrics")
        finally:
            server.stop()
        output = server.log_path.read_text(errors="replace")
    finally:
        arc.stop()

    records = json_lines(output)
    loggers = {r["logger"] for r in records}
    assert {"granian", "memtrace", "memtrace.access"} <= loggers, loggers
    access = [r for r in records if r["logger"] == "memtrace.access"]
    mine = [r for r in access if r.get("request_id") == "req-abc.123"]
    assert len(mine) == 1, access
    line = mine[0]
    assert (line["method"], line["route"], line["status"], line["org_id"]) == ("POST", "/api/v1/memories", 201,
                                                                               live.id)
    assert line["key_id"] and isinstance(line["duration_ms"], float)
    assert any(r.get("request_id") == generated for r in access)
    statuses = {r["status"] for r in access}
    assert {400, 401, 404} <= statuses
    for r in records:
        if r["level"] in ("warning", "error", "critical"):
            assert r.get("status", 500) >= 500, r
            assert "401" not in r["message"] and "not found" not in r["message"], r
    # Dozens of failed deliveries, folded into very few lines.
    delivery_lines = [r for r in records if r["logger"] == "memtrace.delivery"]
    assert 1 <= len(delivery_lines) <= 2, delivery_lines

    with sqlite3.connect(data / "memtrace.db") as conn:
        hashes = [h for (h,) in conn.execute("SELECT key_hash FROM api_keys")]
    arc_output = arc.log_path.read_text(errors="replace")
    json_lines(arc_output)
    for secret in (live.key, dead.key, wrong_key, ARC_TOKEN, DEAD_TOKEN, master, *hashes):
        assert secret not in output, secret[:8]
        assert secret not in arc_output, secret[:8]
