"""Property test: schemathesis drives every operation of /openapi.json against the real server (2 Granian workers,
arclite behind it) with a valid key. No answer may be a 5xx, and every answer must be documented: its status,
content type, headers and body schema.

Each operation runs with schema-valid data (positive) and with data that breaks the schema somewhere (negative);
operations with path parameters run once more with the ids of an agent, session and memory that exist, so the
fuzzed queries and bodies reach real resources rather than only 404s. Run with `-s` to see what was answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memtrace.api.openapi import OPERATIONS
from tests.conftest import Stack, running_stack

EXAMPLES = 25
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("fuzz"), "fuzz", workers=2) as running:
        yield running


def _existing(stack: Stack, tag: str) -> dict[str, str]:
    """An agent, a session and a memory in it, by the path parameter names that address them."""
    with stack.client() as api:
        agent = api.post("/api/v1/agents", json={"name": f"fuzzer_{tag}"}).json()
        session = api.post("/api/v1/sessions", json={"agent_id": agent["name"]}).json()
        memory = api.post("/api/v1/memories", json={"agent_id": agent["name"], "session_id": session["id"],
                                                    "content": "seen by the fuzzer", "tags": ["fuzz"]}).json()
    return {"agent": agent["name"], "session_id": session["id"], "memory_id": memory["id"]}


def _drive(strategy: SearchStrategy[schemathesis.Case], stack: Stack, session: requests.Session,
           seen: Counter[int]) -> None:
    headers = {"x-api-key": stack.tenant.key}

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: schemathesis.Case) -> None:
        response = case.call(base_url=stack.server.url, session=session, headers=headers, allow_redirects=False,
                             timeout=30)
        seen[response.status_code] += 1
        assert response.status_code < 500, f"{response.status_code} {response.text}"
        case.validate_response(response, checks=CHECKS, headers=headers)

    answers_as_documented()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(fuzz_stack: Stack, mode: GenerationMode) -> None:
    document = httpx.get(f"{fuzz_stack.server.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)  # from_url would leave the document's own route out
    existing = _existing(fuzz_stack, mode.value)
    failures: dict[str, str] = {}
    statuses: dict[str, Counter[int]] = {}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            params = {p["name"] for p in document["paths"][operation.path][operation.method].get("parameters", ())
                      if p["in"] == "path"}
            runs: list[tuple[str, dict[str, Any] | None]] = [(operation.label, None)]
            if params <= set(existing) and params:
                runs.append((f"{operation.label} (existing)", {name: existing[name] for name in params}))
            for label, path_parameters in runs:
                seen = statuses.setdefault(label, Counter())
                try:
                    _drive(operation.as_strategy(generation_mode=mode, path_parameters=path_parameters),
                           fuzz_stack, session, seen)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, label  # a parameterless GET has nothing to break
                except Exception as exc:  # collect every operation's failure, then fail once with all of them
                    failures[label] = f"{type(exc).__name__}: {exc}"[:3000]
    for label, counts in statuses.items():
        print(f"{mode.value} {label}: {dict(sorted(counts.items()))}")
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
    assert {label.removesuffix(" (existing)") for label in statuses} == {f"{op.method} {op.path}" for op in OPERATIONS}
