"""The README's tour, run as written against `memtrace dev`: its shell commands (twice: the second run meets the
409 the README explains) and its Python snippets, the bundled client in this environment and, where the test
run has it (make pytest), the published `memtrace-sdk` in its own."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import REPO, Proc, free_port
from tests.waiting import wait_until

README = REPO / "README.md"
SDK_PYTHON = Path(os.environ.get("MEMTRACE_SDK_PYTHON", REPO / ".venv-sdk" / "bin" / "python"))


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def _tour() -> list[str]:
    """The tour's shell commands, one string each (a command ends where its quotes and line continuations do)."""
    (block,) = [b for b in _blocks("sh") if "export MTK=" in b]
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if pending.strip():
            commands.append(pending)
        pending = ""
    assert not pending, f"unterminated command in the README's tour: {pending}"
    assert commands[0].startswith("export MTK="), commands[0]
    return commands[1:]  # the test exports MTK itself


def _python(marker: str) -> str:
    (block,) = [b for b in _blocks("python") if marker in b]
    return block


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`memtrace dev` as `make run` starts it; yields (base URL, the printed key)."""
    port, arc_port = free_port(), free_port()
    proc = Proc([sys.executable, "-m", "memtrace", "dev", "--port", str(port), "--arc-port", str(arc_port)],
                cwd=tmp_path_factory.mktemp("readme"))
    try:
        proc.wait_ready(f"http://127.0.0.1:{port}/health", timeout=60)
        found = wait_until(lambda: re.search(r"API key: (mtk_\S+)", proc.output()), "the key in the banner", 30)
        yield f"http://127.0.0.1:{port}", found.group(1)
    finally:
        proc.stop()


def _run_tour(base: str, key: str) -> list[dict[str, Any]]:
    answers = []
    for command in _tour():
        local = command.replace("localhost:9100", base.removeprefix("http://"))
        done = subprocess.run(["sh", "-c", local], env={**os.environ, "MTK": key}, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, (command, done.stderr)
        answers.append(json.loads(done.stdout))
    return answers


def test_the_tour_runs_as_written_and_a_second_run_meets_the_409(dev: tuple[str, str]) -> None:
    base, key = dev
    created, listed, found, ranked, recalled, context, agent, session = _run_tour(base, key)
    assert created["id"].startswith("mem_") and created["agent_id"] == "researcher", created
    assert (agent["name"], agent["created_at"]) == ("researcher", created["time"]), agent
    assert (session["id"], session["agent_id"], session["status"]) == ("sess_demo", "researcher", "active"), session
    assert [m["id"] for m in listed["memories"]] == [created["id"]], listed
    assert created["id"] in {m["id"] for m in found["results"]}, found
    assert ranked["results"][0]["id"] == created["id"] and ranked["results"][0]["score"] > 0, ranked
    assert [m["id"] for m in recalled["memories"]] == [created["id"]], recalled
    assert created["content"] in recalled["context"] and recalled["token_estimate"] <= 300, recalled
    assert created["content"] in context["context"], context
    again = _run_tour(base, key)
    assert "error" in again[0] and "id" not in again[0], again[0]  # the 409 the README explains: stored once
    assert [m["id"] for m in again[1]["memories"]] == [created["id"]]
    assert again[5]["context"] == context["context"]


def _run_python(python: Path | str, code: str, base: str, key: str) -> subprocess.CompletedProcess[str]:
    """`code` run by `python` outside the checkout (whose `memtrace` directory would shadow the SDK's)."""
    local = code.replace("http://localhost:9100", base)
    return subprocess.run([str(python), "-X", "dev", "-c", local], env={**os.environ, "MTK": key},
                          cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=60)


def test_the_python_snippet_runs_in_the_environment_make_creates(dev: tuple[str, str]) -> None:
    base, key = dev
    done = _run_python(sys.executable, _python("from memtrace.client import"), base, key)
    assert done.returncode == 0, done.stderr
    assert "User prefers dark mode" in done.stdout and "Skip pagination" in done.stdout, done.stdout
    assert "Unclosed" not in done.stderr and "Warning" not in done.stderr, done.stderr  # -X dev shows them all


def test_the_sdk_snippet_runs_in_its_own_environment(dev: tuple[str, str]) -> None:
    if not SDK_PYTHON.exists():
        pytest.skip(f"no memtrace-sdk environment at {SDK_PYTHON} (make .venv-sdk/.installed)")
    base, key = dev
    code = _python("from memtrace import Memtrace").replace('"researcher"', '"sdk_researcher"')  # not a duplicate
    done = _run_python(SDK_PYTHON, code, base, key)
    assert done.returncode == 0, done.stderr
    assert "User prefers dark mode" in done.stdout and "Skip pagination" in done.stdout, done.stdout
    assert "Unclosed" not in done.stderr and "Warning" not in done.stderr, done.stderr
