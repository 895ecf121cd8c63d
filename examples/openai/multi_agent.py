"""OpenAI + Memtrace, two agents: a researcher and a writer sharing one session and one set of tags.

    MEMTRACE_API_KEY=mtk_... OPENAI_API_KEY=sk-... python examples/openai/multi_agent.py
    MEMTRACE_API_KEY=mtk_... python examples/openai/multi_agent.py --offline   # scripted model, real Memtrace

The researcher stores findings and a decision in the shared session; the writer, a separate agent with its own
conversation, finds them there with `search` and writes a brief. Memtrace is the only channel between the two
(the shared part is examples/_team.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared helpers in examples/
import openai
from _common import parse_args, provider_key, run_main
from _offline import scripted_openai
from _team import run_team
from single_agent import run_agent

MODEL = os.environ.get("OPENAI_MODEL", "gpt-5.5")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    key = provider_key("OPENAI_API_KEY", args.offline)
    llm = None if args.offline else openai.OpenAI(api_key=key)
    run_team(args, provider="openai", model=MODEL, llm=llm, scripted=scripted_openai, run_agent=run_agent)


if __name__ == "__main__":
    run_main(main)
