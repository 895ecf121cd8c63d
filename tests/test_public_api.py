"""Each package's public surface is deliberate: its `__all__` is pinned here, and every name in it resolves.

A change to a package's `__all__` is a change of what the rest of the code (and other branches) may rely on:
update this table in the same commit, on purpose.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PUBLIC: dict[str, list[str]] = {
    "memtrace": [
        "__version__",
    ],
    "memtrace.admin": [
        "AdminError", "build_parser", "main",
    ],
    "memtrace.api": [
        "Deps", "Observed", "RouteLabelRouter", "Services", "TargetGuard", "agents", "docs", "error_response",
        "errors", "forget", "health", "memories", "metrics", "openapi", "sessions",
    ],
    "memtrace.arc": [
        "ArcBinding", "ArcPool", "ArcRegistry", "ArcResult", "decrypt_binding", "decrypt_bindings", "encode_rows",
        "write_refusal",
    ],
    "memtrace.arclite": [],
    "memtrace.client": [
        "Agent", "AgentList", "AgentStats", "AsyncMemtraceClient", "AuthenticationError", "BatchResult",
        "ConflictError", "ContextRequest", "DEFAULT_URL", "ForgetRequest", "ForgetResult", "Health", "ListFilters",
        "Memory", "MemoryFields", "MemoryList", "MemoryType", "MemtraceClient", "MemtraceError", "NewAgent",
        "NewMemory", "NewSession", "NoArcInstanceError", "NotFoundError", "Order", "PermissionDenied", "RateLimited",
        "Readiness", "RecallRequest", "RecallResult", "RetryPolicy", "SearchFields", "SearchOrder", "SearchQuery",
        "SearchResults", "ServerError",
        "ServerUnreachable", "Session", "SessionContext", "SessionList", "SessionStatus", "SessionUpdate", "Skipped",
        "Timeline", "TimelineBucket", "ValidationError",
    ],
    "memtrace.delivery": [
        "Deliverer", "LEASE_NAME",
    ],
    "memtrace.integrations": [],
    "memtrace.integrations.autogen": [
        "MEMORY_EVENT", "MemtraceMemory", "MemtraceMemoryConfig",
    ],
    "memtrace.integrations.langchain": [
        "MESSAGE_EVENT", "MemtraceChatMessageHistory", "MemtraceRetriever",
    ],
    "memtrace.integrations.langgraph": [
        "ITEM_EVENT", "MemtraceStore",
    ],
    "memtrace.integrations.llamaindex": [
        "MESSAGE_EVENT", "MemtraceMemoryBlock",
    ],
    "memtrace.integrations.openai_agents": [
        "CLEAR_EVENT", "ITEM_EVENT", "MemtraceSession", "POP_EVENT", "memtrace_tools",
    ],
    "memtrace.journal": [
        "AppendResult", "DeadLetter", "Deletion", "Journal", "JournalConfig", "OrgBacklog", "PendingBatch",
        "RecentQuery", "Recorded", "holder_alive", "holder_id",
    ],
    "memtrace.mcp": [
        "INSTRUCTIONS", "TOOL_NAMES", "build_server",
    ],
    "memtrace.memory": [
        "CLAIM_S", "CONTEXT_MAX_ROWS", "Forgetter", "MemoryService", "apply_policies",
    ],
    "memtrace.metadata": [
        "Agent", "Agents", "ApiKeyInfo", "Audit", "KeyRecord", "LATEST_VERSION", "MetadataDB", "Org", "Retention",
        "RetentionPolicy", "SESSION_STATUSES", "SchemaError", "Session", "SessionStatus", "Sessions",
        "open_metadata",
    ],
    "memtrace.server": [],
}

ROOT = Path(__file__).resolve().parents[1] / "memtrace"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_package_all_is_pinned_and_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == PUBLIC[package]
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_every_package_is_pinned() -> None:
    packages = {".".join(p.parent.relative_to(ROOT.parent).parts) for p in ROOT.rglob("__init__.py")}
    assert packages == set(PUBLIC)
