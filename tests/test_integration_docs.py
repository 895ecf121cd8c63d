"""Every example in docs/integrations/ runs as written against a real Memtrace + embedded Arc, and prints what the
page says it does (the recalled fact), so the docs cannot drift from the integrations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Stack

DOCS = Path(__file__).resolve().parents[1] / "docs" / "integrations"
# what each page's example must print: a fact stored in its first run and recalled in a later one
RECALLED = {
    "autogen.md": "recalled: ['The user drinks genmaicha.']",
    "langchain.md": "'human: My favourite tea is genmaicha.'",
    "langgraph.md": "'drinks genmaicha', 'You drink genmaicha.'",
    "llamaindex.md": "'<memory>\\n<memtrace>\\n- user: My favourite tea is genmaicha.\\n</memtrace>\\n</memory>'",
}


def python_examples(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_every_page_is_checked() -> None:
    assert sorted(p.name for p in DOCS.glob("*.md") if python_examples(p)) == sorted(RECALLED)


@pytest.mark.parametrize("page", sorted(RECALLED))
def test_example_runs_and_recalls(page: str, stack: Stack, tmp_path: Path) -> None:
    [example] = python_examples(DOCS / page)
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {**os.environ, "MEMTRACE_URL": stack.server.url, "MEMTRACE_API_KEY": stack.tenant.key}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert RECALLED[page] in done.stdout, done.stdout
