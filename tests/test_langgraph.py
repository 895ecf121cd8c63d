"""memtrace.integrations.langgraph against a real Memtrace + embedded Arc: MemtraceStore answers a sequence of
store operations exactly as LangGraph's reference InMemoryStore does, keeps created_at across updates, forgets
replaced items, and serves as the long-term memory of a LangGraph agent driven by langchain-core's fake chat model
(the agent remembers in one run and recalls in a fresh one)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

try:
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import tool
    from langgraph.config import get_store
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
    from langgraph.store.base import BaseStore, Item, SearchItem
    from langgraph.store.memory import InMemoryStore

    from tests.lcfakes import RecordingChatModel, call, uid
except ImportError as exc:  # the extra is part of `make test`; a missing framework is a broken setup, not a skip
    pytest.fail(f"langgraph is not importable ({exc}): pip install -e '.[dev]'", pytrace=False)

from memtrace.client import MemtraceClient
from memtrace.integrations.langgraph import ITEM_EVENT, MemtraceStore
from tests.conftest import Stack


@pytest.fixture
def store(sync_mt: MemtraceClient) -> MemtraceStore:
    return MemtraceStore(client=sync_mt, agent_id=uid("graph"))  # a fresh agent: an empty store per test


def plain(items: list[SearchItem] | list[Item]) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    return sorted((i.namespace, i.key, i.value) for i in items)


def script(s: BaseStore) -> list[Any]:
    """Every store operation with the answers that matter; run against both stores and compared."""
    s.put(("users", "u1", "prefs"), "drink", {"text": "green tea", "rank": 1})
    s.put(("users", "u1", "prefs"), "food", {"text": "ramen", "rank": 2, "tags": ["hot", "noodle"]})
    s.put(("users", "u1", "facts"), "city", {"text": "Lyon", "rank": 3})
    s.put(("users", "u2"), "drink", {"text": "coffee", "rank": 1})
    s.put(("users", "u2"), "sport", {"text": "judo", "rank": 4})
    s.put(("docs",), "readme", {"text": "hello", "nested": {"lang": "en"}})
    s.put(("users", "u1", "prefs"), "food", {"text": "udon", "rank": 5, "tags": ["hot", "noodle"]})  # update
    s.put(("users", "u2"), "drink", None)  # None deletes
    s.delete(("docs",), "missing")  # deleting nothing is fine
    got = s.get(("users", "u1", "prefs"), "food")
    return [
        got and (got.namespace, got.key, got.value),
        s.get(("users", "u2"), "drink"), s.get(("users", "u1", "facts"), "drink"),
        plain(s.search(("users",))), plain(s.search(("users", "u1", "prefs"))), plain(s.search(())),
        plain(s.search(("users",), filter={"rank": {"$gte": 3}})),
        plain(s.search((), filter={"nested": {"lang": "en"}})),
        plain(s.search(("users",), filter={"tags": ["hot", "noodle"], "text": "udon"})),
        plain(s.search(("users",), filter={"rank": {"$ne": 1}, "text": {"$eq": "Lyon"}})),
        len(s.search(("users",), limit=2)), len(s.search(("users",), limit=2, offset=2)), s.search(("nobody",)),
        s.list_namespaces(), s.list_namespaces(prefix=("users",)), s.list_namespaces(suffix=("prefs",)),
        s.list_namespaces(prefix=("users", "*", "facts")), s.list_namespaces(max_depth=2),
        s.list_namespaces(limit=1, offset=1),
    ]


def test_store_answers_like_langgraphs_in_memory_store(store: MemtraceStore) -> None:
    expected = script(InMemoryStore())
    assert script(store) == expected
    assert expected[0] == (("users", "u1", "prefs"), "food", {"text": "udon", "rank": 5, "tags": ["hot", "noodle"]})


async def test_update_keeps_created_at_and_forgets_the_old_memory(store: MemtraceStore,
                                                                  sync_mt: MemtraceClient) -> None:
    namespace = ("memories", "u1")
    await store.aput(namespace, "k", {"text": "first"})
    first = await store.aget(namespace, "k")
    assert first is not None and first.created_at == first.updated_at
    await store.aput(namespace, "k", {"text": "second"})
    second = await store.aget(namespace, "k")
    assert second is not None and second.value == {"text": "second"}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    stored = sync_mt.search(agent_id=store.agent_id, event_types=[ITEM_EVENT]).results
    assert [m.content for m in stored] == ['k: {"text":"second"}']  # the replaced memory is really gone
    assert stored[0].dedup_key and stored[0].dedup_key.startswith("lg.")

    found = await store.asearch(("memories",), query="SECOND")  # substring, case-insensitive, until ranked recall
    assert [(i.key, i.value) for i in found] == [("k", {"text": "second"})]
    assert await store.asearch(("memories",), query="first") == []
    assert await store.alist_namespaces() == [namespace]
    await store.adelete(namespace, "k")
    assert await store.aget(namespace, "k") is None and await store.alist_namespaces() == []


def test_store_refuses_what_it_cannot_keep(store: MemtraceStore) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        store.put(("big",), "k", {"text": "x" * 70_000})
    with pytest.raises(ValueError, match="1 to 30 labels"):
        store.put(tuple(f"l{i}" for i in range(31)), "k", {"v": 1})
    with pytest.raises(ValueError, match="url and api_key"):
        MemtraceStore()
    assert store.search(()) == []


# --- the long-term memory of a LangGraph agent --------------------------------------------------------------


@tool
def save_memory(user_id: str, content: str) -> str:
    """Remember a fact about the user for later conversations."""
    key = uuid.uuid4().hex
    get_store().put(("memories", user_id), key, {"content": content})
    return f"saved {key}"


@tool
def search_memory(user_id: str, query: str) -> str:
    """Search what was remembered about the user."""
    items = get_store().search(("memories", user_id), query=query, limit=5)
    return "\n".join(item.value["content"] for item in items) or "nothing found"


def agent(model: RecordingChatModel, store: BaseStore) -> Any:
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([save_memory, search_memory]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile(store=store)



async def test_agent_remembers_in_one_run_and_recalls_in_a_fresh_one(stack: Stack) -> None:
    graph_agent, user = uid("assistant"), uid("user")
    fact = f"the user drinks genmaicha-{uuid.uuid4().hex[:6]} every morning"
    first_store = MemtraceStore(stack.server.url, stack.tenant.key, agent_id=graph_agent)
    try:
        first = RecordingChatModel(messages=iter([call("save_memory", user_id=user, content=fact),
                                                  AIMessage("I will remember that.")]))
        out = await agent(first, first_store).ainvoke({"messages": [("user", f"Remember: {fact}")]})
        assert out["messages"][-1].content == "I will remember that."
        assert isinstance(out["messages"][2], ToolMessage) and out["messages"][2].content.startswith("saved ")
    finally:
        first_store.close()

    # a fresh run (new store object, new client, new thread): the model searches and sees the fact
    second_store = MemtraceStore(stack.server.url, stack.tenant.key, agent_id=graph_agent)
    try:
        second = RecordingChatModel(messages=iter([call("search_memory", user_id=user, query="genmaicha"),
                                                   AIMessage("You drink genmaicha.")]))
        out = agent(second, second_store).invoke({"messages": [("user", "What do I drink in the morning?")]})
        assert out["messages"][-1].content == "You drink genmaicha."
        assert second.prompts[1][-1].content == fact  # the tool's answer the model was given
        items = await second_store.asearch(("memories", user))
        assert [i.value for i in items] == [{"content": fact}] and items[0].score is None
    finally:
        second_store.close()
