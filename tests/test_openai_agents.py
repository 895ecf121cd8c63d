"""memtrace.integrations.openai_agents against a real Memtrace + embedded Arc: an Agent driven by a scripted Model
(no network) whose tool calls store and recall memories, and MemtraceSession round-tripping conversation items."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

try:
    from agents import Agent, ModelResponse, RunConfig, Runner, Usage
    from agents.items import TResponseInputItem
    from agents.models.interface import Model, ModelTracing
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
except ImportError as exc:  # the extra is part of `make test`; a missing SDK is a broken setup, not a skip
    pytest.fail(f"openai-agents is not importable ({exc}); install it with: pip install -e '.[openai-agents]'",
                pytrace=False)

from memtrace.client import AsyncMemtraceClient, NotFoundError
from memtrace.integrations.openai_agents import CLEAR_EVENT, ITEM_EVENT, POP_EVENT, MemtraceSession, memtrace_tools
from tests.conftest import Stack

RUN = RunConfig(tracing_disabled=True)


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --- a scripted Model: the SDK's own Model interface, no network ----------------------------------------------


def tool_call(name: str, **arguments: Any) -> ResponseFunctionToolCall:
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    return ResponseFunctionToolCall(id=f"fc_{call_id}", call_id=call_id, name=name, arguments=json.dumps(arguments),
                                    type="function_call", status="completed")


def message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(id=f"msg_{uuid.uuid4().hex[:12]}", role="assistant", status="completed",
                                 type="message", content=[ResponseOutputText(text=text, type="output_text",
                                                                             annotations=[])])


Step = Callable[[list[dict[str, Any]]], list[Any]]


class ScriptedModel(Model):
    """Answers each model call with the next scripted step; a step sees the input items (tool outputs included)."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.calls: list[tuple[str | None, list[dict[str, Any]]]] = []

    async def get_response(self, system_instructions: str | None, input: str | list[TResponseInputItem],
                           model_settings: Any, tools: list[Any], output_schema: Any, handoffs: list[Any],
                           tracing: ModelTracing, *, previous_response_id: str | None, conversation_id: str | None,
                           prompt: Any) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else [dict(i) for i in input]
        self.calls.append((system_instructions, items))
        assert {t.name for t in tools} >= {"remember", "recall", "search", "decide"}
        if not self.steps:
            raise AssertionError("the scripted model was called more times than scripted")
        return ModelResponse(output=self.steps.pop(0)(items), usage=Usage(), response_id=None)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")
        yield


def outputs(items: list[dict[str, Any]]) -> list[str]:
    return [str(i["output"]) for i in items if i.get("type") == "function_call_output"]


@pytest.fixture
async def mt(stack: Stack) -> AsyncIterator[AsyncMemtraceClient]:
    async with AsyncMemtraceClient(stack.server.url, stack.tenant.key) as client:
        yield client


# --- tools ------------------------------------------------------------------------------------------------------


async def test_agent_tool_calls_store_and_recall_memories(mt: AsyncMemtraceClient) -> None:
    agent_id = uid("researcher")
    session = await MemtraceSession.create(mt, agent_id, metadata={"topic": "pricing"}, tags=["study"])
    fact = f"Competitor X charges 12 EUR per seat ({uuid.uuid4().hex[:6]})"
    model = ScriptedModel([
        lambda _: [tool_call("remember", content=fact, event_type="finding", importance=0.8, tags=["pricing"]),
                   tool_call("decide", decision="Price at 10 EUR per seat", reasoning="undercut competitor X",
                             importance=0.9)],
        lambda items: [tool_call("recall", since="1h", limit=10), tool_call("search", query="competitor x", limit=5)],
        lambda items: [message("Findings:\n" + "\n".join(outputs(items)[-2:]))],
    ])
    agent = Agent(name="researcher", model=model,
                  instructions=session.instructions("You research pricing."),
                  tools=memtrace_tools(mt, agent_id, session_id=session.session_id, tags=["study"]))
    result = await Runner.run(agent, "Research competitor pricing.", session=session, run_config=RUN)

    assert not model.steps
    # recall and search answered with what remember/decide stored, and that reached the model's final answer
    assert fact in result.final_output
    assert "Price at 10 EUR per seat (why: undercut competitor X)" in result.final_output
    # the injected context is fetched per turn: the last turn's instructions show the decision made in turn one
    first_instructions, last_instructions = model.calls[0][0] or "", model.calls[-1][0] or ""
    assert first_instructions.startswith("You research pricing.\n\n## Session Context")
    assert "### Decisions Made (1)" in last_instructions and "Price at 10 EUR per seat" in last_instructions

    finding = (await mt.search(agent_id=agent_id, event_types=["finding"])).results
    assert [m.content for m in finding] == [fact]
    assert (finding[0].session_id, sorted(finding[0].tags), finding[0].importance) == (
        session.session_id, ["pricing", "study"], 0.8)
    decision = (await mt.list_memories(session_id=session.session_id, memory_type="decision")).memories
    assert [(m.content, m.metadata["reasoning"], m.tags) for m in decision] == [
        ("Price at 10 EUR per seat", "undercut competitor X", ["study"])]

    # the run's conversation was stored in the session: user input, 4 calls, 4 outputs, final message
    items = await session.get_items()
    assert [i.get("type", "message") for i in items] == ["message"] + ["function_call"] * 2 + \
        ["function_call_output"] * 2 + ["function_call"] * 2 + ["function_call_output"] * 2 + ["message"]
    assert items[0] == {"content": "Research competitor pricing.", "role": "user"}

    # a second run gets that history from the session
    model2 = ScriptedModel([lambda items: [message(f"I see {len(items)} items")]])
    agent2 = agent.clone(model=model2)
    again = await Runner.run(agent2, "What did you find?", session=session, run_config=RUN)
    assert again.final_output == "I see 11 items"
    assert len(await session.get_items()) == 12


async def test_repeated_remember_is_reported_not_raised(mt: AsyncMemtraceClient) -> None:
    agent_id = uid("agent")
    note = f"the user prefers metric units {uuid.uuid4().hex[:6]}"
    model = ScriptedModel([
        lambda _: [tool_call("remember", content=note, event_type="user_preference", importance=0.5, tags=None)],
        lambda _: [tool_call("remember", content=note, event_type="user_preference", importance=0.5, tags=None)],
        lambda items: [message(outputs(items)[-1])],
    ])
    agent = Agent(name="a", model=model, tools=memtrace_tools(mt, agent_id))
    result = await Runner.run(agent, "remember twice", run_config=RUN)
    assert result.final_output == "already remembered (an identical memory was stored recently)"
    assert (await mt.recall(agent_id)).count == 1


def test_tool_factory_rejects_bad_arguments(stack: Stack) -> None:
    client = AsyncMemtraceClient(stack.server.url, stack.tenant.key)
    assert [t.name for t in memtrace_tools(client, "a", include=("recall", "decide"))] == ["recall", "decide"]
    with pytest.raises(ValueError, match="unknown Memtrace tool"):
        memtrace_tools(client, "a", include=("forget",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session_id"):
        memtrace_tools(client, "a", search_scope="session")


# --- the session protocol ------------------------------------------------------------------------------------


async def test_session_round_trips_items_with_pop_and_clear(mt: AsyncMemtraceClient) -> None:
    session = MemtraceSession(mt, uid("sess"), uid("agent"))
    assert await session.get_items() == [] and await session.pop_item() is None
    await session.clear_session()  # nothing to clear is fine

    hello: TResponseInputItem = {"role": "user", "content": "hello"}
    items: list[TResponseInputItem] = [
        hello,
        {"type": "function_call", "call_id": "c1", "name": "recall", "arguments": "{}", "id": "fc_1",
         "status": "completed"},
        {"type": "function_call_output", "call_id": "c1", "output": "nothing remembered"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "hi ✓", "annotations": []}],
         "type": "message", "id": "msg_1", "status": "completed"},
        hello,  # identical content twice: each item has its own dedup key, so this is no 409
    ]
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=2) == items[-2:]
    assert await session.get_items(limit=0) == []

    big: TResponseInputItem = {"role": "user", "content": "x" * 30_000 + "é" * 9_000}  # split across memories
    await session.add_items([big])
    fresh = MemtraceSession(mt, session.session_id, "other_agent")  # a second reader/writer on the same session
    assert await fresh.get_items() == [*items, big]

    assert await session.pop_item() == big
    assert await fresh.pop_item() == hello
    assert await session.get_items() == items[:4]

    await fresh.add_items([{"role": "user", "content": "from the other writer"}])
    await session.add_items([{"role": "user", "content": "after a stale sequence"}])  # collides, retries
    tail = [i["content"] for i in (await session.get_items())[-2:]]  # type: ignore[typeddict-item]
    assert tail == ["from the other writer", "after a stale sequence"]

    await session.clear_session()
    assert await session.get_items() == [] and await fresh.get_items() == []
    await session.add_items([hello])
    assert await fresh.get_items() == [hello]

    # pops and clears really deleted: only the item added after the clear is stored, and no tombstones
    stored = (await mt.session_memories(session.session_id, limit=1000)).memories
    assert [(m.event_type, m.content) for m in stored] == [(ITEM_EVENT, "user: hello")]
    assert all(m.memory_type == "session" for m in stored)
    assert not {POP_EVENT, CLEAR_EVENT} & {m.event_type for m in stored}


async def test_pop_deletes_every_part_and_the_sequence_can_be_reused(mt: AsyncMemtraceClient) -> None:
    session = MemtraceSession(mt, uid("sess"), uid("agent"))
    big: TResponseInputItem = {"role": "user", "content": "y" * 20_000}
    await session.add_items([{"role": "user", "content": "first"}, big])
    parts = [m for m in (await mt.session_memories(session.session_id, limit=100)).memories
             if "(part" in m.content]
    assert len(parts) == 3
    assert await session.pop_item() == big
    for part in parts:
        with pytest.raises(NotFoundError):
            await mt.get_memory(part.id)
    again = MemtraceSession(mt, session.session_id, "someone_else")  # a new process: seq 1 is free again
    await again.add_items([big])
    assert await session.get_items() == [{"role": "user", "content": "first"}, big]


async def test_session_settings_limit_and_context(mt: AsyncMemtraceClient) -> None:
    from agents.memory import SessionSettings

    agent_id = uid("agent")
    session = await MemtraceSession.create(mt, agent_id, session_settings=SessionSettings(limit=1))
    await session.add_items([{"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
    assert await session.get_items() == [{"role": "user", "content": "two"}]
    assert len(await session.get_items(limit=5)) == 2
    await mt.decide(agent_id, "use Postgres", "team knows it", session_id=session.session_id)
    context = await session.context()
    assert "### Decisions Made (1)" in context and "use Postgres (why: team knows it)" in context
    assert "Session State" not in context  # conversation items are history, not context
    assert "Session State (2)" in await session.context(include_types=["session"])
