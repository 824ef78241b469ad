"""The query path without generation, top to bottom:
embed -> search (dense + BM25) -> fuse (RRF) -> map representations to parent chunks
-> top-k. Each stage adds a trace entry; the configuration comes from settings, so
evaluation can run any subset of stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import IndexError_
from core.index import Index
from core.settings import Settings
from core.types import Hit, Record, TraceEntry
from retrieval import search


@dataclass
class RetrievalResult:
    query: str
    hits: list[Hit]
    trace: list[TraceEntry] = field(default_factory=list)

    def timings(self) -> dict[str, float]:
        return {t.stage: round(t.ms, 2) for t in self.trace}


class _Timer:
    def __init__(self, trace: list[TraceEntry], stage: str) -> None:
        self.trace, self.stage, self.detail = trace, stage, {}  # type: ignore[var-annotated]

    def __enter__(self) -> dict[str, Any]:
        self.t0 = time.perf_counter()
        return self.detail

    def __exit__(self, *exc: object) -> None:
        self.trace.append(TraceEntry(self.stage, (time.perf_counter() - self.t0) * 1000, self.detail))


def _to_parents(index: Index, ranked: list[tuple[str, float]], scores: dict[str, dict[str, float]]
                ) -> tuple[list[Hit], dict[str, Record]]:
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
        sc = dict(scores.get(rid, {}))
        hits.append(Hit(rec, score, sc, matched))
    return hits, {**recs, **parents}


def retrieve(query: str, settings: Settings, index: Index | None = None, k: int | None = None,
             mode: str | None = None, where: dict[str, Any] | None = None) -> RetrievalResult:
    index = index or Index(settings)
    index.check_compatible()
    if not index.exists():
        raise IndexError_(f"No index at {index.path}; run `rag ingest PATH` first (or set RAG_INDEX_DIR).")
    s = settings.search
    k = k or s.top_k
    mode = mode or s.mode
    trace: list[TraceEntry] = []
    lists: list[list[tuple[str, float]]] = []
    per_id: dict[str, dict[str, float]] = {}
    if mode in ("dense", "hybrid"):
        with _Timer(trace, "embed"):
            qv = index.embedder.embed_query(query)
        with _Timer(trace, "dense") as d:
            ranked = search.dense(index, qv, s.candidates, where)
            d["n"] = len(ranked)
        for i, sc in ranked:
            per_id.setdefault(i, {})["dense"] = sc
        lists.append(ranked)
    if mode in ("bm25", "hybrid"):
        with _Timer(trace, "bm25") as d:
            ranked = search.keyword(index, query, s.candidates)
            d["n"] = len(ranked)
        for i, sc in ranked:
            per_id.setdefault(i, {})["bm25"] = sc
        lists.append(ranked)
    with _Timer(trace, "fuse") as d:
        if len(lists) > 1:
            fused = search.fuse_rrf(lists, s.rrf_k)
            for i, sc in fused:
                per_id[i]["rrf"] = sc
        else:
            fused = lists[0] if lists else []
        hits, _ = _to_parents(index, fused, per_id)
        d["n"] = len(hits)
    return RetrievalResult(query, hits[:k], trace)
