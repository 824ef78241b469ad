"""First-stage search: dense (Chroma), keyword (BM25) and their reciprocal rank fusion.

`run_queries` searches every query of the state with the configured retrievers
(`search.mode`: dense | bm25 | hybrid) and keeps, per candidate, the best score and rank each
retriever and each query gave it (features for the reranking stages); `fuse` merges the ranked
lists. `fuse_rrf` is the one place RRF is computed (also RAG-Fusion over generated queries)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.index import Index
from core.keyword import Groups
from core.store import matches_where
from core.types import TraceEntry
from retrieval.state import Query, QueryState, Ranked, Timer


def dense(index: Index, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> Ranked:
    return index.vectors.query(vector, k, where)


def keyword(index: Index, query: str, k: int, where: dict[str, Any] | None = None, bigrams: bool = True,
            groups: Groups | None = None) -> Ranked:
    """BM25 (`bigrams`: search.cjk_bigrams; `groups`: a term's translations the query holds,
    scored as one unit, core/keyword.py); a metadata filter (simple equality / $in, as
    Chroma's) applied to its results."""
    ranked = index.keyword.search(query, k, bigrams, groups)
    if not where:
        return ranked
    recs = index.docs.get([i for i, _ in ranked])
    return [(i, s) for i, s in ranked if i in recs and matches_where(recs[i], where)]


def fuse_rrf(lists: Sequence[Ranked], k: int = 60, weights: Sequence[float] | None = None) -> Ranked:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1."""
    scores: dict[str, float] = {}
    for i, ranked in enumerate(lists):
        w = 1.0 if weights is None else weights[i]
        for rank, (doc_id, _) in enumerate(ranked, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def embed_queries(state: QueryState) -> None:
    """Vectors for the queries that have none (one batch), when dense search runs."""
    with Timer(state.trace, "embed") as d:
        todo = [q for q in state.queries if q.vector is None]
        vecs = (
            state.index.embedder.embed([q.embed_text or q.text for q in todo]) if todo else np.zeros((0, 1))
        )
        for q, v in zip(todo, vecs, strict=True):
            q.vector = v
        d["n"] = len(todo)


def _note(per_id: dict[str, dict[str, float]], ranked: Ranked, name: str) -> None:
    """Keep, per candidate, the best score and best rank any query gave it in this retriever."""
    for rank, (i, sc) in enumerate(ranked, start=1):
        f = per_id.setdefault(i, {})
        f[name] = max(f.get(name, float("-inf")), sc)
        f[f"{name}_rank"] = min(f.get(f"{name}_rank", float("inf")), rank)


def _search_one(state: QueryState, q: Query, mode: str) -> list[Ranked]:
    """One query through the retrievers `mode` names; a trace entry per retriever."""
    s, out = state.settings.search, []
    where = state.plan.where
    if mode in ("dense", "hybrid") and q.vector is not None and q.dense:
        with Timer(state.trace, "dense") as d:
            ranked = dense(state.index, q.vector, s.candidates, where)
            d.update(query=q.text, role=q.role, n=len(ranked))
        _note(state.features, ranked, "dense")
        out.append(ranked)
    if mode in ("bm25", "hybrid") and q.role != "hyde":
        with Timer(state.trace, "bm25") as d:
            grams = state.scores_bigrams(q)
            ranked = keyword(state.index, q.keyword_text or q.text, s.candidates, where, grams,
                             q.keyword_groups)
            d.update(query=q.keyword_text or q.text, role=q.role, n=len(ranked), bigrams=grams)
        _note(state.features, ranked, "bm25")
        out.append(ranked)
    return out


def run_queries(state: QueryState) -> QueryState:
    """Every query through the configured retrievers: `state.lists` and `state.features`."""
    mode = state.plan.mode or state.settings.search.mode
    if mode in ("dense", "hybrid"):
        # A cold process opens the store and loads its graph (0.3 s at 100k vectors) while the
        # questions are encoded; the first dense search waits for it.
        state.index.vectors.prefetch(state.index.vector_dim)
        embed_queries(state)
    by_query: list[list[Ranked]] = []
    for q in state.queries:
        found = _search_one(state, q, mode)
        state.lists += found
        by_query.append(found)
        for i in {i for ranked in found for i, _ in ranked}:
            f = state.features[i]
            f["n_queries"] = f.get("n_queries", 0.0) + 1.0
    _per_query(state, by_query)
    return state


def _per_query(state: QueryState, by_query: list[list[Ranked]]) -> None:
    """Each query's own ranking (its retrievers fused by RRF): per candidate the best rank any
    query gave it (`query_rank`, and `<role>_rank` per role), and `union`, the best per-query
    score, which orders a union of the queries' results (multi-query)."""
    cands = []
    for q, lists in zip(state.queries, by_query, strict=True):
        if not lists:
            continue
        ranked = fuse_rrf(lists, state.settings.search.rrf_k)
        for rank, (i, sc) in enumerate(ranked, start=1):
            f = state.features[i]
            for name in ("query_rank", f"{q.role}_rank"):
                f[name] = min(f.get(name, float("inf")), float(rank))
            f["union"] = max(f.get("union", 0.0), sc)
        top = [i for i, _ in ranked[:5]]
        cands.append({"query": q.text[:300], "role": q.role, "n": len(ranked), "top": top})
    state.trace.append(TraceEntry("candidates", 0.0, {"queries": cands}))


def fuse(state: QueryState) -> QueryState:
    """The ranked lists merged: RRF (the `rrf` feature), or, for a `union` plan, ordered by the
    best per-query score."""
    with Timer(state.trace, "fuse") as d:
        if len(state.lists) > 1:
            fused = fuse_rrf(state.lists, state.settings.search.rrf_k)
            for i, sc in fused:
                state.features[i]["rrf"] = sc
            if state.plan.merge == "union":
                f = state.features
                fused = sorted(fused, key=lambda t: (-f[t[0]]["union"], -t[1], t[0]))
        else:
            fused = state.lists[0] if state.lists else []
        state.fused = fused
        d["n"] = len(fused)
    return state

