"""The query path without generation, top to bottom:
queries (the question, or what query translation made of it) -> search each (dense +
BM25) -> fuse (RRF) -> map representations to parent chunks -> coarse rerank -> LTR
rerank -> top-k. Each stage adds a trace entry; the configuration comes from settings
(and per-call overrides), so evaluation can run any subset of stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import IndexError_
from core.index import Index
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval import crosslingual, search, tree, window


@dataclass
class Query:
    """One search query: the question itself or one that query translation produced."""

    text: str
    role: str = "original"  # original | variant | step_back | hyde | sub
    embed_text: str | None = None  # what to embed instead of `text` (HyDE passage)
    vector: np.ndarray | None = None  # a ready vector (e.g. HyDE averaged with the question)
    dense: bool = True  # False: keyword search only (HyDE searches dense with the passage instead)
    keyword_text: str | None = None  # what BM25 searches instead of `text` (glosses added)


@dataclass
class RetrievalResult:
    query: str
    hits: list[Hit]
    trace: list[TraceEntry] = field(default_factory=list)
    query_vector: np.ndarray | None = None

    def timings(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for t in self.trace:
            out[t.stage] = round(out.get(t.stage, 0.0) + t.ms, 2)
        return out


class Timer:
    """`with Timer(trace, "stage") as detail:` appends a TraceEntry with the elapsed ms."""

    def __init__(self, trace: list[TraceEntry], stage: str) -> None:
        self.trace, self.stage = trace, stage
        self.detail: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.t0 = time.perf_counter()
        return self.detail

    def __exit__(self, *exc: object) -> None:
        self.trace.append(TraceEntry(self.stage, (time.perf_counter() - self.t0) * 1000, self.detail))


def to_parents(index: Index, ranked: list[tuple[str, float]], scores: dict[str, dict[str, float]]) -> list[Hit]:
    """Representations (summaries, questions) stand for their parent chunk: the hit shows
    the parent's text and remembers which representation matched. RAPTOR nodes stay."""
    recs = index.docs.get([i for i, _ in ranked])
    parent_ids = [r.parent_id for r in recs.values() if r.kind in ("summary", "question") and r.parent_id]
    parents = index.docs.get(parent_ids) if parent_ids else {}
    hits: list[Hit] = []
    seen: set[str] = set()
    for rid, score in ranked:
        rec = recs.get(rid)
        if rec is None:  # a vector no committed record owns (interrupted ingest)
            continue
        matched = None
        if rec.kind in ("summary", "question") and rec.parent_id in parents:
            matched, rec = rid, parents[rec.parent_id]
        if rec.id in seen:
            continue
        seen.add(rec.id)
        hits.append(Hit(rec, score, dict(scores.get(rid, {})), matched))
    return hits


def _note(per_id: dict[str, dict[str, float]], ranked: list[tuple[str, float]], name: str) -> None:
    """Keep, per candidate, the best score and best rank any query gave it in this retriever."""
    for rank, (i, sc) in enumerate(ranked, start=1):
        f = per_id.setdefault(i, {})
        f[name] = max(f.get(name, float("-inf")), sc)
        f[f"{name}_rank"] = min(f.get(f"{name}_rank", float("inf")), rank)


def search_queries(
    index: Index, queries: list[Query], settings: Settings, mode: str, trace: list[TraceEntry],
    where: dict[str, Any] | None = None,
) -> tuple[list[list[tuple[str, float]]], dict[str, dict[str, float]], np.ndarray | None]:
    """Run every query through the configured retrievers; returns the ranked lists, the
    per-candidate features, and the original question's vector."""
    s = settings.search
    lists: list[list[tuple[str, float]]] = []
    per_id: dict[str, dict[str, float]] = {}
    hit_by: dict[str, set[int]] = {}
    by_query: dict[int, list[list[tuple[str, float]]]] = {}
    qvec: np.ndarray | None = None
    if mode in ("dense", "hybrid"):
        with Timer(trace, "embed") as d:
            todo = [q for q in queries if q.vector is None]
            vecs = index.embedder.embed([q.embed_text or q.text for q in todo]) if todo else []
            for q, v in zip(todo, vecs, strict=True):
                q.vector = v
            d["n"] = len(todo)
        qvec = queries[0].vector
    for qi, q in enumerate(queries):
        if mode in ("dense", "hybrid") and q.vector is not None and q.dense:
            with Timer(trace, "dense") as d:
                ranked = search.dense(index, q.vector, s.candidates, where)
                d.update(query=q.text, role=q.role, n=len(ranked))
            _note(per_id, ranked, "dense")
            lists.append(ranked)
            by_query.setdefault(qi, []).append(ranked)
            for i, _ in ranked:
                hit_by.setdefault(i, set()).add(qi)
        if mode in ("bm25", "hybrid") and q.role != "hyde":
            with Timer(trace, "bm25") as d:
                ranked = search.keyword(index, q.keyword_text or q.text, s.candidates)
                if where:
                    ranked = _filter(index, ranked, where)
                d.update(query=q.keyword_text or q.text, role=q.role, n=len(ranked))
            _note(per_id, ranked, "bm25")
            lists.append(ranked)
            by_query.setdefault(qi, []).append(ranked)
            for i, _ in ranked:
                hit_by.setdefault(i, set()).add(qi)
    for i, qs in hit_by.items():
        per_id[i]["n_queries"] = float(len(qs))
    _per_query(per_id, by_query, queries, s.rrf_k, trace)
    return lists, per_id, qvec


def _per_query(per_id: dict[str, dict[str, float]], by_query: dict[int, list[list[tuple[str, float]]]],
               queries: list[Query], k: int, trace: list[TraceEntry]) -> None:
    """Each query's own ranking (its retrievers fused by RRF): per candidate the best rank any
    query gave it (`query_rank`, and `<role>_rank` per role), and `union`, the best per-query
    score, which orders a union of the queries' results (multi-query)."""
    cands = []
    for qi, ls in by_query.items():
        ranked = search.fuse_rrf(ls, k)
        role = queries[qi].role
        for rank, (i, sc) in enumerate(ranked, start=1):
            f = per_id[i]
            for name in ("query_rank", f"{role}_rank"):
                f[name] = min(f.get(name, float("inf")), float(rank))
            f["union"] = max(f.get("union", 0.0), sc)
        cands.append({"query": queries[qi].text[:300], "role": role, "n": len(ranked),
                      "top": [i for i, _ in ranked[:5]]})
    trace.append(TraceEntry("candidates", 0.0, {"queries": cands}))


def _filter(index: Index, ranked: list[tuple[str, float]], where: dict[str, Any]) -> list[tuple[str, float]]:
    """Apply a Chroma-style metadata filter to BM25 results (simple equality / $in only)."""
    from core.store import matches_where

    recs = index.docs.get([i for i, _ in ranked])
    return [(i, s) for i, s in ranked if i in recs and matches_where(recs[i], where)]


def retrieve(
    query: str, settings: Settings, index: Index | None = None, k: int | None = None,
    mode: str | None = None, where: dict[str, Any] | None = None, queries: list[Query] | None = None,
    coarse: bool | None = None, ltr: bool | None = None, merge: str = "rrf",
) -> RetrievalResult:
    """`coarse` / `ltr` switch the reranking stages for this call (default: settings).
    `merge`: how several queries' results combine, "rrf" (fusion) or "union" (deduplicated,
    ordered by the best per-query score; the `rrf` feature is kept either way)."""
    index = index or Index(settings)
    index.check_compatible()
    if not index.exists():
        raise IndexError_(f"No index at {index.path}; run `rag ingest PATH` first (or set RAG_INDEX_DIR).")
    if index.docs.is_empty():
        raise IndexError_(f"The index at {index.path} is empty; run `rag ingest PATH` to add documents.")
    s = settings.search
    k = k or s.top_k
    mode = mode or s.mode
    trace: list[TraceEntry] = []
    queries = queries or [Query(query)]
    if s.tree_mode == "traversal" and where is None:  # RAPTOR tree, top-down (retrieval/tree.py)
        q0 = queries[0]
        qv = q0.vector if q0.vector is not None else index.embedder.embed_query(q0.embed_text or q0.text)
        if (tree_hits := tree.traversal_hits(index, qv, settings, trace)) is not None:
            return RetrievalResult(query, tree_hits[:k], trace, qv)
    for q in queries:  # English question, Chinese corpus: its glossed terms join the BM25 query
        if q.role != "hyde" and q.keyword_text is None:
            q.keyword_text = crosslingual.gloss_query(q.text, index, settings, trace)
    lists, per_id, qvec = search_queries(index, queries, settings, mode, trace, where)
    with Timer(trace, "fuse") as d:
        if len(lists) > 1:
            fused = search.fuse_rrf(lists, s.rrf_k)
            for i, sc in fused:
                per_id[i]["rrf"] = sc
            if merge == "union":
                fused = sorted(fused, key=lambda t: (-per_id[t[0]]["union"], -t[1], t[0]))
        else:
            fused = lists[0] if lists else []
        hits = to_parents(index, fused, per_id)
        d["n"] = len(hits)
    # The reranking stages score BM25 and term features with the question's keyword query.
    hits = _rerank(index, queries[0].keyword_text or query, queries, hits, settings, trace, k, coarse, ltr)
    if s.window_tokens > 0:  # return passage windows around the hits (retrieval/window.py)
        with Timer(trace, "window") as d:
            before = hits[: k * 3]
            hits = window.widen(index, before, s.window_tokens, k)
            d.update(budget_tokens=s.window_tokens, merged=_merged(before, hits))
    if any(h.matched for h in hits[:k]):  # which summary / question stood for a chunk
        trace.append(TraceEntry("representations", 0.0, {"matched": tree.matched_detail(index, hits[:k])}))
    return RetrievalResult(query, hits[:k], trace, qvec)


def _merged(before: list[Hit], shown: list[Hit]) -> int:
    """Hits left out because a better-ranked window already holds them."""
    ids = {h.record.id for h in shown}
    inside = {i for h in shown for i in h.record.extra.get("window", [])}
    last = max((j for j, h in enumerate(before) if h.record.id in ids), default=-1)
    return sum(1 for h in before[: last + 1] if h.record.id in inside and h.record.id not in ids)


def _rerank(
    index: Index, query: str, queries: list[Query], hits: list[Hit], settings: Settings,
    trace: list[TraceEntry], k: int, coarse: bool | None, ltr: bool | None,
) -> list[Hit]:
    from retrieval import rerank

    s = settings.search
    if not (s.coarse if coarse is None else coarse) and not (s.ltr if ltr is None else ltr):
        return hits
    if queries[0].vector is None:  # BM25-only search: the coarse stage still needs the question's vector
        queries[0].vector = index.embedder.embed_query(queries[0].embed_text or queries[0].text)
    vectors: dict[str, np.ndarray] = {"original": queries[0].vector}
    for role in ("step_back", "hyde"):
        vs = [q.vector for q in queries if q.role == role and q.vector is not None]
        if vs:
            vectors[role] = np.mean(vs, axis=0)
    return rerank.rerank(index, query, hits, vectors, settings, trace, len(queries), coarse, ltr, k=k)
