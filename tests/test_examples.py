"""Every cookbook in examples/ runs end to end with `--offline` (scripted model, real Memtrace + embedded Arc), and
the memories it reports are really stored: read back over the HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Stack

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ["claude/single_agent.py", "claude/multi_agent.py", "openai/single_agent.py", "openai/multi_agent.py"]


def run_example(script: str, stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env |= {"MEMTRACE_URL": stack.server.url, "MEMTRACE_API_KEY": stack.tenant.key, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def summary_of(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("SUMMARY ")]
    assert len(lines) == 1, stdout
    summary: dict[str, Any] = json.loads(lines[0].removeprefix("SUMMARY "))
    return summary


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_offline_and_stores_what_it_reports(script: str, stack: Stack, api: httpx.Client) -> None:
    check_offline_run(script, stack, api)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_again_against_the_same_server(script: str, stack: Stack, api: httpx.Client) -> None:
    """Issue 11: a second run (same agents, same content) must succeed too, in a session of its own."""
    first = check_offline_run(script, stack, api)
    second = check_offline_run(script, stack, api)
    assert first["session_id"] != second["session_id"]
    assert not set(first["memory_ids"]) & set(second["memory_ids"])


def check_offline_run(script: str, stack: Stack, api: httpx.Client) -> dict[str, Any]:
    """Run `script --offline` once and check that what it reports is really stored; returns its summary."""
    done = run_example(script, stack, "--offline")
    print(done.stdout)  # shown by pytest when the test fails
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    summary = summary_of(done.stdout)
    session_id, agents, tags = summary["session_id"], summary["agents"], summary["tags"]
    assert len(agents) == (2 if "multi" in script else 1)

    session = api.get(f"/api/v1/sessions/{session_id}")
    assert session.status_code == 200 and session.json()["status"] == "closed"
    resp = api.get(f"/api/v1/sessions/{session_id}/memories", params={"limit": 1000, "order": "asc"})
    assert resp.status_code == 200
    stored = {m["id"]: m for m in resp.json()["memories"]}
    assert set(summary["memory_ids"]) <= set(stored), "a reported memory is missing from the session"
    assert set(stored) == set(summary["memory_ids"])
    for memory_id in summary["memory_ids"]:
        assert api.get(f"/api/v1/memories/{memory_id}").json()["session_id"] == session_id
        assert set(tags) <= set(stored[memory_id]["tags"])
    # every agent wrote into the shared session, and there is a decision with its reasoning
    assert {m["agent_id"] for m in stored.values()} == set(agents)
    decisions = [stored[i] for i in summary["decision_ids"]]
    assert decisions and all(d["memory_type"] == "decision" and d["metadata"]["reasoning"] for d in decisions)
    tagged = api.get("/api/v1/memories", params={"session_id": session_id, "tags": ",".join(tags), "limit": 1000})
    assert tagged.json()["count"] == len(stored)
    # the session context the example printed comes from the same memories
    context = api.post(f"/api/v1/sessions/{session_id}/context", json={}).json()
    assert context["memory_count"] == len(stored) and "### Decisions Made" in context["context"]
    assert "## Session Context" in done.stdout

    if "multi" in script:  # the second agent read the first agent's work through the shared session
        writer_final = done.stdout.split("writer:", 1)[1]
        researcher_notes = [m["content"] for m in stored.values() if m["agent_id"] == agents[0]]
        assert any(note in writer_final for note in researcher_notes), done.stdout
    return summary


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_without_provider_key_or_offline_fails_clearly(script: str, stack: Stack) -> None:
    done = run_example(script, stack)
    assert done.returncode != 0
    assert "--offline" in done.stderr


def test_examples_readme_links_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert f"({script})" in readme, script
