"""OpenAI + Memtrace, one agent: a support assistant that remembers a customer's setup, decides, and recalls.

    MEMTRACE_API_KEY=mtk_... OPENAI_API_KEY=sk-... python examples/openai/single_agent.py
    MEMTRACE_API_KEY=mtk_... python examples/openai/single_agent.py --offline   # scripted model, real Memtrace

Memory tools are plain Chat Completions function tools (`TOOL_SPECS` in ../_common.py) executed against Memtrace.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared helpers in examples/
import openai
from _common import TOOL_SPECS, MemoryTools, connect, finish, parse_args, provider_key, run_main
from _offline import Turn, scripted_openai

MODEL = os.environ.get("OPENAI_MODEL", "gpt-5.5")
AGENT_ID = "openai-support-assistant"
TAGS = ["cookbook", "openai", "support"]
SYSTEM = ("You are a support assistant with long-term memory. Store facts about the customer's setup with "
          "`remember`, record the fix you recommend with `decide`, check your notes with `recall`, then answer.")
USER = "Our nightly export to S3 fails with 'SlowDown' since we moved to 200 parallel uploads. We run v2.3."

# What the offline model does, turn by turn (see ../_offline.py).
SCRIPT: list[Turn] = [
    [("remember", {"content": "Customer runs v2.3 with 200 parallel S3 uploads", "event_type": "customer_setup",
                   "importance": 0.7}),
     ("remember", {"content": "Nightly S3 export fails with SlowDown (throttling)", "event_type": "issue",
                   "importance": 0.8})],
    [("decide", {"decision": "Recommend capping uploads at 50 with exponential backoff",
                 "reasoning": "SlowDown is S3 request-rate throttling; fewer parallel requests and backoff avoid it"})],
    [("recall", {"since": "1h"})],
    lambda results: "Cap parallel uploads at 50 and retry SlowDown with exponential backoff. My notes:\n" + results[-1],
]


def openai_tools() -> list[dict[str, Any]]:
    return [{"type": "function", "function": spec} for spec in TOOL_SPECS]


def run_agent(llm: openai.OpenAI, system: str, user: str, tools: MemoryTools, max_turns: int = 8) -> str:
    """The usual tool loop: call the model, run its tool calls against Memtrace, send the results back."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    for _ in range(max_turns):
        response = llm.chat.completions.create(model=MODEL, messages=messages, tools=openai_tools())
        message = response.choices[0].message
        calls = [c for c in message.tool_calls or () if c.type == "function"]
        messages.append({"role": "assistant", "content": message.content, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in calls]} if calls else {"role": "assistant", "content": message.content or ""})
        if not calls:
            return message.content or ""
        for call in calls:
            text, _ = tools.call(call.function.name, json.loads(call.function.arguments or "{}"))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
    raise RuntimeError(f"no final answer after {max_turns} turns")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = provider_key("OPENAI_API_KEY", args.offline)
    llm = scripted_openai(SCRIPT) if args.offline else openai.OpenAI(api_key=key)
    with connect() as mt:
        session = mt.create_session(AGENT_ID, {"cookbook": "openai/single_agent", "offline": args.offline})
        print(f"session {session.id} for agent {AGENT_ID} ({'scripted model' if args.offline else MODEL})")
        tools = MemoryTools(mt, AGENT_ID, session.id, TAGS)
        answer = run_agent(llm, SYSTEM, USER, tools)
        print(f"\nassistant: {answer}")
        mt.close_session(session.id)
        finish(mt, session.id, [tools], offline=args.offline)


if __name__ == "__main__":
    run_main(main)
