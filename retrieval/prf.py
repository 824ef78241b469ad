"""Pseudo-relevance feedback for the coarse stage: the best few candidates of the first
ordering are taken as relevant, and every candidate is scored again by its likeness to them.

- Rocchio on vectors: the cosine of each candidate to the mean vector of the feedback
  candidates (stored embeddings; nothing is encoded).
- RM3-style expansion for BM25: the terms that weigh most in the feedback candidates (term
  frequency share times idf, the question's own terms left out) make a second BM25 query.

The coarse order then adds `search.prf_weight` times the two blended as the coarse stage
blends cosine and BM25 (`retrieval.rerank.blend`: z-scored over the pool, with the coarse
blend's cosine weight). A question whose right passage uses other words than the question (a paraphrase,
a term the passage defines by its synonyms) is pulled up by passages that resemble the best
candidates. All functions here are small and pure: each has a hand-computed test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np


def feedback_rows(order: np.ndarray, usable: np.ndarray, m: int) -> list[int]:
    """The first `m` rows of `order` (best first) that have a usable vector / text."""
    return [int(r) for r in order if usable[int(r)]][:m]


def rocchio_cosines(emb: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """Each row's cosine to the normalised mean of `emb[rows]` (rows are unit vectors; NaN
    where a row has no vector; all NaN when there is no feedback)."""
    out = np.full(len(emb), np.nan)
    if not rows or emb.shape[1] == 0:
        return out
    centre = emb[list(rows)].astype(np.float64).mean(axis=0)
    norm = float(np.linalg.norm(centre))
    if norm == 0.0 or math.isnan(norm):
        return out
    return emb.astype(np.float64) @ (centre / norm)


def expansion_terms(docs: Sequence[Sequence[str]], question: set[str], df: Mapping[str, int],
                    n_records: int, n_terms: int) -> list[str]:
    """RM3's term choice over the feedback documents' tokens: weight(t) = sum over the
    documents of tf(t, d) / len(d), times idf(t) = log(1 + N / df(t)); the question's terms and
    terms in only one feedback document when there are several (a name, a typo) left out;
    the `n_terms` heaviest, ties by term."""
    weight: dict[str, float] = {}
    seen: Counter[str] = Counter()
    for tokens in docs:
        if not tokens:
            continue
        counts = Counter(tokens)
        for t, c in counts.items():
            weight[t] = weight.get(t, 0.0) + c / len(tokens)
            seen[t] += 1
    need = 2 if len(docs) > 1 else 1
    scored = [(w * math.log(1.0 + n_records / max(df.get(t, 0), 1)), t) for t, w in weight.items()
              if t not in question and seen[t] >= need and df.get(t, 0) > 0]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [t for _, t in scored[:n_terms]]
