"""OpenAI + Memtrace, two agents: a researcher and a writer sharing one session and one set of tags.

    MEMTRACE_API_KEY=mtk_... OPENAI_API_KEY=sk-... python examples/openai/multi_agent.py
    MEMTRACE_API_KEY=mtk_... python examples/openai/multi_agent.py --offline   # scripted model, real Memtrace

The researcher stores findings and a decision in the shared session; the writer, a separate agent with its own
conversation, finds them there with `search` and writes a brief. Memtrace is the only channel between the two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared helpers in examples/
import openai
from _common import MemoryTools, connect, finish, parse_args, provider_key, run_main
from _offline import Turn, scripted_openai
from single_agent import run_agent

MODEL = os.environ.get("OPENAI_MODEL", "gpt-5.5")
RESEARCHER, WRITER = "openai-researcher", "openai-writer"
TAGS = ["cookbook", "openai", "heat-pumps"]
TASK = "Should a small bakery in Porto replace its gas oven heating with a heat pump?"
RESEARCHER_SYSTEM = ("You are a researcher. Store each finding with `remember` (event_type finding) and record the "
                     "angle the brief should take with `decide`. Reply with a one-line summary.")
WRITER_SYSTEM = ("You are a writer. Use `search` to read the team's findings and decisions in the shared session, "
                 "store your draft with `remember` (event_type draft), record the title with `decide`, then reply "
                 "with the draft.")

RESEARCHER_SCRIPT: list[Turn] = [
    [("remember", {"content": "Heat pumps cut heating energy use by about 60% versus gas in mild climates",
                   "event_type": "finding", "importance": 0.8}),
     ("remember", {"content": "Porto winters are mild, rarely below 5 C", "event_type": "finding",
                   "importance": 0.6})],
    [("decide", {"decision": "Frame the brief around running costs, not emissions",
                 "reasoning": "a small business owner decides on payback time"})],
    lambda results: "Two findings and one decision stored in the shared session.",
]


def _draft(notes: str) -> str:
    return "Draft: a heat pump suits a Porto bakery. Team notes: " + " | ".join(notes.splitlines())


WRITER_SCRIPT: list[Turn] = [
    [("search", {"query": ""})],
    lambda results: [("remember", {"content": _draft(results[0]), "event_type": "draft", "importance": 0.7}),
                     ("decide", {"decision": "Title: Heat pumps pay off for Porto bakeries",
                                 "reasoning": "leads with the running-cost angle the researcher chose"})],
    lambda results: _draft(results[0]),
]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = provider_key("OPENAI_API_KEY", args.offline)
    with connect() as mt:
        session = mt.create_session(RESEARCHER, {"cookbook": "openai/multi_agent", "task": TASK})
        print(f"shared session {session.id}, tags {TAGS} ({'scripted model' if args.offline else MODEL})")
        team = [MemoryTools(mt, RESEARCHER, session.id, TAGS), MemoryTools(mt, WRITER, session.id, TAGS)]
        llm = None if args.offline else openai.OpenAI(api_key=key)

        notes = run_agent(llm or scripted_openai(RESEARCHER_SCRIPT), RESEARCHER_SYSTEM, TASK, team[0])
        print(f"\nresearcher: {notes}\n")
        draft = run_agent(llm or scripted_openai(WRITER_SCRIPT), WRITER_SYSTEM,
                          f"Write a short brief answering: {TASK}", team[1])
        print(f"\nwriter: {draft}")
        mt.close_session(session.id)
        finish(mt, session.id, team, offline=args.offline)


if __name__ == "__main__":
    run_main(main)
