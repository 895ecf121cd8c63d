"""memtrace.integrations.autogen against a real Memtrace + embedded Arc: MemtraceMemory implements AutoGen's Memory
protocol, and an AutoGen AssistantAgent driven by autogen-ext's ReplayChatCompletionClient remembers in one run
(a tool call adds to memory) and recalls in a fresh one (update_context puts the memory in the model's context)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

try:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.messages import MemoryQueryEvent
    from autogen_core import FunctionCall
    from autogen_core.memory import MemoryContent, MemoryMimeType
    from autogen_core.model_context import UnboundedChatCompletionContext
    from autogen_core.models import CreateResult, LLMMessage, ModelInfo, RequestUsage, SystemMessage, UserMessage
    from autogen_ext.models.replay import ReplayChatCompletionClient
except ImportError as exc:  # the extra is part of `make test`; a missing framework is a broken setup, not a skip
    pytest.fail(f"autogen is not importable ({exc}): pip install -e '.[dev]'", pytrace=False)

from memtrace.client import MemtraceClient
from memtrace.integrations.autogen import MEMORY_EVENT, MemtraceMemory
from tests.conftest import Stack


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def text(content: str, **metadata: Any) -> MemoryContent:
    return MemoryContent(content=content, mime_type=MemoryMimeType.TEXT, metadata=metadata or None)


async def test_memory_adds_queries_updates_context_and_clears(stack: Stack, sync_mt: MemtraceClient) -> None:
    word = uuid.uuid4().hex[:8]
    memory = MemtraceMemory(client=sync_mt, agent_id=uid("ag"), session_id=uid("s"), tags=["prefs"], k=2)
    await memory.add(text(f"prefers metric units {word}", source="user"))
    await memory.add(text(f"prefers metric units {word}"))  # the same again is skipped, not an error
    await memory.add(MemoryContent(content={"tea": "genmaicha", "word": word}, mime_type=MemoryMimeType.JSON))
    await memory.add(MemoryContent(content=f"# Style {word}\nterse", mime_type=MemoryMimeType.MARKDOWN))
    with pytest.raises(ValueError, match="not image"):
        await memory.add(MemoryContent(content=b"\x89PNG", mime_type=MemoryMimeType.IMAGE))

    found = (await memory.query(f"METRIC UNITS {word}")).results  # ranked: the best match first
    assert (found[0].content, found[0].mime_type) == (f"prefers metric units {word}", "text/plain")
    meta = found[0].metadata or {}
    assert (meta["agent_id"], meta["session_id"], meta["event_type"], meta["tags"]) == (
        memory.agent_id, memory.session_id, MEMORY_EVENT, ["prefs"])
    assert meta["metadata"] == {"source": "user", "mime_type": "text/plain"} and meta["score"] > 0
    every = (await memory.query(MemoryContent(content=word, mime_type=MemoryMimeType.TEXT), k=3)).results
    assert sorted(r.mime_type for r in every) == ["application/json", "text/markdown", "text/plain"]
    assert {"tea": "genmaicha", "word": word} in [r.content for r in every]
    assert len((await memory.query(word)).results) == 2  # k

    context = UnboundedChatCompletionContext([UserMessage(content=f"metric units {word}", source="user")])
    updated = await memory.update_context(context)
    assert updated.memories.results[0].content == f"prefers metric units {word}"
    messages = await context.get_messages()
    assert isinstance(messages[-1], SystemMessage) and str(messages[-1].content).startswith(
        f"\nRelevant memory content (most relevant first):\n1. prefers metric units {word}\n")
    quiet = UnboundedChatCompletionContext([UserMessage(content="nothing like it", source="user")])
    assert (await memory.update_context(quiet)).memories.results == [] and len(await quiet.get_messages()) == 1

    restored = MemtraceMemory.load_component(MemtraceMemory(stack.server.url, stack.tenant.key, agent_id="x",
                                                            k=7).dump_component())
    assert isinstance(restored, MemtraceMemory) and (restored.agent_id, restored.k) == ("x", 7)
    await restored.close()

    await memory.clear()
    assert (await memory.query(word)).results == []
    assert sync_mt.search(agent_id=memory.agent_id).results == []  # really forgotten


class RecordingReplayClient(ReplayChatCompletionClient):
    """autogen-ext's scripted model client, also keeping the messages of every call (what the model was shown)."""

    def __init__(self, completions: Sequence[str | CreateResult]) -> None:
        super().__init__(list(completions), model_info=ModelInfo(
            vision=False, function_calling=True, json_output=False, family="unknown", structured_output=False))
        self.prompts: list[list[LLMMessage]] = []

    async def create(self, messages: Sequence[LLMMessage], *args: Any, **kwargs: Any) -> CreateResult:
        self.prompts.append(list(messages))
        return await super().create(messages, *args, **kwargs)


def tool_call(name: str, arguments: str) -> CreateResult:
    return CreateResult(finish_reason="function_calls", usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
                        cached=False, content=[FunctionCall(id=f"call_{uuid.uuid4().hex[:8]}", name=name,
                                                            arguments=arguments)])


async def test_agent_remembers_in_one_run_and_recalls_in_a_fresh_one(stack: Stack) -> None:
    agent_id, fact = uid("assistant"), f"the user drinks genmaicha-{uuid.uuid4().hex[:6]}"

    def assistant(model: RecordingReplayClient, memory: MemtraceMemory) -> AssistantAgent:
        async def remember(fact: str) -> str:
            """Remember a fact about the user for later conversations."""
            await memory.add(text(fact))
            return "remembered"

        return AssistantAgent("assistant", model_client=model, memory=[memory], tools=[remember],
                              reflect_on_tool_use=True)

    first_memory = MemtraceMemory(stack.server.url, stack.tenant.key, agent_id=agent_id)
    first = RecordingReplayClient([tool_call("remember", f'{{"fact": "{fact}"}}'), "I will remember that."])
    result = await assistant(first, first_memory).run(task=f"Please remember: {fact}")
    assert result.messages[-1].to_text() == "I will remember that."
    await first_memory.close()

    second_memory = MemtraceMemory(stack.server.url, stack.tenant.key, agent_id=agent_id)
    second = RecordingReplayClient(["You drink genmaicha."])
    result = await assistant(second, second_memory).run(task="genmaicha")
    await second_memory.close()
    assert result.messages[-1].to_text() == "You drink genmaicha."
    [event] = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
    assert [c.content for c in event.content] == [fact]
    shown = [m.content for m in second.prompts[0] if isinstance(m, SystemMessage)]
    assert f"\nRelevant memory content (most relevant first):\n1. {fact}\n" in shown
