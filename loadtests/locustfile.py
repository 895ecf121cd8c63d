"""Memtrace load suites for locust (FastHttpUser), headless and bounded. Run them through `loadtests/run.py`,
which starts the stack on loopback, provisions the orgs and checks batching and routing at the end.

Scenarios (pick one user class on the locust command line):
- IngestSingle: POST one memory per request; many agents and sessions, several orgs (one key per org).
- IngestBatch100 / IngestBatch1000: POST `{"memories": [...]}` of 100 / 1,000 memories.
- Mixed: 80% writes (single), 20% reads (list, search, session context); on a sample of writes the
  memory is read back at once by id (read-your-writes): a miss is a locust failure named `ryw-miss`.

Environment:
- MT_TARGETS  JSON list of {"org_id", "key"} (required)
- MT_MAX_REQUESTS  stop after this many requests in this process (default 100000)
- MT_RYW_SAMPLE  fraction of Mixed writes read back (default 0.05)
- MT_TALLY_DIR  where each locust process writes `tally-<pid>.json`: memories created per org, RYW checks
- MT_RUN  a tag that makes contents unique per run (default: the time)
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment

TARGETS: list[dict[str, str]] = json.loads(os.environ.get("MT_TARGETS", "[]"))
MAX_REQUESTS = int(os.environ.get("MT_MAX_REQUESTS", "100000"))
RYW_SAMPLE = float(os.environ.get("MT_RYW_SAMPLE", "0.05"))
RUN = os.environ.get("MT_RUN") or str(time.time_ns())
AGENTS = 40
SESSIONS = 400

_seq = itertools.count()
created: Counter[str] = Counter()
ryw = Counter[str]()
_sent = itertools.count(1)


def memory(n: int) -> dict[str, Any]:
    return {
        "agent_id": f"agent_{n % AGENTS}",
        "session_id": f"sess_{n % SESSIONS}",
        "event_type": "error" if n % 20 == 0 else "tool_call",
        "memory_type": ("episodic", "episodic", "decision", "session", "entity")[n % 5],
        "content": f"{RUN}/{os.getpid()}/{n}: the agent read a file and decided to refactor it",
        "tags": ["load", f"t{n % 8}"],
        "metadata": {"tool": "grep", "n": n},
        "importance": (n % 10) / 10,
    }


class _Base(FastHttpUser):
    abstract = True
    wait_time = between(0, 0)

    def on_start(self) -> None:
        if not TARGETS:
            raise RuntimeError("MT_TARGETS is empty")
        self.target = TARGETS[random.randrange(len(TARGETS))]
        self.headers = {"x-api-key": self.target["key"], "content-type": "application/json"}

    def _count(self) -> None:
        if next(_sent) >= MAX_REQUESTS and self.environment.runner is not None:
            self.environment.runner.quit()

    def post_single(self) -> dict[str, Any] | None:
        self._count()
        with self.client.post("/api/v1/memories", json=memory(next(_seq)), headers=self.headers,
                              name="POST /memories (1)", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"status {resp.status_code}: {resp.text[:200] if resp.text else ''}")
                return None
            created[self.target["org_id"]] += 1
            body: dict[str, Any] = resp.json()
            return body

    def post_batch(self, size: int) -> None:
        self._count()
        items = [memory(next(_seq)) for _ in range(size)]
        with self.client.post("/api/v1/memories", json={"memories": items}, headers=self.headers,
                              name=f"POST /memories ({size})", catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(f"status {resp.status_code}: {resp.text[:200] if resp.text else ''}")
                return
            body = resp.json()
            created[self.target["org_id"]] += int(body["count"])
            if body["count"] + body["duplicates"] != size:
                resp.failure(f"count {body['count']} + duplicates {body['duplicates']} != {size}")


class IngestSingle(_Base):
    @task
    def single(self) -> None:
        self.post_single()


class IngestBatch100(_Base):
    @task
    def batch(self) -> None:
        self.post_batch(100)


class IngestBatch1000(_Base):
    @task
    def batch(self) -> None:
        self.post_batch(1000)


class Mixed(_Base):
    @task(80)
    def write(self) -> None:
        body = self.post_single()
        if body is None or random.random() >= RYW_SAMPLE:
            return
        self._count()
        with self.client.get(f"/api/v1/memories/{body['id']}", headers=self.headers, name="GET /memories/{id} (ryw)",
                             catch_response=True) as resp:
            got = resp.json() if resp.status_code == 200 else {}
            ok = got.get("id") == body["id"] and got.get("content") == body["content"]
            ryw["checked"] += 1
            if not ok:
                ryw["missed"] += 1
                resp.failure(f"ryw-miss: status {resp.status_code}, wrote {body['id']} {body['content'][:60]!r}, "
                             f"read {got.get('id')} {str(got.get('content'))[:60]!r}")

    @task(8)
    def list_recent(self) -> None:
        self._count()
        agent = f"agent_{random.randrange(AGENTS)}"
        self.client.get(f"/api/v1/memories?agent_id={agent}&since=1h&limit=50", headers=self.headers,
                        name="GET /memories?agent_id")

    @task(6)
    def search(self) -> None:
        self._count()
        body = {"content_contains": "refactor", "tags": ["load"], "memory_types": ["episodic", "decision"],
                "since": "1h", "limit": 20}
        self.client.post("/api/v1/search", json=body, headers=self.headers, name="POST /search")

    @task(6)
    def session_context(self) -> None:
        self._count()
        session = f"sess_{random.randrange(SESSIONS)}"
        self.client.post(f"/api/v1/sessions/{session}/context", json={"max_tokens": 1000}, headers=self.headers,
                         name="POST /sessions/{id}/context")


@events.quitting.add_listener
def _write_tally(environment: Environment, **_: Any) -> None:
    where = os.environ.get("MT_TALLY_DIR")
    if not where:
        return
    out = Path(where) / f"tally-{os.getpid()}.json"
    out.write_text(json.dumps({"created": dict(created), "ryw": dict(ryw)}))
