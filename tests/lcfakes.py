"""What the LangChain and LangGraph tests share: unique names, and langchain-core's scripted chat model recording
the prompts it is sent (to see what an agent recalled)."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class RecordingChatModel(GenericFakeChatModel):
    """langchain-core's scripted chat model, also keeping every prompt it was sent."""

    prompts: list[list[BaseMessage]] = []  # noqa: RUF012 - pydantic copies the default per instance

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def call(name: str, **args: Any) -> AIMessage:
    """An AI message calling one tool."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}"}])
