"""The ranker trains itself on a fresh ingest, from pseudo-queries cut from the corpus,
and switches itself on only when it measured better than the coarse order on held-out
ones; `rag status --json` and the trace say which ranker is active and why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.index import Index
from core.settings import Settings, load_settings
from eval import self_train as st
from ingest.pipeline import ingest
from retrieval.pipeline import retrieve
from retrieval.rerank import MANIFEST_FILE, ranker_path
from tests.conftest import REPO, SAMPLE

NOTES = REPO / "tests" / "data" / "llm-notes-zh"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE, docs)
    for f in NOTES.iterdir():
        shutil.copy(f, docs / f.name)
    return docs


def _with(settings: Settings, **search: object) -> Settings:
    return settings.model_copy(update={"search": settings.search.model_copy(update=search)})


def test_pseudo_queries_come_from_the_corpus_and_name_their_chunk(corpus: Path, settings: Settings) -> None:
    ingest([corpus], settings)
    index = Index(settings)
    qs = st.cut_queries(st.chunks_by_source(index), 60, seed=1)
    assert len(qs) == 60 and len({q.text for q in qs}) == 60
    recs = index.docs.get([i for q in qs for i in q.relevant])
    for q in qs:
        assert q.relevant and all(i in recs for i in q.relevant)
        best = max(q.relevant, key=lambda i: q.relevant[i])
        if q.how == "crop":  # words of a span of the chunk's own text, scrambled
            assert all(w in recs[best].text for w in q.text.split())
    assert {q.how for q in qs} >= {"crop", "terms"}  # the notes mix English terms into Chinese
    assert st.cut_queries(st.chunks_by_source(index), 60, seed=1)[5].text == qs[5].text  # deterministic


def test_training_sees_the_chunks_the_ranker_orders(
    corpus: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LTR stage orders chunks before they are widened into passage windows, so its
    training lists are those chunks: no window widens them (a window's text is longer and
    holds its neighbours, which it merges out of the list, labels and all)."""
    from retrieval import window

    ingest([corpus], settings)
    index = Index(settings)
    widened: list[int] = []
    real = window.widen

    def spy(index, hits, budget, k=None):  # type: ignore[no-untyped-def]
        widened.append(len(hits))
        return real(index, hits, budget, k)

    monkeypatch.setattr(window, "widen", spy)
    qs = st.cut_queries(st.chunks_by_source(index), 20, seed=2)
    groups = st.collect(index, settings, qs, None)
    assert widened == [] and len(groups) == len(qs)
    chunks = index.docs.get([i for g in groups for i in g.ids if i])
    assert all(chunks[i].kind == "chunk" for g in groups for i in g.ids if i)
    assert sum(g.y.max(initial=0) > 0 for g in groups) >= len(groups) * 0.8  # their own chunk is found
    retrieve(qs[0].text, settings, index)  # the query path does widen (the spy works)
    assert widened


def test_self_training_switches_on_only_when_it_measured_better(corpus: Path, settings: Settings) -> None:
    ingest([corpus], settings)
    index = Index(settings)
    on = st.self_train(index, _with(settings, ltr_min_gain=-1.0, ltr_self_queries=120))
    assert on.trained and on.active and on.queries > 0
    man = json.loads((ranker_path(settings) / MANIFEST_FILE).read_text())
    assert man["report"]["source"] == st.SOURCE and man["report"]["active"] is True
    res = retrieve("Transformer 的注意力机制", settings, index=index, k=3)
    ltr = [t for t in res.trace if t.stage == "ltr"][0]
    assert "model" in ltr.detail and "skipped" not in ltr.detail
    assert "ltr" in res.hits[0].scores
    assert ltr.detail["mix"] == settings.search.ltr_self_mix
    # mixed with the coarse order: each hit's final score is the z-score blend, by hand
    half = _with(settings, ltr_self_mix=0.5, window_tokens=0)  # windows would merge hits
    res = retrieve("Transformer 的注意力机制", half, index=Index(half), k=30)
    assert [t for t in res.trace if t.stage == "ltr"][0].detail["mix"] == 0.5
    head = [h for h in res.hits if "ltr" in h.scores]
    lt = np.array([h.scores["ltr"] for h in head])
    co = np.array([h.scores["coarse"] for h in head])
    want = 0.5 * (lt - lt.mean()) / lt.std() + 0.5 * (co - co.mean()) / co.std()
    assert np.allclose([h.score for h in head], want)
    assert [h.score for h in head] == sorted((h.score for h in head), reverse=True)

    off = st.self_train(index, _with(settings, ltr_min_gain=1.0, ltr_self_queries=120), force=True)
    assert off.trained and not off.active and "kept off" in off.reason
    res = retrieve("Transformer 的注意力机制", settings, index=Index(settings), k=3)
    ltr = [t for t in res.trace if t.stage == "ltr"][0]
    assert "kept off" in ltr.detail["skipped"] and "ltr" not in res.hits[0].scores


def test_retraining_is_due_only_after_enough_change(corpus: Path, settings: Settings) -> None:
    ingest([corpus], settings)
    index = Index(settings)
    small = _with(settings, ltr_self_queries=80, ltr_min_gain=-1.0)
    assert st.due(index, small)[0]
    st.self_train(index, small)
    go, why = st.due(index, small)
    assert not go and "0%" in why
    (corpus / "extra.md").write_text(
        "\n\n".join(f"# Part {i}\n\nNew text number {i} about espresso crema." for i in range(40)),
        encoding="utf-8",
    )
    ingest([corpus], settings)
    go, why = st.due(Index(settings), small)
    assert go and "changed" in why


def test_the_chunk_ids_after_an_ingest_come_from_the_keyword_index_it_just_built(
    corpus: Path, settings: Settings
) -> None:
    """The retraining check reads every chunk id; after an ingest the keyword index this
    process built has them (the same set the document store gives), a loaded one does not."""
    index = Index(settings)
    ingest([corpus], settings, index=index)
    built = index.keyword.built_chunk_ids()
    assert built is not None and set(built) == set(index.docs.ids_of_kind("chunk")) and len(built) > 20
    assert len(built) == len(set(built))
    fresh = Index(settings)
    fresh.keyword.load()
    assert fresh.keyword.built_chunk_ids() is None  # another process may have changed the store
    assert set(st._chunk_ids(fresh)) == set(built)


def test_a_labelled_ranker_takes_precedence(corpus: Path, settings: Settings) -> None:
    ingest([corpus], settings)
    p = ranker_path(settings)
    p.mkdir(parents=True)
    (p / MANIFEST_FILE).write_text(json.dumps({"report": {"source": "beir", "dataset": "mine"}}))
    go, why = st.due(Index(settings), settings)
    assert not go and "labelled" in why


def test_too_small_a_corpus_is_not_trained(settings: Settings, tmp_path: Path) -> None:
    ingest([SAMPLE], settings)
    res = st.self_train(Index(settings), settings)
    assert not res.trained and "too few" in res.reason


def _rag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ), cwd=os.getcwd())


def test_rag_ingest_trains_and_status_says_which_ranker_is_active(corpus: Path) -> None:
    r = _rag("ingest", str(corpus), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["ranker"]["trained"] is True and summary["ranker"]["queries"] > 50
    status = json.loads(_rag("status", "--json").stdout)
    rk = status["ranker"]
    assert rk["source"] == st.SOURCE and rk["active"] is summary["ranker"]["active"]
    assert rk["reason"] == summary["ranker"]["reason"]
    found = json.loads(_rag("search", "Transformer 的注意力机制", "--json").stdout)
    assert found["ranker"]["active"] is rk["active"] and found["ranker"]["why"] == rk["reason"]
    again = json.loads(_rag("ingest", str(corpus), "--json").stdout)
    assert again["ranker"]["trained"] is False and "changed since" in again["ranker"]["reason"]
    assert load_settings().search.ltr_self_train  # on by default


def test_crops_are_scrambled_into_bags_of_their_words() -> None:
    import random

    text = "the ridge estimator shrinks coefficients towards zero with an l2 penalty"
    words = text.split()
    outs = [st._scramble(text, random.Random(seed)).split() for seed in range(20)]
    assert all(2 <= len(o) <= len(words) and set(o) <= set(words) for o in outs)
    assert any(len(o) < len(words) for o in outs)  # words dropped
    assert any(o != [w for w in words if w in o] for o in outs)  # and their order shuffled
    zh = st._scramble("梯度裁剪用于防止梯度爆炸的问题", random.Random(1))
    assert " " in zh and set(zh.replace(" ", "")) <= set("梯度裁剪用于防止梯度爆炸的问题")
    assert st._scramble("two words", random.Random(0)) == "two words"


def test_the_gate_needs_the_gain_and_no_loss_on_enough_llm_written_questions() -> None:
    """gate(): the held-out gain over the coarse order must reach search.ltr_min_gain; with
    LLM_GATE_MIN or more LLM-written questions held out, the ranker must not rank those worse."""
    def cv(gain: float, llm: tuple[int, float] | None = None) -> dict[str, object]:
        out: dict[str, object] = {"folds": 5, "without_ranker": 0.6, "with_ranker": 0.6 + gain}
        if llm is not None:
            out["subsets"] = {"llm": {"queries": llm[0], "without_ranker": 0.7, "with_ranker": 0.7 + llm[1]}}
        return out

    n = st.LLM_GATE_MIN
    assert st.gate(cv(0.005), 0.01)[0] is False
    on, why = st.gate(cv(0.05), 0.01)
    assert on and "+0.050" in why and "LLM" not in why
    off, why = st.gate(cv(0.05, (n, -0.02)), 0.01)
    assert not off and "-0.020" in why and f"{n} LLM-written" in why
    assert st.gate(cv(0.05, (n - 1, -0.02)), 0.01)[0]  # too few to judge by
    on, why = st.gate(cv(0.05, (n + 5, 0.01)), 0.01)
    assert on and "+0.010 on the" in why
    assert st.gate(cv(0.0, (n, 0.2)), 0.01)[0] is False  # the LLM subset alone does not switch it on
