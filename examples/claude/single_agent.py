"""Claude + Memtrace, one agent: a travel assistant that remembers preferences, records a decision and recalls them.

    MEMTRACE_API_KEY=mtk_... ANTHROPIC_API_KEY=sk-ant-... python examples/claude/single_agent.py
    MEMTRACE_API_KEY=mtk_... python examples/claude/single_agent.py --offline   # scripted model, real Memtrace

Memory tools are plain Anthropic tools (`TOOL_SPECS` in ../_common.py) executed against Memtrace over HTTP.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared helpers in examples/
import anthropic
from _common import TOOL_SPECS, MemoryTools, connect, finish, parse_args, provider_key, run_main
from _offline import Turn, scripted_anthropic

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-5-5")
AGENT_ID = "claude-travel-assistant"
TAGS = ["cookbook", "claude", "travel"]
SYSTEM = ("You are a travel assistant with long-term memory. Store the user's preferences with `remember`, record "
          "your recommendation with `decide`, check what you stored with `recall`, then answer briefly.")
USER = "I'm vegetarian, I hate crowds, and I'm planning four days in Lisbon in May. Where should I stay?"

# What the offline model does, turn by turn (see ../_offline.py).
SCRIPT: list[Turn] = [
    [("remember", {"content": "User is vegetarian", "event_type": "user_preference", "importance": 0.8}),
     ("remember", {"content": "User dislikes crowds", "event_type": "user_preference", "importance": 0.7}),
     ("remember", {"content": "Trip: four days in Lisbon in May", "event_type": "trip", "importance": 0.6})],
    [("decide", {"decision": "Recommend staying in Campo de Ourique",
                 "reasoning": "quiet residential area with good vegetarian food, away from the Alfama crowds"})],
    [("recall", {"since": "1h"})],
    lambda results: "Stay in Campo de Ourique. What I know about you:\n" + results[-1],
]


def anthropic_tools() -> list[dict[str, Any]]:
    return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in TOOL_SPECS]


def run_agent(llm: anthropic.Anthropic, system: str, user: str, tools: MemoryTools, max_turns: int = 8) -> str:
    """The usual tool loop: call Claude, run the tool_use blocks against Memtrace, send tool_result blocks back."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
    for _ in range(max_turns):
        response = llm.messages.create(model=MODEL, max_tokens=1024, system=system, messages=messages,
                                       tools=anthropic_tools())
        assistant: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for block in response.content:
            if block.type == "text":
                assistant.append({"type": "text", "text": block.text})
            elif block.type == "tool_use":
                assistant.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
                text, is_error = tools.call(block.name, dict(block.input))
                results.append({"type": "tool_result", "tool_use_id": block.id, "content": text, "is_error": is_error})
        messages.append({"role": "assistant", "content": assistant})
        if response.stop_reason != "tool_use":
            return "".join(b["text"] for b in assistant if b["type"] == "text")
        messages.append({"role": "user", "content": results})
    raise RuntimeError(f"no final answer after {max_turns} turns")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = provider_key("ANTHROPIC_API_KEY", args.offline)
    llm = scripted_anthropic(SCRIPT) if args.offline else anthropic.Anthropic(api_key=key)
    with connect() as mt:
        session = mt.create_session(AGENT_ID, {"cookbook": "claude/single_agent", "offline": args.offline})
        print(f"session {session.id} for agent {AGENT_ID} ({'scripted model' if args.offline else MODEL})")
        tools = MemoryTools(mt, AGENT_ID, session.id, TAGS)
        answer = run_agent(llm, SYSTEM, USER, tools)
        print(f"\nassistant: {answer}")
        mt.close_session(session.id)
        finish(mt, session.id, [tools], offline=args.offline)


if __name__ == "__main__":
    run_main(main)
