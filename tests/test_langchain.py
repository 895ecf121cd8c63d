"""memtrace.integrations.langchain against a real Memtrace + embedded Arc: the chat history round-trips messages,
a LangChain chain driven by langchain-core's own fake chat model remembers in one run and recalls in a fresh one,
and the retriever passes langchain-tests' standard retriever tests."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest

try:
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.retrievers import BaseRetriever
    from langchain_tests.integration_tests import RetrieversIntegrationTests

    from tests.lcfakes import RecordingChatModel, uid
except ImportError as exc:  # the extra is part of `make test`; a missing framework is a broken setup, not a skip
    pytest.fail(f"langchain-core / langchain-tests are not importable ({exc}): pip install -e '.[dev]'", pytrace=False)

from memtrace.client import MemtraceClient
from memtrace.integrations.langchain import MESSAGE_EVENT, MemtraceChatMessageHistory, MemtraceRetriever
from tests.conftest import Stack

# --- the chat history -------------------------------------------------------------------------------------


async def test_history_round_trips_messages_in_order_with_roles_and_clears(stack: Stack,
                                                                           sync_mt: MemtraceClient) -> None:
    history = MemtraceChatMessageHistory(uid("sess"), uid("agent"), stack.server.url, stack.tenant.key)
    try:
        assert history.messages == [] and await history.aget_messages() == []
        history.clear()  # nothing to clear is fine
        conversation: list[BaseMessage] = [
            SystemMessage("You are terse."),
            HumanMessage("hello"),
            AIMessage("", tool_calls=[{"name": "recall", "args": {"since": "1h"}, "id": "call_1"}]),
            ToolMessage("nothing remembered ✓", tool_call_id="call_1"),
            AIMessage("hi"),
            HumanMessage("hello"),  # the same text twice is a second message, not a duplicate
        ]
        history.add_messages(conversation[:3])
        await history.aadd_messages(conversation[3:])
        assert history.messages == conversation
        other = MemtraceChatMessageHistory(history.session_id, "other_agent", client=sync_mt)  # a second reader/writer
        assert await other.aget_messages() == conversation
        other.add_user_message("from the other writer")
        await history.aadd_messages([AIMessage("after it")])
        assert [m.content for m in history.messages[-2:]] == ["from the other writer", "after it"]

        stored = sync_mt.session_memories(history.session_id, order="asc").memories
        assert [(m.memory_type, m.event_type) for m in stored] == [("session", MESSAGE_EVENT)] * 8
        assert [m.content for m in stored[:2]] == ["system: You are terse.", "human: hello"]
        assert {m.agent_id for m in stored} == {history.agent_id, "other_agent"}

        await history.aclear()
        assert history.messages == [] and other.messages == []
        assert sync_mt.session_memories(history.session_id).memories == []  # really forgotten, not hidden
        history.add_messages([HumanMessage("after the clear")])
        assert [m.content for m in other.messages] == ["after the clear"]
    finally:
        history.close()


def test_history_refuses_a_message_too_large_for_one_memory(sync_mt: MemtraceClient) -> None:
    history = MemtraceChatMessageHistory(uid("sess"), uid("agent"), client=sync_mt)
    with pytest.raises(ValueError, match="does not fit"):
        history.add_messages([HumanMessage("x" * 70_000)])
    assert history.messages == []
    with pytest.raises(ValueError, match="url and api_key"):
        MemtraceChatMessageHistory("s", "a")


# --- a chain with langchain-core's fake model: remember in one run, recall in a fresh one ------------------------


def test_chain_remembers_in_one_run_and_recalls_in_a_fresh_one(stack: Stack, sync_mt: MemtraceClient) -> None:
    agent_id, session_id = uid("assistant"), uid("sess")
    fact = f"My favourite tea is genmaicha-{uuid.uuid4().hex[:6]}"
    prompt = ChatPromptTemplate.from_messages([("system", "You are helpful. Known facts:\n{facts}"),
                                               MessagesPlaceholder("history"), ("human", "{question}")])

    def turn(model: RecordingChatModel, question: str, session_id: str) -> str:
        """One turn of a chat loop: history and recalled facts in, the reply appended to the history."""
        history = MemtraceChatMessageHistory(session_id, agent_id, client=sync_mt)
        retriever = MemtraceRetriever(client=sync_mt, agent_id=agent_id, k=3)
        chain = {"facts": lambda i: "\n".join(d.page_content for d in retriever.invoke(i["topic"])) or "none",
                 "history": lambda _: history.messages, "question": lambda i: i["question"]} | prompt | model
        reply = chain.invoke({"question": question, "topic": "genmaicha"})
        history.add_messages([HumanMessage(question), reply])
        return str(reply.content)

    first = RecordingChatModel(messages=iter([AIMessage("Noted.")]))
    assert turn(first, fact, session_id) == "Noted."
    assert first.prompts[0][0].content == "You are helpful. Known facts:\nnone"

    # a fresh process: new model, new chain, new history objects; the same session id brings the conversation back
    second = RecordingChatModel(messages=iter([AIMessage("Genmaicha.")]))
    assert turn(second, "Which tea do I like?", session_id) == "Genmaicha."
    seen = second.prompts[0]
    assert [type(m).__name__ for m in seen] == ["SystemMessage", "HumanMessage", "AIMessage", "HumanMessage"]
    assert seen[1].content == fact and seen[2].content == "Noted."
    # and the retriever recalled the fact from Memtrace into the system prompt
    assert seen[0].content == f"You are helpful. Known facts:\nhuman: {fact}"

    # a new session of the same agent: no history, but the retriever still recalls what was said before
    third = RecordingChatModel(messages=iter([AIMessage("Genmaicha, as before.")]))
    turn(third, "Tea?", uid("sess"))
    recalled = f"You are helpful. Known facts:\nai: Genmaicha.\nhuman: {fact}"  # newest first
    assert [m.content for m in third.prompts[0]] == [recalled, "Tea?"]


# --- the retriever ----------------------------------------------------------------------------------------


async def test_retriever_filters_and_returns_fields_in_metadata(sync_mt: MemtraceClient) -> None:
    agent_id, word = uid("agent"), uuid.uuid4().hex[:8]
    for i in range(3):
        sync_mt.remember(agent_id, f"pricing note {i} {word}", event_type="finding", tags=["pricing"], importance=0.6)
    sync_mt.remember(agent_id, f"unrelated {word}", event_type="note")
    sync_mt.remember(uid("other"), f"pricing note of another agent {word}")
    retriever = MemtraceRetriever(client=sync_mt, agent_id=agent_id, tags=["pricing"])
    docs = retriever.invoke(f"NOTE 1 {word}")  # case-insensitive, ranked: the best match first
    assert docs[0].page_content == f"pricing note 1 {word}"
    assert {d.page_content for d in docs} <= {f"pricing note {i} {word}" for i in range(3)}  # agent and tag
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    meta = docs[0].metadata
    assert docs[0].id == meta["id"] and meta["id"].startswith("mem_")
    assert (meta["agent_id"], meta["event_type"], meta["tags"], meta["importance"], meta["memory_type"]) == (
        agent_id, "finding", ["pricing"], 0.6, "episodic")
    assert meta["time"].endswith("+00:00")
    best_two = await retriever.ainvoke(f"note 2 {word}", k=2)
    assert len(best_two) == 2 and best_two[0].page_content == f"pricing note 2 {word}"
    assert len(MemtraceRetriever(client=sync_mt, agent_id=agent_id).invoke(word)) == 4


class TestMemtraceRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests' standard retriever tests (k as constructor and call argument, sync and async)."""

    params: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _seeded(self, sync_mt: MemtraceClient) -> None:
        if not TestMemtraceRetrieverStandard.params:
            agent_id = uid("standard")
            for i in range(5):
                sync_mt.remember(agent_id, f"standard retriever memory {i}")
            TestMemtraceRetrieverStandard.params = {"client": sync_mt, "agent_id": agent_id}

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MemtraceRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self.params

    @property
    def retriever_query_example(self) -> str:
        return "retriever memory"
