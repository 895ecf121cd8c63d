"""What each ranking signal adds on the LoCoMo dev split, offline (no server), with the served term analysis.

    .venv/bin/python perf/recall_ablation.py [--data ../shared/bench/locomo]

Re-implements `memtrace/memory/ranking.py`'s BM25F with numpy over `memtrace.terms.search_terms`, so variants
can be switched on and off quickly; the served ranking (SQL in Arc, Python for the journal) equals the row
"as served" (`perf/recall_bench.py` measures that one through the API). Parameters were tuned on this split
only, never per question; the held-out half of LoCoMo checks that they generalise.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memtrace.memory.ranking import B_NEAR, B_OWN, K1, NEIGHBOUR_WEIGHTS
from memtrace.terms import query_terms, search_terms
from perf.recall_bench import DEFAULT_DATA, load


@dataclass
class Prepared:
    own: np.ndarray  # terms x memories
    shifted: dict[int, np.ndarray]  # offset -> counts of the memory that far away in the same session (0 if none)
    df: np.ndarray
    sessions: np.ndarray
    questions: list[tuple[list[int], np.ndarray]]  # (term rows, evidence mask)


def prepare(data: Path) -> list[Prepared]:
    out = []
    for conv in load(data):
        counts = [Counter(search_terms(t.content)) for t in conv.turns]
        vocab: dict[str, int] = {}
        for c in counts:
            for term in c:
                vocab.setdefault(term, len(vocab))
        own = np.zeros((len(vocab), len(counts)))
        for j, c in enumerate(counts):
            for term, n in c.items():
                own[vocab[term], j] = n
        sessions = np.array([t.session for t in conv.turns])
        shifted = {}
        for offset in (-2, -1, 1, 2):
            moved = np.zeros_like(own)
            same = np.zeros(len(counts), bool)
            if offset < 0:
                moved[:, -offset:] = own[:, :offset]
                same[-offset:] = sessions[-offset:] == sessions[:offset]
            else:
                moved[:, :-offset] = own[:, offset:]
                same[:-offset] = sessions[:-offset] == sessions[offset:]
            shifted[offset] = moved * same
        ids = [t.dia_id for t in conv.turns]
        questions = [([vocab[t] for t in query_terms(q["question"]) if t in vocab],
                      np.array([i in set(q["evidence"]) for i in ids])) for q in conv.questions]
        out.append(Prepared(own, shifted, (own > 0).sum(1), sessions, questions))
    return out


@dataclass(frozen=True)
class Variant:
    name: str
    weights: Sequence[tuple[int, float]] = NEIGHBOUR_WEIGHTS
    b_own: float = B_OWN
    b_near: float = B_NEAR
    fields: bool = True  # BM25F (own and neighbourhood normalised apart); False: neighbours merged into the text
    exact_near_avg: bool = False
    own_match: bool = True  # only memories whose own text shares a term
    session_boost: float = 0.0


def score(p: Prepared, v: Variant, rows: list[int]) -> np.ndarray:
    n_docs = p.own.shape[1]
    near = sum((w * p.shifted[o] for o, w in v.weights), np.zeros_like(p.own))
    idf = np.log(1 + (n_docs - p.df[rows] + 0.5) / (p.df[rows] + 0.5))[:, None]
    dl, ndl = p.own.sum(0), near.sum(0)
    if not v.fields:
        tf, length = p.own[rows] + near[rows], dl + ndl
        x = tf / (1 - v.b_own + v.b_own * length / length.mean())
    else:
        avg_near = ndl.mean() if v.exact_near_avg else dl.mean() * sum(w for _, w in v.weights)
        near_norm = (1 - v.b_near + v.b_near * ndl / avg_near) if avg_near > 0 else np.ones(n_docs)
        x = p.own[rows] / (1 - v.b_own + v.b_own * dl / dl.mean()) + near[rows] / near_norm
    s = (idf * x * (K1 + 1) / (x + K1)).sum(0)
    if v.own_match:
        s = s * (p.own[rows] > 0).any(0)
    if v.session_boost:
        best = {name: s[p.sessions == name].max() for name in np.unique(p.sessions)}
        s = s + v.session_boost * np.array([best[name] for name in p.sessions]) * (s > 0)
    return s


def recall_at(prepared: list[Prepared], v: Variant) -> tuple[float, float, float]:
    hits, n = Counter(), 0
    for p in prepared:
        for rows, evidence in p.questions:
            n += 1
            if not rows:
                continue
            s = score(p, v, rows)
            order = np.argsort(-s, kind="stable")
            order = order[s[order] > 0]
            for k in (1, 5, 10):
                hits[k] += bool(evidence[order[:k]].any())
    return tuple(round(100 * hits[k] / n, 1) for k in (1, 5, 10))  # type: ignore[return-value]


VARIANTS = (
    Variant("BM25 (k1 1.2, b 0.75), stemmed, stopwords", weights=(), b_own=0.75, fields=False, own_match=False),
    Variant("+ two neighbours each side merged into the text (0.5)", weights=((-2, .5), (-1, .5), (1, .5), (2, .5)),
            b_own=0.75, fields=False, own_match=False),
    Variant("BM25F: own and neighbourhood fields, tuned, exact neighbourhood average", exact_near_avg=True,
            own_match=False),
    Variant("+ neighbourhood normalised by the average length (one SQL pass less)", own_match=False),
    Variant("+ only memories whose own text shares a term (the contract): as served"),
    Variant("  as served, + session boost 0.1 (dropped)", session_boost=0.1),
    Variant("  as served, one neighbour each side only", weights=((-1, .5), (1, .5))),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    prepared = prepare(args.data)
    print("\n## What each ranking signal adds\n")
    print("`python perf/recall_ablation.py`: offline, the served term analysis and formula re-done with numpy so "
          "signals can be switched; \"as served\" is what the API ranks.\n")
    print("| ranking (LoCoMo dev split, categories 1-4) | R@1 | R@5 | R@10 |")
    print("|---|---|---|---|")
    for v in VARIANTS:
        r1, r5, r10 = recall_at(prepared, v)
        print(f"| {v.name} | {r1} | {r5} | {r10} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
