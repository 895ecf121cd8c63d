"""Keyword-argument shapes shared by the async and sync clients, and their translation to query strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from memtrace.client._models import MemoryType, Order, SearchOrder


class ListFilters(TypedDict, total=False):
    """Filters every memory listing route accepts besides agent, session and `since`; None means unset."""

    memory_type: MemoryType | None
    event_type: str | None
    tags: Sequence[str] | None
    until: str | None
    limit: int | None
    offset: int | None
    order: Order | None


class MemoryFields(TypedDict, total=False):
    """Optional fields of a new memory, for `remember(agent_id, content, **fields)`."""

    memory_type: MemoryType | None
    event_type: str | None
    session_id: str | None
    metadata: dict[str, Any] | None
    tags: list[str] | None
    dedup_key: str | None
    importance: float | None
    parent_id: str | None


class SearchFields(TypedDict, total=False):
    agent_id: str | None
    session_id: str | None
    memory_types: list[MemoryType] | None
    event_types: list[str] | None
    tags: list[str] | None
    content_contains: str | None
    since: str | None
    until: str | None
    min_importance: float | None
    limit: int | None
    offset: int | None
    order: SearchOrder | None
    query: str | None


def query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Drop unset values and render the rest the way the API parses them (tags as one comma list)."""
    params: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key == "tags" and not isinstance(value, str):
            value = ",".join(value)
        params[key] = str(value)
    return params
