"""The v2 ranking features computed by hand, the neighbour-aware coarse BM25, and passage
windows around hits (search small chunks, return the passage around them)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.index import Index
from core.settings import Settings, load_settings
from core.text import leads_in
from core.types import Hit, Record
from ingest.pipeline import ingest
from retrieval import features, window
from retrieval.pipeline import retrieve
from retrieval.rerank import context_bm25, dense_blind_share


def test_proximity_is_found_terms_over_the_smallest_span() -> None:
    q = frozenset({"glacier", "valley", "lava"})
    assert features.proximity(q, ("glacier", "valley")) == 1.0
    assert features.proximity(q, ("glacier", "x", "x", "valley")) == pytest.approx(2 / 4)
    # the later, tighter pair wins: glacier ... valley glacier
    assert features.proximity(q, ("glacier", "x", "x", "valley", "glacier")) == pytest.approx(2 / 2)
    assert features.proximity(q, ("x", "y")) == 0.0


def test_phrase_is_the_longest_run_of_question_terms_in_order() -> None:
    assert features.phrase(("self", "attent", "mechan"), ("the", "self", "attent", "mechan")) == 1.0
    assert features.phrase(("self", "attent", "mechan"), ("mechan", "self", "attent")) == pytest.approx(2 / 3)
    assert features.phrase(("a", "b"), ("c",)) == 0.0
    assert features.phrase(("a", "b"), ("b", "x", "a")) == pytest.approx(1 / 2)


def test_cjk_bigrams_match_terms_segmented_differently() -> None:
    assert features.cjk_bigrams("大模型") == frozenset({"大模", "模型"})
    assert features.cjk_bigrams("LLM大模型和RAG") == frozenset({"大模", "模型", "型和"})
    assert features.cjk_bigrams("english only") == frozenset()
    # the feature counts the question's bigrams found in the text as substrings: the same count
    q = features.cjk_bigrams("大模型微调")  # 大模 模型 型微 微调
    for text in ("大模型的微调", "大模。型微调", "LLM大模型和RAG", "微 调", ""):
        want = len(q & features.cjk_bigrams(text)) / len(q)
        assert features.bigram_share(q, text) == want
    assert features.bigram_share(q, "大模。型微调") == 3 / 4  # 大模, 型微, 微调; 模型 is cut by 。
    assert math.isnan(features.bigram_share(frozenset(), "大模型"))


def test_v2_features_on_a_hand_built_pool() -> None:
    hits = [
        Hit(Record("1", "大模型的微调方法", "/x/a.md", start=0), 0.0,
            {"sbert": 0.2, "bm25": 4.0, "bm25_prev": 0.0, "bm25_next": 2.0, "bm25_doc": 4.0}),
        Hit(Record("2", "模型训练 data", "/x/b.md", start=1000), 0.0,
            {"sbert": 0.1, "bm25": 2.0, "bm25_prev": 1.0, "bm25_next": 0.0, "bm25_doc": 3.0}),
    ]
    x = features.compute("大模型微调", hits)
    col = {n: i for i, n in enumerate(features.FEATURES)}
    assert x[0, col["bm25_next"]] == pytest.approx(0.5) and x[1, col["bm25_prev"]] == pytest.approx(0.25)
    assert x[1, col["bm25_doc"]] == pytest.approx(0.75)
    # question bigrams: 大模 模型 型微 微调; hit 1 has 大模 模型 微调 (3/4), hit 2 only 模型
    assert x[0, col["cjk_bigrams"]] == pytest.approx(3 / 4) and x[1, col["cjk_bigrams"]] == pytest.approx(
        1 / 4
    )
    assert x[0, col["query_cjk"]] == 1.0 and x[1, col["text_cjk"]] == pytest.approx(4 / 8)
    assert x[1, col["position"]] == pytest.approx(math.log1p(1000))
    assert math.isnan(features.compute("english words", hits)[0, col["cjk_bigrams"]])


def test_context_bm25_and_dense_blind_share() -> None:
    s = {"bm25": 2.0, "bm25_prev": 1.0, "bm25_next": 3.0, "bm25_doc": 5.0}
    assert context_bm25(s, 0.0, 0.0) == 2.0
    assert context_bm25(s, 0.5, 0.1) == pytest.approx(2.0 + 0.5 * 4.0 + 0.5)
    zh = [Hit(Record("1", "注意力机制", "/x"), 0.0)]
    assert dense_blind_share("what is attention", zh) == 1.0  # English question, Chinese text
    assert dense_blind_share("what is attention", [Hit(Record("1", "attention is", "/x"), 0.0)]) == 0.0
    # a mostly English corpus (12.5% CJK) caps the candidates' share; a Chinese question is blind anyway
    assert dense_blind_share("what is attention", zh, corpus_cap=0.125) == 0.125
    assert dense_blind_share("注意力是什么", zh, corpus_cap=0.125) == 1.0


@pytest.fixture
def small_chunks(tmp_path: Path) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir()
    paras = [f"Paragraph {i} talks about topic{i} and nothing else at all." for i in range(8)]
    paras[5] = "The answer is that the kettle must reach 93 degrees before the pour."
    (docs / "guide.md").write_text("# Guide\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    (docs / "other.md").write_text(
        "# Other\n\nVolcanoes erupt lava far away from kettles.\n", encoding="utf-8"
    )
    s = load_settings(chunk={"size": 20, "overlap": 0, "min_size": 1})
    ingest([docs], s)
    return s


def test_window_widens_a_hit_with_its_neighbours_within_the_budget(small_chunks: Settings) -> None:
    s = small_chunks
    off = s.model_copy(update={"search": s.search.model_copy(update={"window_tokens": 0})})
    plain = retrieve("kettle 93 degrees", off, k=3)
    top = plain.hits[0].record
    assert "93 degrees" in top.text
    wide_s = s.model_copy(update={"search": s.search.model_copy(update={"window_tokens": 60})})
    res = retrieve("kettle 93 degrees", wide_s, k=3)
    w = res.hits[0].record
    assert w.id == top.id and w.start < top.start and w.end > top.end  # neighbours on both sides
    full = Index(s).docs.file_text(top.source)
    assert full is not None and w.text == full[w.start : w.end]  # exact offsets into the source
    assert w.extra["hit_start"] == top.start and len(w.extra["window"]) >= 3
    from core.lang import approx_tokens

    pieces = Index(s).docs.get(w.extra["window"])
    assert sum(approx_tokens(p.text) for p in pieces.values()) <= 60
    # no later hit repeats a chunk already inside this window
    inside = set(w.extra["window"])
    assert all(h.record.id not in inside for h in res.hits[1:])
    assert any(t.stage == "window" for t in res.trace)


def test_windows_read_their_neighbours_in_one_store_read(small_chunks: Settings, monkeypatch) -> None:
    """Widening fetches every hit's likely neighbours at once (query latency, issue 17), and
    gives the same windows as fetching them one by one."""
    s = small_chunks
    off = s.model_copy(update={"search": s.search.model_copy(update={"window_tokens": 0})})
    hits = retrieve("topic2 topic6 kettle", off, k=4).hits
    assert len(hits) >= 3
    index = Index(s)
    one_by_one = []
    for h in hits:  # reference: each hit widened alone
        one_by_one += window.widen(index, [h], 60)[:1]
    calls: list[int] = []
    real_get = index.docs.get

    def counting_get(ids: list[str]) -> dict[str, Record]:
        calls.append(len(ids))
        return real_get(ids)

    monkeypatch.setattr(index.docs, "get", counting_get)
    together = window.widen(index, hits, 60)
    assert len(calls) == 1 and calls[0] >= len(hits)  # one read holding the neighbours of all hits
    first = {h.record.id: h.record for h in together}
    for ref in one_by_one:
        if ref.record.id in first:
            assert first[ref.record.id].text == ref.record.text


def test_window_budget_zero_returns_chunks(small_chunks: Settings) -> None:
    hits = retrieve("kettle 93 degrees", small_chunks, k=2).hits
    assert window.widen(Index(small_chunks), hits, 0) == hits


def test_a_window_stays_within_the_hits_pages() -> None:
    def rec(a: int | None, b: int | None) -> Record:
        return Record("x", "t", "/d.pdf", page_start=a, page_end=b)

    hit = rec(2, 2)
    assert window._same_pages(hit, rec(2, 2)) and window._same_pages(hit, rec(None, None))
    assert not window._same_pages(hit, rec(1, 1)) and not window._same_pages(hit, rec(2, 3))
    assert window._same_pages(rec(2, 3), rec(3, 3)) and not window._same_pages(rec(2, 3), rec(3, 4))
    assert window._same_pages(rec(None, None), rec(5, 6))  # unpaged hits (Markdown) widen freely


def test_only_the_first_k_windows_are_built(small_chunks: Settings, monkeypatch) -> None:
    """With k, widening stops at k windows and reads only the first k hits' neighbours up
    front; the windows are those of the full run (the stand-by hits fill in for covered ones)."""
    s = small_chunks
    off = s.model_copy(update={"search": s.search.model_copy(update={"window_tokens": 0})})
    hits = retrieve("topic2 topic6 kettle", off, k=6).hits
    assert len(hits) >= 4
    index = Index(s)
    full = window.widen(index, hits, 60)
    calls: list[list[str]] = []
    real_get = index.docs.get

    def recording_get(ids: list[str]) -> dict[str, Record]:
        calls.append(list(ids))
        return real_get(ids)

    monkeypatch.setattr(index.docs, "get", recording_get)
    two = window.widen(index, hits, 60, k=2)
    assert [(h.record.id, h.record.text) for h in two] == [(h.record.id, h.record.text) for h in full[:2]]
    first_two = {i for h in hits[:2] for i in window._around(index.keyword, h.record, 60)}
    assert set(calls[0]) == first_two


def test_a_window_that_ends_on_a_lead_in_takes_the_next_chunk_past_the_budget(tmp_path: Path) -> None:
    """"The kettle has three settings:" cut from its list by the chunker answered nothing; the
    window takes the chunk it introduces even when the budget has no room for it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    filler = [f"Paragraph {i} talks about topic{i} and nothing else at all." for i in range(4)]
    lead = "The kettle has three heat settings for tea:"
    items = "Low warms water to seventy degrees.\nMedium reaches eighty five.\nHigh boils it."
    (docs / "kettle.md").write_text("# Kettle\n\n" + "\n\n".join([*filler, lead, items, *filler]) + "\n",
                                    encoding="utf-8")
    s = load_settings(chunk={"size": 14, "overlap": 0, "min_size": 1})
    ingest([docs], s)
    index = Index(s)
    top = next(h for h in retrieve("kettle heat settings tea", s.model_copy(
        update={"search": s.search.model_copy(update={"window_tokens": 0})}), k=3).hits
        if h.record.text.endswith("for tea:"))
    assert leads_in(top.record.text) and "seventy" not in top.record.text
    # a budget with no room for a neighbour: only the lead-in's own continuation joins
    w = window.widen(index, [top], 14)[0].record
    assert w.start == top.record.start and "Low warms water to seventy degrees." in w.text
    full = index.docs.file_text(top.record.source)
    assert full is not None and w.text == full[w.start : w.end]
    assert len(w.extra["window"]) == 2
    assert not leads_in("Paragraph 1 talks about topic1.") and leads_in("由以下 6 个组件组成：")
