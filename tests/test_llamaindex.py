"""memtrace.integrations.llamaindex against a real Memtrace + embedded Arc: the memory block puts and gets through
Memtrace within its token budget, and a LlamaIndex FunctionAgent driven by llama-index's own mock function-calling
LLM remembers in one run (messages flushed from short-term memory) and recalls in a fresh one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

try:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms import ChatMessage
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.memory import Memory
    from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
except ImportError as exc:  # the extra is part of `make test`; a missing framework is a broken setup, not a skip
    pytest.fail(f"llama-index-core is not importable ({exc}): pip install -e '.[dev]'", pytrace=False)

from memtrace.client import MemtraceClient
from memtrace.integrations.llamaindex import MESSAGE_EVENT, MemtraceMemoryBlock
from tests.conftest import Stack


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    """The Memory's short-term chat store (LlamaIndex's default, in-memory SQLite), closed after the test."""
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    yield engine
    await engine.dispose()


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


async def test_block_puts_and_gets_within_its_token_budget(sync_mt: MemtraceClient) -> None:
    word = uuid.uuid4().hex[:8]
    block = MemtraceMemoryBlock(agent_id=uid("li"), client=sync_mt, tags=["chat"])
    messages = [user(f"note {i} {word} " + "x" * 40) for i in range(4)]
    await block.aput([*messages, ChatMessage(role="assistant", content=f"noted {word}"), ChatMessage(role="user")])
    await block.aput(messages[:1])  # a message remembered already is skipped, not an error
    stored = sync_mt.search(agent_id=block.agent_id).results
    assert sorted(m.content for m in stored) == sorted([f"user: {m.content}" for m in messages] + [
        f"assistant: noted {word}"])
    assert {(m.event_type, tuple(m.tags), m.memory_type) for m in stored} == {(MESSAGE_EVENT, ("chat",), "episodic")}

    got = await block.aget([ChatMessage(role="assistant", content="?"), user(f"NOTE 3 {word}")])
    assert got.splitlines()[0] == f"- user: {messages[3].content}"  # the most relevant first
    everything = (await block.aget([user(word)])).splitlines()
    assert sorted(everything) == sorted([f"- user: {m.content}" for m in messages] + [f"- assistant: noted {word}"])
    assert await block.aget([user("nothing matches this")]) == "" and await block.aget([]) == ""

    small = MemtraceMemoryBlock(agent_id=block.agent_id, client=sync_mt, max_tokens=40)
    assert len((await small.aget([user(word)])).splitlines()) == 2  # each line is about 18 tokens
    truncated = await block.atruncate("\n".join(everything), 10)  # one line of about 17 tokens saves enough
    assert truncated is not None and truncated.splitlines() == everything[:4]
    assert await block.atruncate("\n".join(everything), 10_000) is None


async def test_memory_truncates_the_block_to_its_token_limit(sync_mt: MemtraceClient, engine: AsyncEngine) -> None:
    word = uuid.uuid4().hex[:8]
    block = MemtraceMemoryBlock(agent_id=uid("li"), client=sync_mt)
    await block.aput([user(f"fact {i} {word} " + "y" * 80) for i in range(6)])
    memory = Memory.from_defaults(session_id=uid("s"), token_limit=120, memory_blocks=[block], async_engine=engine)
    full = await block.aget([user(word)])
    inserted = await memory.aget(input=word)
    text = inserted[0].content or ""
    assert inserted[0].role.value == "system" and 0 < text.count(f"{word} ") < full.count(f"{word} ") == 6


class Recorder:
    """The response function of llama-index's MockFunctionCallingLLM: answers "ok", keeps each prompt."""

    def __init__(self) -> None:
        self.prompts: list[list[tuple[str, str]]] = []

    def __call__(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self.prompts.append([(m.role.value, m.content or "") for m in messages])
        return ChatMessage(role="assistant", content="ok")


# llama-index-workflows inspects the agent (a pydantic model) with inspect.getmembers, reading attributes that
# pydantic reports as deprecated (`__fields__`, `model_computed_fields` on an instance)
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")
async def test_agent_remembers_in_one_run_and_recalls_in_a_fresh_one(stack: Stack) -> None:
    agent_id, fact = uid("li_agent"), f"My favourite tea is genmaicha-{uuid.uuid4().hex[:6]}"

    async def run(questions: list[str]) -> Recorder:
        engine = create_async_engine("sqlite+aiosqlite:///:memory:")
        block = MemtraceMemoryBlock(agent_id=agent_id, url=stack.server.url, api_key=stack.tenant.key)
        try:  # a short short-term memory: older turns are flushed to the blocks, i.e. to Memtrace
            memory = Memory.from_defaults(session_id=uid("s"), token_limit=30, chat_history_token_ratio=0.5,
                                          token_flush_size=10, memory_blocks=[block], async_engine=engine)
            recorder = Recorder()
            agent = FunctionAgent(tools=[], llm=MockFunctionCallingLLM(response_generator=recorder),
                                  system_prompt="Be kind.")
            for question in questions:
                assert str(await agent.run(user_msg=question, memory=memory)) == "ok"
            return recorder
        finally:
            block.close()
            await engine.dispose()

    first = await run([fact, "Thanks, that is all for today."])
    assert first.prompts[0] == [("system", "Be kind."), ("user", fact)]
    second = await run(["genmaicha"])
    assert second.prompts[0] == [("system", "Be kind."),
                                 ("system", f"<memory>\n<memtrace>\n- user: {fact}\n</memtrace>\n</memory>"),
                                 ("user", "genmaicha")]
