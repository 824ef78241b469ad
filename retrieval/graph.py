"""The knowledge graph as a retriever (`search.graph`; only where `rag ingest --graph` built one,
core/graph.py): the entities the question names, their neighbours up to `search.graph_hops`
relations away, and the chunks that mention any of them, as one more ranked list that fusion
merges with dense and BM25 (retriever name "graph").

This is what finds the second document of a two-hop question: "Who founded the institute where
Elena Varga trained?" names Elena Varga; the chunk that says where she trained names the Kessler
Institute; the chunk that says who founded it never names her, so neither retriever finds it
from the question, while the graph walks Elena Varga -> Kessler Institute -> its chunks (in the
spirit of LightRAG's local mode: entities first, then their text).

The list is ordered by fewer hops, then more of the neighbourhood's entities mentioned, then the
chunk's BM25 for the question. Each candidate it holds carries `graph_distance` and
`graph_shared` in its scores (for the reranking stages). A question that names no known entity
costs one in-memory lookup and adds no list."""

from __future__ import annotations

import logging

from core.graph import GraphStore
from core.store import matches_where
from core.types import Hit
from retrieval.state import QueryState, Ranked, Timer

log = logging.getLogger(__name__)

MIN_HUB = 5  # an entity in this many chunks or fewer is never a hub, however small the corpus
TRACE_ENTITIES = 20


def _matched(store: GraphStore, state: QueryState) -> dict[int, str]:
    """Entities the question (or its translations and variants) names: id -> the alias found."""
    found: dict[int, str] = {}
    for q in state.queries:
        if q.role != "hyde":  # a HyDE passage is the model's guess, not the user's words
            for eid, alias in store.match(q.text).items():
                found.setdefault(eid, alias)
    return found


def search(state: QueryState) -> QueryState:
    """Add the graph's ranked list to `state.lists` and its features to `state.features`."""
    s = state.settings.search
    store = state.index.graph if s.graph else None
    if store is None:
        return state
    with Timer(state.trace, "graph") as d:
        matched = _matched(store, state)
        d["matched"] = []
        if not matched:
            return state
        hub = max(MIN_HUB, int(s.graph_max_df * store.chunk_count()))
        df = store.mention_counts(matched)
        seeds = [e for e in matched if df.get(e, 0) <= hub]
        names = store.entities(matched)
        d["matched"] = [{"entity": names[e].name, "alias": a, "hub": e not in seeds}
                        for e, a in list(matched.items())[:TRACE_ENTITIES] if e in names]
        dist = store.neighbourhood(seeds, s.graph_hops, max_mentions=hub)
        ranked = _ranked(state, store.chunks_of(dist))
        d.update(hops=s.graph_hops, entities=len(dist), n=len(ranked), top=[i for i, _ in ranked[:5]])
    if ranked:
        state.lists.append(ranked)
    return state


def _ranked(state: QueryState, chunks: dict[str, tuple[int, int]]) -> Ranked:
    """The chunks best first (fewer hops, more shared entities, higher BM25), cut to
    `search.candidates`; their graph features noted."""
    ids = sorted(chunks)
    if state.plan.where:
        recs = state.index.docs.get(ids)
        ids = [i for i in ids if i in recs and matches_where(recs[i], state.plan.where)]
    scores = state.index.keyword.score_ids(state.keyword_query, ids, state.keyword_bigrams,
                                           state.keyword_groups)
    bm25 = dict(zip(ids, scores.tolist(), strict=True))
    ids.sort(key=lambda i: (chunks[i][0], -chunks[i][1], -bm25[i], i))
    ranked = [(i, 1.0 / (1 + chunks[i][0])) for i in ids[: state.settings.search.candidates]]
    for rank, (i, score) in enumerate(ranked, start=1):
        f = state.features.setdefault(i, {})
        f.update(graph=score, graph_rank=float(rank), graph_distance=float(chunks[i][0]),
                 graph_shared=float(chunks[i][1]))
        f.setdefault("union", 0.0)  # a union plan orders by each query's own lists; the graph's come last
    return ranked


def rerank(state: QueryState) -> QueryState:
    """After the reranking stages: the graph's list fused back in by RRF (weight
    `search.graph_rerank_weight`) over the order they left. The coarse and LTR stages judge a
    chunk by its likeness to the question, which is exactly what the second document of a
    two-hop question lacks, so without this they undo what the graph found. Only where they ran
    (a first-stage search fused the graph's list already) and the graph's list has a survivor."""
    s = state.settings.search
    if not state.coarse_ran or s.graph_rerank_weight <= 0 or not state.hits:
        return state
    if not any("graph_rank" in h.scores for h in state.hits):
        return state
    with Timer(state.trace, "graph_rerank") as d:
        before = [h.record.id for h in state.hits[: state.k]]
        scored: list[tuple[float, int, Hit]] = []
        for rank, h in enumerate(state.hits, start=1):
            g = h.scores.get("graph_rank")
            score = 1.0 / (s.rrf_k + rank) + (s.graph_rerank_weight / (s.rrf_k + g) if g else 0.0)
            h.scores["graph_fused"] = score
            scored.append((score, rank, h))
        scored.sort(key=lambda t: (-t[0], t[1]))
        state.hits = [h for _, _, h in scored]
        after = [h.record.id for h in state.hits[: state.k]]
        d.update(weight=s.graph_rerank_weight, joined_top_k=len(set(after) - set(before)))
    return state
