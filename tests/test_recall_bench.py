"""perf/recall_bench.py and perf/recall_ablation.py on a tiny conversation in LoCoMo's format (made here: the
real data is read from ../shared at run time and never copied), through a real stack."""

from __future__ import annotations

import json
import re
from pathlib import Path

from perf import recall_ablation, recall_bench

CONVERSATION = {
    "speaker_a": "Ana", "speaker_b": "Ben",
    "session_1_date_time": "1:56 pm on 8 May, 2023",
    "session_1": [
        {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a grey kitten called Pixel last week!"},
        {"speaker": "Ben", "dia_id": "D1:2", "text": "Congrats! How is she settling in?"},
        {"speaker": "Ana", "dia_id": "D1:3", "text": "She sleeps on the piano all day."},
    ],
    "session_2_date_time": "4:04 pm on 20 May, 2023",
    "session_2": [
        {"speaker": "Ben", "dia_id": "D2:1", "text": "I ran my first marathon in Lisbon on Sunday."},
        {"speaker": "Ana", "dia_id": "D2:2", "text": "Wow, what was your time?", "blip_caption": "a medal"},
        {"speaker": "Ben", "dia_id": "D2:3", "text": "Four hours and ten minutes, slow but happy."},
    ],
    "qa": [
        {"question": "What is the name of Ana's kitten?", "answer": "Pixel", "evidence": ["D1:1"], "category": 1},
        {"question": "Where did Ben run his first marathon?", "answer": "Lisbon", "evidence": ["D2:1"],
         "category": 4},
        {"question": "An adversarial one", "answer": "-", "evidence": ["D1:2"], "category": 5},
    ],
}


def test_the_bench_ingests_through_the_api_and_reports_every_figure(tmp_path: Path) -> None:
    data = tmp_path / "locomo"
    data.mkdir()
    (data / "99.json").write_text(json.dumps(CONVERSATION))
    out = tmp_path / "RECALL.md"
    assert recall_bench.main(["--data", str(data), "--out", str(out)]) == 0
    report = out.read_text()
    assert "LoCoMo (1 conversations, 6 memories, 2 questions of categories 1-4)" in report
    row = re.search(r"^\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", report, flags=re.M)
    assert row is not None, report
    r1, r5, r10, s5, ctx = (float(v) for v in row.groups())
    assert r1 == r5 == r10 == s5 == ctx == 100.0  # both answers share their words with the question
    assert re.search(r"\| ratio, measured alternately in the same run \| [\d.]+x \| [\d.]+x \|", report)


def test_the_ablation_reads_the_same_format(tmp_path: Path) -> None:
    data = tmp_path / "locomo"
    data.mkdir()
    (data / "99.json").write_text(json.dumps(CONVERSATION))
    prepared = recall_ablation.prepare(data)
    served = next(v for v in recall_ablation.VARIANTS if v.name.endswith("as served"))
    assert recall_ablation.recall_at(prepared, served) == (100.0, 100.0, 100.0)
