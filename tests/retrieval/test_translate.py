"""Query translation end to end on a real index with the embedded SmolLM2: each strategy's
structure (query counts and roles, deduplication, merge), fusion and union orders computed
by hand, the on-disk cache, concurrency with a concurrent backend, fallbacks when the LLM
fails, decomposition answered in order, and the wiring into `ask`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from core.index import Index
from core.llm import get_llm
from core.models import get_embedder
from core.types import Hit, Record, TraceEntry
from retrieval import search
from retrieval.decompose import _with_background, answer_steps, final_prompt
from retrieval.parse import _norm
from retrieval.pipeline import plan_question, retrieve
from retrieval.respond import prompt_question
from retrieval.state import Plan, Query
from retrieval.translate import Translation, check_strategy
from tests.ollama_server import OllamaTestServer, free_port
from tests.retrieval.routing_corpus import build, settings_for

Q = "How fine should the grind be for espresso?"
# Questions the embedded SmolLM2-135M handles at temperature 0 (greedy, deterministic on CPU):
# the strategies' main paths are asserted on these, the fallbacks in test_parse.py and below.
Q_MQ = "How do I steam milk for a latte?"
Q_SB = "What grind size should I use for espresso?"
Q_DEC = "What temperature should the water be for pour-over coffee?"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("translate"))


def _stages(trace: list[TraceEntry], stage: str) -> list[TraceEntry]:
    return [t for t in trace if t.stage == stage]


def test_strategy_names_are_checked() -> None:
    assert check_strategy("RAG-Fusion") == "fusion" and check_strategy("step_back") == "step-back"
    with pytest.raises(ConfigError, match="Unknown strategy 'magic'.*multi-query"):
        check_strategy("magic")


def _hand_orders(index: Index, texts: list[str], vecs: np.ndarray, n: int, k: int) -> tuple[
    list[str], list[str], dict[str, float], dict[str, float]
]:
    total: dict[str, float] = {}
    best: dict[str, float] = {}
    for text, vec in zip(texts, vecs, strict=True):
        own: dict[str, float] = {}
        for ranked in (search.dense(index, vec, n), search.keyword(index, text, n)):
            for rank, (i, _) in enumerate(ranked, start=1):
                total[i] = total.get(i, 0.0) + 1.0 / (k + rank)
                own[i] = own.get(i, 0.0) + 1.0 / (k + rank)
        for i, sc in own.items():
            best[i] = max(best.get(i, 0.0), sc)
    rrf_order = sorted(total, key=lambda i: (-total[i], i))
    union_order = sorted(total, key=lambda i: (-best[i], -total[i], i))
    return rrf_order, union_order, total, best


def test_fusion_and_union_orders_match_a_hand_computation(dirs: dict[str, Path]) -> None:
    """Two queries, each searched dense + BM25. RRF (fusion) sums 1/(k + rank) over all four
    lists; the union orders by each candidate's best per-query score (that query's two lists
    fused). Both computed here by hand from the retrievers' own lists, for several query pairs,
    at least one of which tells the two merges apart (which one depends on the corpus)."""
    s = settings_for(dirs)
    index = Index(s)
    emb = get_embedder(s.embedding)
    n, k = s.search.candidates, s.search.rrf_k
    pairs = [
        ["coarse grind four minutes", "water temperature pour-over"],
        ["espresso grind size", "steaming milk temperature"],
        ["bloom thirty seconds", "coarse grind breadcrumbs"],
        ["nine bar pressure", "silky latte milk"],
        ["pour in slow circles", "fine grind like table salt"],
    ]
    differs = []
    for texts in pairs:
        rrf_order, union_order, total, best = _hand_orders(index, texts, emb.embed(texts), n, k)
        differs.append(rrf_order != union_order)
        for merge, expected in (("rrf", rrf_order), ("union", union_order)):
            qs = [Query(texts[0]), Query(texts[1], "variant")]
            res = retrieve(texts[0], s, index, 50, Plan(qs, merge=merge, mode="hybrid"))
            assert [h.record.id for h in res.hits] == expected, (texts, merge)
            for h in res.hits:
                assert h.scores["rrf"] == pytest.approx(total[h.record.id])
                assert h.scores["union"] == pytest.approx(best[h.record.id])
    assert any(differs), "no pair tells RRF and union apart on this corpus"


def test_none_searches_the_question_with_no_llm_call(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    trace: list[TraceEntry] = []
    t = plan_question(Q, "none", s, get_llm(s), trace)
    assert [(q.role, q.text) for q in t.queries] == [("original", Q)]
    assert t.llm_calls == 0 and t.merge == "rrf" and not t.fallback
    assert {e.stage for e in trace} >= {"route", "translate", "llm_calls"}
    assert t.template is not None and t.template.name == "fact"


def test_step_back_prompt_labels_both_contexts() -> None:
    def hit(i: str, **ranks: float) -> Hit:
        return Hit(Record(i, f"text {i}", f"/d/{i}.md"), 1.0, dict(ranks))

    hits = [
        hit("a", original_rank=1, step_back_rank=4),
        hit("b", step_back_rank=1),
        hit("c", original_rank=2),
        hit("d", original_rank=9, step_back_rank=2),
    ]
    t = Translation("Q?", "step-back", [], settings=None, step_back="What is the general idea?")  # type: ignore[arg-type]
    text, ordered = prompt_question(t, "Q?", hits)
    assert [h.record.id for h in ordered] == ["a", "c", "b", "d"]
    assert "Passages [1]-[2] answer the question itself." in text
    assert 'Passages [3]-[4] are background for the broader question "What is the general idea?"' in text


@pytest.mark.slow
def test_multi_query_fusion_and_the_cache(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    s.translate.n_queries = 3
    trace: list[TraceEntry] = []
    t = plan_question(Q_MQ, "multi-query", s, get_llm(s), trace)
    assert t.llm_calls == 1 and t.cache_hits == 0 and t.merge == "union" and not t.fallback, t.notes
    assert t.queries[0].role == "original" and t.queries[0].text == Q_MQ
    variants = t.queries[1:]
    assert 1 <= len(variants) <= 3 and all(q.role == "variant" for q in variants)
    norms = [_norm(q.text) for q in t.queries]
    assert len(norms) == len(set(norms))  # no duplicates, the question not repeated
    tr = _stages(trace, "translate")[0].detail
    assert [q["text"] for q in tr["queries"]] == [q.text for q in t.queries]
    res = retrieve(Q_MQ, t.settings, k=20, plan=t.plan())
    ids = [h.record.id for h in res.hits]
    assert len(ids) == len(set(ids))  # union deduplicated by chunk id
    cands = _stages(res.trace, "candidates")[0].detail["queries"]
    assert [c["role"] for c in cands] == [q.role for q in t.queries]
    assert all("query_rank" in h.scores and "union" in h.scores and "rrf" in h.scores for h in res.hits)
    assert all(1 <= h.scores["n_queries"] <= len(t.queries) for h in res.hits)

    # fusion uses the same queries: the cached translation is reused, no LLM call
    t2 = plan_question(Q_MQ, "fusion", s, get_llm(s), [])
    assert (t2.llm_calls, t2.cache_hits, t2.merge) == (0, 1, "rrf")
    assert [q.text for q in t2.queries] == [q.text for q in t.queries]
    # another setting that shapes the prompt misses the cache
    s.translate.n_queries = 2
    t3 = plan_question(Q_MQ, "fusion", s, get_llm(s), [])
    assert (t3.llm_calls, t3.cache_hits) == (1, 0) and len(t3.queries) <= 3


@pytest.mark.slow
def test_step_back_searches_both_questions(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    t = plan_question(Q_SB, "step-back", s, get_llm(s), [])
    assert t.llm_calls == 1 and not t.fallback, t.notes
    assert [q.role for q in t.queries] == ["original", "step_back"]
    assert t.step_back == t.queries[1].text and _norm(t.step_back) != _norm(Q_SB)
    res = retrieve(Q_SB, t.settings, k=5, plan=t.plan())
    assert [d.detail["role"] for d in _stages(res.trace, "dense")] == ["original", "step_back"]
    assert all("original_rank" in h.scores or "step_back_rank" in h.scores for h in res.hits)
    text, hits = prompt_question(t, Q_SB, res.hits)
    assert (
        text.startswith(Q_SB)
        and "Passages [1]" in text
        and {h.record.id for h in hits} == {h.record.id for h in res.hits}
    )


@pytest.mark.slow
def test_hyde_searches_dense_with_the_passage_and_bm25_with_the_question(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    t = plan_question(Q, "hyde", s, get_llm(s), [])
    assert t.llm_calls == 1 and not t.fallback, t.notes
    assert t.hyde_passage
    orig, hy = t.queries
    assert (orig.role, orig.text, orig.dense) == ("original", Q, False)
    assert hy.role == "hyde" and hy.text == t.hyde_passage and hy.vector is not None
    vp, vq = get_embedder(s.embedding).embed([t.hyde_passage, Q])
    avg = (vp + vq) / np.linalg.norm(vp + vq)
    assert np.allclose(hy.vector, avg, atol=1e-5)
    res = retrieve(Q, t.settings, k=5, plan=t.plan())
    assert [d.detail["role"] for d in _stages(res.trace, "dense")] == ["hyde"]
    assert [d.detail["role"] for d in _stages(res.trace, "bm25")] == ["original"]
    assert res.hits


@pytest.mark.slow
def test_decompose_answers_sub_questions_in_order(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    llm = get_llm(s)
    t = plan_question(Q_DEC, "decompose", s, llm, [])
    assert t.llm_calls == 1 and not t.fallback, t.notes
    assert 1 <= len(t.sub_questions) <= s.translate.max_sub_questions
    assert [q.role for q in t.queries] == ["original"] + ["sub"] * len(t.sub_questions)
    assert [q.text for q in t.queries[1:]] == t.sub_questions
    # the orchestration, on two fixed sub-questions
    t.sub_questions = ["What grind does espresso need?", "What grind does a French press need?"]
    trace: list[TraceEntry] = []
    steps = answer_steps(t, llm, s, trace, lambda q: retrieve(q, t.settings, Index(t.settings), 2))
    assert [st.question for st in steps] == t.sub_questions
    assert "espresso.md" in steps[0].hits[0].record.source
    assert "french-press.md" in steps[1].hits[0].record.source
    subs = _stages(trace, "sub_answer")
    assert [e.detail["question"] for e in subs] == t.sub_questions
    assert all(e.detail["sources"] and "answer" in e.detail for e in subs)
    assert _stages(trace, "sub_retrieve")[0].detail["n"] == 2
    # later sub-questions see earlier answers, the final prompt sees all of them
    later = _with_background(t.sub_questions[1], steps[:1])
    assert steps[0].answer in later or not steps[0].answer
    text, hits = final_prompt(t.question, steps, steps[0].hits, k=2)
    assert all(st.question in text for st in steps if st.answer)
    assert len({h.record.id for h in hits}) == len(hits)


@pytest.mark.slow
def test_ask_with_strategies_end_to_end(dirs: dict[str, Path]) -> None:
    from retrieval.answer import AskOptions, ask

    s = settings_for(dirs)
    s.llm.max_tokens = 48
    s.translate.sub_answer_tokens = 32
    for strategy in ("decompose", "auto"):
        r = ask("Is the espresso grind finer than the French press grind?", s, AskOptions(strategy=strategy))
        stages = {e.stage for e in r.trace}
        assert {"route", "translate", "candidates"} <= stages, stages
        assert r.strategy in s.route.strategies and r.answer
        # the strategy ran: the entry is plan_question()'s own (a raise leaves only a fallback message)
        tr = next(e for e in r.trace if e.stage == "translate")
        assert tr.detail.get("queries") and isinstance(tr.detail.get("fallback"), bool), tr.detail
        if r.strategy == "decompose":
            n_sub = sum(1 for q in tr.detail["queries"] if q["role"] == "sub")
            assert len([e for e in r.trace if e.stage == "sub_answer"]) == n_sub


@pytest.mark.slow
def test_independent_calls_overlap_on_a_concurrent_backend(dirs: dict[str, Path]) -> None:
    """With an Ollama backend, routing (collection) and translation are separate, concurrent calls."""
    s = settings_for(dirs, collections=True)
    s.translate.cache = False
    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        s.llm.provider, s.llm.model, s.ollama_url, s.llm.num_ctx = "ollama", "smollm2:135m", srv.url, 2048
        trace: list[TraceEntry] = []
        t = plan_question("What grind size should I use for espresso?", "fusion", s, get_llm(s), trace)
    assert t.route is not None and t.route.collection == "coffee"
    calls = _stages(trace, "llm_calls")[0].detail
    assert [c["kind"] for c in calls["records"]] and calls["concurrent"] is True
    from core.llmcall import LLMCaller

    assert LLMCaller(get_llm(s)).parallel
    assert t.llm_calls == 2 and len([r for r in srv.requests if r["path"] == "/api/chat"]) == 2


@pytest.mark.slow
def test_an_unreachable_llm_falls_back_to_the_question(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs, collections=True)
    s.llm.provider, s.ollama_url, s.llm.timeout_s = "ollama", f"http://127.0.0.1:{free_port()}", 2.0
    trace: list[TraceEntry] = []
    for strategy in ("multi-query", "step-back", "hyde", "decompose", "auto"):
        t = plan_question("What grind size should I use for espresso?", strategy, s, get_llm(s), trace)
        assert t.route is not None and t.route.collection == "coffee"  # the embedding score still routes
        calls = _stages(trace, "llm_calls")[-1].detail["records"]
        assert calls and all(c.get("error") for c in calls)
        if strategy == "auto":
            assert any("fallback from the template" in n for n in t.route.notes)
            expected = t.route.template.strategy if t.route.template else "none"
            assert t.strategy == expected, (t.strategy, t.route.notes)
            # the question itself is searched: no strategy, or the template's whose LLM call failed too
            assert [q.role for q in t.queries] == ["original"] and t.fallback == (expected != "none")
        else:
            assert t.fallback and [q.role for q in t.queries] == ["original"]
