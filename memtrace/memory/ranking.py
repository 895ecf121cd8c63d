"""Relevance: BM25F over a memory's own terms and the terms of its session neighbours, one formula in two places.

The score of a memory for a query is, summed over the query's distinct terms t:

    idf(t) · x(t) · (K1 + 1) / (x(t) + K1)
    x(t)   = tf(t) / (1 - B_OWN + B_OWN · dl / avg_dl) + near_tf(t) / (1 - B_NEAR + B_NEAR · near_dl / avg_near_dl)
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

tf and dl count the memory's own terms; `near_tf` and `near_dl` are the same counts over its neighbours (the
memories of the same agent and session just before and after it in time), weighted by NEIGHBOUR_WEIGHTS.
N, df and the averages are taken over the memories the request's filters select, so an agent-scoped query
weighs words by how rare they are for that agent. A memory sharing no term with the query (neither itself
nor a neighbour) scores 0; one whose own text shares none is not returned either, however its neighbours
score (the contract; on LoCoMo it costs R@10 0.2 points).

Why neighbours: in a conversation the turn that answers a question rarely repeats its words; the turns
around it do. On the LoCoMo dev split (perf/RECALL.md) own terms alone reach R@5 59 %; with the neighbours
72-74 %. The parameters below were tuned on that split only (coordinate search; a grid of k1, both b's and
the four weights); the held-out half checks that they generalise.

`rank_query.py` computes this in Arc's SQL; `score_local` computes it in Python for the journal's rows that
Arc may not hold yet, with the corpus statistics Arc reported plus those rows' own.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from memtrace.rows import MemoryRow
from memtrace.terms import search_terms

K1 = 1.2
B_OWN = 0.2
B_NEAR = 0.9
NEIGHBOUR_WEIGHTS: tuple[tuple[int, float], ...] = ((-2, 0.25), (-1, 0.5), (1, 0.5), (2, 0.3))
"""(offset in the session's time order, weight): negative offsets are the memories before."""
NEAR_WEIGHT = sum(weight for _, weight in NEIGHBOUR_WEIGHTS)
"""The neighbourhood's length is normalised by the corpus's average length times this (a memory in the middle of
its session); the exact average of the neighbourhood lengths ranks the same on LoCoMo and costs Arc a pass."""


@dataclass(slots=True)
class CorpusStats:
    """What the scores of one query depend on beyond the memory itself."""

    docs: int = 0
    total_len: float = 0.0
    df: tuple[int, ...] = ()

    def plus(self, other: CorpusStats) -> CorpusStats:
        df = tuple(a + b for a, b in zip(self.df, other.df, strict=True))
        return CorpusStats(self.docs + other.docs, self.total_len + other.total_len, df)


def idf(docs: int, df: int) -> float:
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


def bm25f(tf: Sequence[float], near_tf: Sequence[float], dl: float, near_dl: float, stats: CorpusStats) -> float:
    """The score of one memory from its term counts (the Python twin of `rank_query`'s expression)."""
    if stats.docs <= 0:
        return 0.0
    avg = stats.total_len / stats.docs
    avg_near = avg * NEAR_WEIGHT
    own_norm = 1.0 - B_OWN + B_OWN * dl / avg if avg > 0 else 1.0
    near_norm = 1.0 - B_NEAR + B_NEAR * near_dl / avg_near if avg_near > 0 else 1.0
    score = 0.0
    for i, (own, near) in enumerate(zip(tf, near_tf, strict=True)):
        x = own / own_norm + (near / near_norm if avg_near > 0 else 0.0)
        if x > 0:
            score += idf(stats.docs, stats.df[i]) * x * (K1 + 1.0) / (x + K1)
    return score


@dataclass(slots=True)
class _Counted:
    row: MemoryRow
    tf: list[int]
    dl: int


def _count(row: MemoryRow, terms: Sequence[str]) -> _Counted:
    words = search_terms(row.content)
    counts = Counter(words)
    return _Counted(row, [counts.get(t, 0) for t in terms], len(words))


def local_stats_and_scores(rows: Sequence[MemoryRow], terms: Sequence[str], arc: CorpusStats | None
                           ) -> list[tuple[MemoryRow, float]]:
    """Scores of `rows` (journal rows, filtered like the query) with Arc's corpus statistics plus their own.

    Neighbours are found among `rows` themselves: the memories around a fresh one are fresh too."""
    counted = [_count(row, terms) for row in rows]
    sessions: dict[tuple[str, str], list[_Counted]] = defaultdict(list)
    for c in counted:
        sessions[(c.row.agent_id, c.row.session_id)].append(c)
    near: dict[str, tuple[list[float], float]] = {}
    for members in sessions.values():
        members.sort(key=lambda c: (c.row.time_us, c.row.id))
        for pos, c in enumerate(members):
            tf = [0.0] * len(terms)
            dl = 0.0
            for offset, weight in NEIGHBOUR_WEIGHTS:
                j = pos + offset
                if 0 <= j < len(members):
                    other = members[j]
                    dl += weight * other.dl
                    for i, n in enumerate(other.tf):
                        tf[i] += weight * n
            near[c.row.id] = (tf, dl)
    own = CorpusStats(len(counted), float(sum(c.dl for c in counted)),
                      tuple(sum(1 for c in counted if c.tf[i]) for i in range(len(terms))))
    stats = arc.plus(own) if arc is not None else own
    scored = []
    for c in counted:
        if not any(c.tf):
            continue
        near_tf, near_dl = near[c.row.id]
        score = bm25f(c.tf, near_tf, c.dl, near_dl, stats)
        if score > 0:
            scored.append((c.row, score))
    return scored
