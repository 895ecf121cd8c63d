"""The two-agent cookbook shared by claude/multi_agent.py and openai/multi_agent.py: a researcher and a writer
sharing one session and one set of tags. The researcher stores findings and a decision in the shared session;
the writer, a separate agent with its own conversation, finds them there with `search` and writes a brief.
Memtrace is the only channel between the two. Each provider's script supplies only its model and tool loop.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from _common import MemoryTools, connect, finish
from _offline import Turn

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


def run_team(args: argparse.Namespace, *, provider: str, model: str, llm: Any,
             scripted: Callable[[list[Turn]], Any], run_agent: Callable[[Any, str, str, MemoryTools], str]) -> None:
    """Run the researcher, then the writer, in one shared session; `llm` is None offline (scripted turns)."""
    researcher, writer = f"{provider}-researcher", f"{provider}-writer"
    tags = ["cookbook", provider, "heat-pumps"]
    with connect() as mt:
        session = mt.create_session(researcher, {"cookbook": f"{provider}/multi_agent", "task": TASK})
        print(f"shared session {session.id}, tags {tags} ({'scripted model' if args.offline else model})")
        team = [MemoryTools(mt, researcher, session.id, tags), MemoryTools(mt, writer, session.id, tags)]

        notes = run_agent(llm or scripted(RESEARCHER_SCRIPT), RESEARCHER_SYSTEM, TASK, team[0])
        print(f"\nresearcher: {notes}\n")
        draft = run_agent(llm or scripted(WRITER_SCRIPT), WRITER_SYSTEM,
                          f"Write a short brief answering: {TASK}", team[1])
        print(f"\nwriter: {draft}")
        mt.close_session(session.id)
        finish(mt, session.id, team, offline=args.offline)
