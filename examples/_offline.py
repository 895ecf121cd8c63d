"""A small scripted model for `--offline` runs: the real provider SDK client, answered by a script instead of the API.

`scripted_openai` and `scripted_anthropic` return genuine `openai.OpenAI` / `anthropic.Anthropic` clients whose HTTP
transport is replaced by an in-process handler (httpx `MockTransport`). So the SDK still builds and validates the
request, and parses the reply into its own response types; only the model's "thinking" is scripted.

A script is a list of turns. The handler picks the turn from the number of assistant messages already in the request
(so it is stateless, like the real API): a turn is a list of tool calls ``(name, arguments)``, or a function that
receives every tool result sent back so far (oldest first) and returns either the final text or tool calls.
Nothing here touches Memtrace: the tool calls the script asks for are executed by the cookbook against a real server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:  # recent provider SDKs ship on httpx2; older ones on httpx — both have the same MockTransport API
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

ToolCalls = list[tuple[str, dict[str, Any]]]
Turn = ToolCalls | Callable[[list[str]], str | ToolCalls]


def _turn(script: list[Turn], assistant_turns: int, results: list[str], offered: set[str]) -> str | ToolCalls:
    if assistant_turns >= len(script):
        raise RuntimeError(f"scripted model: no turn {assistant_turns + 1} in a script of {len(script)}")
    turn = script[assistant_turns]
    outcome = turn(results) if callable(turn) else turn
    if not isinstance(outcome, str):
        unknown = {name for name, _ in outcome} - offered
        if unknown:
            raise RuntimeError(f"scripted model: tools {unknown} were not offered in the request")
    return outcome


def scripted_openai(script: list[Turn]) -> Any:
    """An `openai.OpenAI` client whose chat-completions endpoint follows `script`."""
    import openai

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json={"error": {"message": f"scripted model: no {request.url.path}"}})
        messages = body["messages"]
        offered = {t["function"]["name"] for t in body.get("tools", [])}
        results = [m["content"] for m in messages if m["role"] == "tool"]
        turn = _turn(script, sum(m["role"] == "assistant" for m in messages), results, offered)
        if isinstance(turn, str):
            message: dict[str, Any] = {"role": "assistant", "content": turn}
            finish = "stop"
        else:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{len(messages)}_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}} for i, (name, args) in enumerate(turn)]}
            finish = "tool_calls"
        return httpx.Response(200, json={
            "id": f"chatcmpl-scripted-{len(messages)}", "object": "chat.completion", "created": 0,
            "model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})

    return openai.OpenAI(api_key="offline", base_url="http://scripted-model.invalid/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handle)))


def scripted_anthropic(script: list[Turn]) -> Any:
    """An `anthropic.Anthropic` client whose messages endpoint follows `script`."""
    import anthropic

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if not request.url.path.endswith("/v1/messages"):
            return httpx.Response(404, json={"type": "error", "error": {"type": "not_found_error",
                                                                          "message": "scripted model"}})
        messages = body["messages"]
        offered = {t["name"] for t in body.get("tools", [])}
        results = [block["content"] for m in messages if m["role"] == "user" and isinstance(m["content"], list)
                   for block in m["content"] if block.get("type") == "tool_result"]
        turn = _turn(script, sum(m["role"] == "assistant" for m in messages), results, offered)
        if isinstance(turn, str):
            content: list[dict[str, Any]] = [{"type": "text", "text": turn}]
            stop = "end_turn"
        else:
            content = [{"type": "tool_use", "id": f"toolu_{len(messages)}_{i}", "name": name, "input": args}
                       for i, (name, args) in enumerate(turn)]
            stop = "tool_use"
        return httpx.Response(200, json={
            "id": f"msg_scripted_{len(messages)}", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}})

    return anthropic.Anthropic(api_key="offline", base_url="http://scripted-model.invalid", max_retries=0,
                               http_client=httpx.Client(transport=httpx.MockTransport(handle)))
