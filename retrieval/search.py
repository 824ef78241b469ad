"""First-stage search: dense (Chroma), keyword (BM25) and their reciprocal rank fusion.

Each function returns ranked `(id, score)` lists; `fuse_rrf` is the one place RRF is
computed (also used by RAG-Fusion over several generated queries)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.index import Index

Ranked = list[tuple[str, float]]


def dense(index: Index, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> Ranked:
    return index.vectors.query(vector, k, where)


def keyword(index: Index, query: str, k: int) -> Ranked:
    return index.keyword.search(query, k)


def fuse_rrf(lists: Sequence[Ranked], k: int = 60, weights: Sequence[float] | None = None) -> Ranked:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1."""
    scores: dict[str, float] = {}
    for i, ranked in enumerate(lists):
        w = 1.0 if weights is None else weights[i]
        for rank, (doc_id, _) in enumerate(ranked, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
