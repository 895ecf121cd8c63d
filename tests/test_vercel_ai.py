"""The Vercel AI SDK package (integrations/vercel-ai, TypeScript) passes its node tests against a real Memtrace +
embedded Arc started here: the AI SDK's mock language model drives memtraceTools through generateText's tool loop."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Stack

PACKAGE = Path(__file__).resolve().parents[1] / "integrations" / "vercel-ai"


def test_vercel_ai_package_passes_its_node_tests(stack: Stack) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("node/npm is not installed; the TypeScript package is not tested here")
    if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
        pytest.fail(f"the npm dependencies of {PACKAGE} are not installed: make node-deps", pytrace=False)
    env = {**os.environ, "MEMTRACE_URL": stack.server.url, "MEMTRACE_API_KEY": stack.tenant.key}
    done = subprocess.run([npm, "test"], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    passed = re.search(r"^# pass (\d+)$", done.stdout, flags=re.M)
    assert passed and int(passed.group(1)) >= 3 and re.search(r"^# fail 0$", done.stdout, flags=re.M), done.stdout


def test_docs_example_runs_against_the_built_package(stack: Stack) -> None:
    """docs/integrations/vercel-ai.md's example, run as the page says (from the package, after its build)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm is not installed; the TypeScript package is not tested here")
    if not (PACKAGE / "dist" / "src" / "index.js").exists():
        subprocess.run([npm, "run", "build"], cwd=PACKAGE, check=True, capture_output=True, timeout=120)
    page = PACKAGE.parents[1] / "docs" / "integrations" / "vercel-ai.md"
    [example] = re.findall(r"```js\n(.*?)```", page.read_text(), flags=re.S)
    script = PACKAGE / "dist" / "example.mjs"
    script.write_text(example)
    env = {**os.environ, "MEMTRACE_URL": stack.server.url, "MEMTRACE_API_KEY": stack.tenant.key}
    done = subprocess.run([node, str(script)], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "memories, most relevant first:" in done.stdout
    assert "docs_vercel note: The user drinks genmaicha." in done.stdout
