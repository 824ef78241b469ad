"""The query path, top to bottom, in `run`:

    condense (a follow-up -> a standalone question)
    -> route and translate (which collection and filter; the queries to search)
    -> [RAPTOR tree walk, when `search.tree_mode = traversal`, answers the search outright]
    -> gloss (English terms a Chinese corpus glosses join the BM25 query)
    -> search (dense + BM25, per query; the knowledge graph's chunks, retrieval/graph.py)
    -> fuse (RRF, or union) -> parents (representations
       stand for their chunk) -> coarse (SBERT cosine blended with BM25) -> LTR (LightGBM
       lambdarank, where trained and better) -> window (the passage around each hit)
    -> tables (a question about table data: read-only SQL over the tables found at ingest,
       retrieval/sql.py; rows found answer it, cited by table and row, retrieval/table_answer.py)
    -> grade (the original question's evidence; corrective retry; abstain)
    -> answer (extractive, or generated and every sentence checked).

One `QueryState` (retrieval/state.py) flows through; each stage reads it, writes its part and
appends its trace entry, and `state.skip` leaves stages out (`rag eval` composes pipelines that
way). `retrieve` runs the search stages (`rag search`); `retrieval.answer.ask_stream` runs the
whole path. To add a stage: a function `stage(state) -> state` here, called from `run` in its
place, and its name in `state.SKIPPABLE` if a caller may leave it out."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

import numpy as np

from core.errors import IndexError_, RagError
from core.index import Index
from core.llm import LLM
from core.llmcall import LLMCaller
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval import crosslingual, graph, rerank, search, tree
from retrieval import route as routing
from retrieval import window as windows
from retrieval.conversation import condense as condense_question
from retrieval.state import Plan, Query, QueryState, RetrievalResult, Search, Timer

if TYPE_CHECKING:
    from retrieval import translate as tr

# The answer stages (retrieval.respond, .table_answer: the composer, the claim check, query
# decomposition and translation), query translation and the opt-in late-interaction stage are
# imported where they run: `rag search` uses none of them, and they were ~0.1 s of its ~2 s
# cold start (2 cores).

log = logging.getLogger(__name__)

# What `retrieve` always leaves out: routing and query translation (`rag search` calls no LLM).
SEARCH_ONLY = frozenset({"translate"})


def run(state: QueryState) -> Iterator[str]:
    """The whole query path (module docstring). Yields the answer's text as it is made when
    `state.answer` is set; otherwise it only fills `state.hits` (iterate it to the end)."""
    t0 = time.perf_counter()
    condense(state)
    route_and_translate(state)
    if not walk_tree(state):
        gloss(state)
        search.run_queries(state)
        graph.search(state)  # the knowledge graph's list, where `rag ingest --graph` built one
        search.fuse(state)
        parents(state)
        coarse(state)
        late(state)
        ltr(state)
        graph.rerank(state)  # the graph's list fused back in after reranking (retrieval/graph.py)
        window(state)
    representations(state)
    state.retrieve_ms = (time.perf_counter() - t0) * 1000
    if not state.answer:
        return
    from retrieval import respond, table_answer

    if (from_rows := table_answer.answer_from_tables(state)) is not None:  # a question about table data
        yield from_rows
        return
    respond.grade(state, searcher(state))
    if state.abstain_reason:
        yield state.message
        return
    # sub-questions are searched concurrently (each on its own Index); a dropped sentence's one
    # search reuses this state's loaded index, as the corrective retry above does
    yield from respond.answer(state, searcher(state, threads=True), searcher(state))


def retrieve(
    query: str, settings: Settings, index: Index | None = None, k: int | None = None,
    plan: Plan | None = None, skip: Collection[str] = SEARCH_ONLY,
) -> RetrievalResult:
    """The search stages for `query`: the top `k` hits with their per-stage scores and the
    trace. `plan`: the queries, filter, merge rule and retrievers to search instead of the
    question alone (query translation's, or a caller's own); `skip`: stage names left out
    (state.FIRST_STAGE: no reranking). No LLM is called. A missing or empty index is an
    IndexError_ naming the fix."""
    index = index or Index(settings)
    state = QueryState(query, settings, index, settings.search.top_k if k is None else k,
                       plan=plan or Plan(), skip=frozenset(skip) | SEARCH_ONLY)
    return retrieve_state(state)


def retrieve_state(state: QueryState) -> RetrievalResult:
    """`run` without the answer stages, for a state a caller built (`rag eval` gives it an LLM
    to translate with); its top `state.k` hits."""
    index = state.index
    index.check_compatible()
    if not index.exists():
        raise IndexError_(f"No index at {index.path}; run `rag ingest PATH` first (or set RAG_INDEX_DIR).")
    if index.docs.is_empty():
        raise IndexError_(f"The index at {index.path} is empty; run `rag ingest PATH` to add documents.")
    state.answer = False
    for _ in run(state):
        pass
    return RetrievalResult(state.question, state.hits[: state.k], state.trace, state.query_vector,
                           state.keyword_query)


def searcher(state: QueryState, threads: bool = False) -> Search:
    """One more search with the state's settings and filter (a corrective retry, a decomposed
    sub-question), for the answer stages. The state's index is reused (its stores are loaded);
    with `threads` (sub-questions are searched concurrently) each call opens its own Index, as
    an Index's SQLite connection is not shared across threads."""
    def again(query: str) -> RetrievalResult:
        index = Index(state.settings) if threads else state.index
        return retrieve(query, state.settings, index, state.k, Plan([Query(query)], state.plan.where))

    return again


# --- the stages, in the order `run` calls them -----------------------------------------------

def condense(state: QueryState) -> QueryState:
    """A follow-up ("and how is it trained?") rewritten into a standalone question."""
    if state.answer and state.llm is not None and state.history:
        state.question = condense_question(state.question, state.history, state.llm, state.settings,
                                           state.trace)
    return state


def route_and_translate(state: QueryState) -> QueryState:
    """With a strategy (or an English question over a Chinese corpus and a capable model): the
    router picks the collection and filter (and, for `auto`, the strategy), query translation
    writes the queries. Unusable LLM output searches the question itself (recorded); a
    RagError (bad strategy name, Ollama down) is the user's to fix and propagates."""
    if not state.runs("translate") or state.llm is None:
        return state
    strategy = resolve_strategy(state)
    if strategy == "none":
        return state
    t0 = time.perf_counter()
    try:
        t = plan_question(state.question, strategy, state.settings, state.llm, state.trace, state.index)
    except RagError:
        raise
    except Exception as e:  # never crash the query on the LLM's account: search the question itself
        log.warning("query translation failed (%s); searching the question itself", e)
        state.trace.append(TraceEntry("translate", (time.perf_counter() - t0) * 1000,
                                      {"strategy": strategy, "fallback": f"{type(e).__name__}: {e}"}))
        return state
    state.translation, state.strategy, state.plan = t, t.strategy, t.plan()
    if t.settings is not state.settings:  # the router picked another collection's index
        state.settings, state.index = t.settings, Index(t.settings)
    return state


def plan_question(
    question: str, strategy: str, settings: Settings, llm: LLM, trace: list[TraceEntry],
    index: Index | None = None,
) -> tr.Translation:
    """Route `question`, then translate it with `strategy` (`none`: routing alone; `auto`: the
    route's pick). Routing and translation are independent LLM calls, run concurrently, unless
    the route picks the strategy."""
    from retrieval import translate as tr

    caller = LLMCaller(llm, tr.cache_store(settings, index), settings.translate.concurrency, optional=True)
    index = index or Index(settings)
    t = tr.start(question, strategy, settings, index)

    def do_route() -> None:
        t.route = routing.route(question, t.strategy, settings, caller, index.embedder, trace)

    if t.strategy == "auto":
        do_route()
        assert t.route is not None
        t.strategy = t.route.strategy
        tr.run_translation(t, settings, caller, index.embedder, trace)
    else:
        caller.run_all([do_route, lambda: tr.run_translation(t, settings, caller, index.embedder, trace)])
    tr.finish(t, caller, trace)
    return t


def resolve_strategy(state: QueryState) -> str:
    """The strategy to run: the one asked for; with none, `translate` when the question is
    written in the other script than the corpus (`translate.auto_language`) and the model can
    translate (one `answer.mode` lets write answers). A small model's translation is not
    trusted: the keyword glosses (retrieval/crosslingual.py) are all it gets."""
    from retrieval import respond
    from retrieval import translate as tr

    strategy = tr.check_strategy(state.strategy)
    if strategy != "none" or not state.settings.translate.auto_language:
        return strategy
    assert state.llm is not None
    detail: dict[str, object] = {"strategy": "translate"}
    try:
        mm = crosslingual.mismatch(state.question, state.index, state.settings)
    except Exception as e:  # no keyword index, an unreadable one: search the question itself
        log.warning("language check failed (%s); searching the question itself", e)
        detail["skipped"] = f"language check failed: {type(e).__name__}: {e}"
        mm = None
    if mm is not None:
        mode, why = respond.choose_mode(state.settings, state.llm)
        if mode == "generative":
            return "translate"
        detail.update(mismatch=mm.__dict__,
                      skipped=f"the model is too small to translate; keyword glosses only ({why})")
    if "skipped" in detail:
        state.trace.append(TraceEntry("translate", 0.0, detail))
    return "none"


def walk_tree(state: QueryState) -> bool:
    """RAPTOR tree traversal (`search.tree_mode = traversal`, no filter): top-down through the
    levels, instead of the flat search. False when it does not apply or there is no tree."""
    if state.settings.search.tree_mode != "traversal" or state.plan.where is not None:
        return False
    q0 = state.queries[0]
    if q0.vector is None:
        q0.vector = state.index.embedder.embed_query(q0.embed_text or q0.text)
    found = tree.traversal_hits(state.index, q0.vector, state.settings, state.trace)
    if found is None:
        return False
    state.hits = found
    return True


def gloss(state: QueryState) -> QueryState:
    """A question over text in the other script (an English question of Chinese text, a
    Chinese one of English text): its glossed terms join its BM25 query."""
    if not state.runs("gloss"):
        return state
    for q in state.queries:
        if q.role != "hyde" and q.keyword_text is None:
            g = crosslingual.glossed(q.text, state.index, state.settings, state.trace)
            if g is not None:
                q.keyword_text, q.keyword_groups = g.text, g.groups
            q.bigrams = g is None or g.bigrams
    return state


def parents(state: QueryState) -> QueryState:
    """Representations (summaries, questions) stand for their parent chunk: the hit shows the
    parent's text and remembers which representation matched. RAPTOR nodes stay."""
    with Timer(state.trace, "parents") as d:
        state.hits = to_parents(state.index, state.fused, state.features)
        d["n"] = len(state.hits)
    return state


def to_parents(
    index: Index, ranked: list[tuple[str, float]], scores: dict[str, dict[str, float]]
) -> list[Hit]:
    recs = index.docs.get([i for i, _ in ranked])
    parent_ids = [r.parent_id for r in recs.values() if r.kind in ("summary", "question") and r.parent_id]
    parent_recs = index.docs.get(parent_ids) if parent_ids else {}
    hits: list[Hit] = []
    seen: set[str] = set()
    for rid, score in ranked:
        rec = recs.get(rid)
        if rec is None:  # a vector no committed record owns (interrupted ingest)
            continue
        matched = None
        if rec.kind in ("summary", "question") and rec.parent_id in parent_recs:
            matched, rec = rid, parent_recs[rec.parent_id]
        if rec.id in seen:
            continue
        seen.add(rec.id)
        hits.append(Hit(rec, score, dict(scores.get(rid, {})), matched))
    return hits


def _vectors(state: QueryState) -> dict[str, np.ndarray]:
    """The question's vector (embedded now after a BM25-only search) and the mean vector of
    the step-back and HyDE queries, which the reranking stages score cosines against."""
    q0 = state.queries[0]
    if q0.vector is None:
        q0.vector = state.index.embedder.embed_query(q0.embed_text or q0.text)
    out: dict[str, np.ndarray] = {"original": q0.vector}
    for role in ("step_back", "hyde"):
        vs = [q.vector for q in state.queries if q.role == role and q.vector is not None]
        if vs:
            out[role] = np.mean(vs, axis=0)
    return out


def coarse(state: QueryState) -> QueryState:
    """SBERT coarse rerank of the whole pool (retrieval/rerank.py); the best
    `search.coarse_keep` go on to LTR, the next ones follow so no more than `k` is lost."""
    if not (state.runs("coarse") and state.settings.search.coarse) or not state.hits:
        return state
    with Timer(state.trace, "coarse") as d:
        before = [h.record.id for h in state.hits]
        hits, detail = rerank.coarse(state.index, state.keyword_query, state.hits, _vectors(state),
                                     state.settings, state.keyword_bigrams, state.keyword_groups)
        state.hits = hits[: max(state.settings.search.coarse_keep, state.k)]
        d.update(detail, candidates=rerank.listing(before, state.hits, "coarse"))
    state.coarse_ran = True
    return state


def late(state: QueryState) -> QueryState:
    """Late interaction (ColBERT MaxSim) over the best `search.late_keep`, when switched on."""
    s = state.settings.search
    if not (state.runs("late") and s.late) or not state.hits:
        return state
    from retrieval import late_interaction

    with Timer(state.trace, "late") as d:
        head, tail = state.hits[: s.late_keep], state.hits[s.late_keep :]
        before = [h.record.id for h in head]
        head, detail = late_interaction.rerank(state.index, state.queries[0].text, head, state.settings)
        state.hits = head + tail
        d.update(detail)
        if "skipped" not in detail:
            d["candidates"] = rerank.listing(before, head, "maxsim")
    return state


def ltr(state: QueryState) -> QueryState:
    """LightGBM lambdarank over the coarse stage's survivors, when a ranker is active (trained
    from labels, or self-trained and measured better); the trace says why not otherwise."""
    s = state.settings.search
    if not (state.runs("ltr") and s.ltr) or not state.hits:
        return state
    with Timer(state.trace, "ltr") as d:
        ranker, why = rerank.ranker_state(state.settings, state.index.embedder.name)
        if ranker is None:
            d["skipped"] = why
            return state
        head, tail = state.hits[: s.coarse_keep], state.hits[s.coarse_keep :]
        if not state.coarse_ran:  # the LTR features need the coarse scores; compute them for its share
            rerank.score_pool(state.index, state.keyword_query, head, _vectors(state), state.keyword_bigrams,
                              state.keyword_groups)
        before = [h.record.id for h in head]
        mix = s.ltr_self_mix if rerank.self_trained(ranker) and state.coarse_ran else 1.0
        head = rerank.fine(ranker, state.keyword_query, head, len(state.queries), mix)
        state.hits = head + tail
        d.update(model=str(ranker.path), why=why, n=len(head), mix=mix,
                 candidates=rerank.listing(before, head, "ltr"))
    return state


def window(state: QueryState) -> QueryState:
    """The hit widened to its neighbouring chunks within `search.window_tokens`, so the
    sentence that answers is not cut off (retrieval/window.py)."""
    budget = state.settings.search.window_tokens
    if not state.runs("window") or budget <= 0:
        return state
    with Timer(state.trace, "window") as d:
        before = state.hits[: state.k * 3]
        state.hits = windows.widen(state.index, before, budget, state.k)
        d.update(budget_tokens=budget, merged=_merged(before, state.hits))
    return state


def _merged(before: list[Hit], shown: list[Hit]) -> int:
    """Hits left out because a better-ranked window already holds them."""
    ids = {h.record.id for h in shown}
    inside = {i for h in shown for i in h.record.extra.get("window", [])}
    last = max((j for j, h in enumerate(before) if h.record.id in ids), default=-1)
    return sum(1 for h in before[: last + 1] if h.record.id in inside and h.record.id not in ids)


def representations(state: QueryState) -> QueryState:
    """For the trace: which summary / question stood for a chunk in the top k."""
    top = state.hits[: state.k]
    if any(h.matched for h in top):
        state.trace.append(TraceEntry("representations", 0.0,
                                      {"matched": tree.matched_detail(state.index, top)}))
    return state
