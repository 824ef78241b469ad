"""Hybrid search on a small real index (MiniLM + Chroma + bm25s): BM25 finds exact terms
dense search misses, in English and Chinese; RRF on a hand-computed example; the BM25
index and the coarse stage stay in step with changed and pruned files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.index import Index
from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval import search
from retrieval.pipeline import retrieve
from retrieval.state import FIRST_STAGE
from tests.files import write_docs

EN = {
    "kettle.md": "# Kettles\n\nAn electric kettle boils water quickly. Descale it monthly with vinegar.",
    "grinder.md": "# Grinders\n\nA burr grinder crushes coffee beans evenly for a consistent brew.",
    "press.md": "# French press\n\nSteep coarse coffee for four minutes, then press the plunger slowly.",
    "espresso.md": "# Espresso\n\nEspresso machines push hot water through finely ground coffee at pressure.",
    "warranty.md": "# Service\n\nFor repairs, quote part number QX7-ZB44 when you contact the workshop.",
    "gasket.md": "# Spare parts\n\nPart QX7-ZB47 is the replacement gasket; QX7-ZB41 is the steam wand tip.",
    "codes.md": "# Error codes\n\nCode QX9-ZB44A means the pump is blocked; code QX7-ZD44 means low water.",
    "milk.md": "# Milk\n\nSteam milk to about sixty degrees for a silky latte texture.",
}
ZH = {
    "green.txt": "绿茶的冲泡水温以八十度左右为宜，水温过高会把茶叶烫熟，使茶汤发苦。",
    "black.txt": "红茶可以用沸水冲泡，浸泡三到五分钟，茶汤红亮，香气浓郁。",
    "oolong.txt": "乌龙茶介于绿茶和红茶之间，属于半发酵茶，适合多次冲泡。",
    "puer.txt": "普洱茶产于云南，分为生茶和熟茶，存放越久滋味越醇厚。",
    "storage.txt": "茶叶应当密封保存，放在阴凉干燥的地方，远离异味和阳光直射。",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    root = tmp_path_factory.mktemp("hybrid")
    docs = write_docs(root / "docs", {**EN, **ZH})
    settings = load_settings(index_dir=str(root / "index"))
    ingest([docs], settings)
    return settings, docs


def _rank(ranked: list[tuple[str, float]], index: Index, name: str) -> int | None:
    recs = index.docs.get([i for i, _ in ranked])
    for n, (i, _) in enumerate(ranked, start=1):
        if Path(recs[i].source).name == name:
            return n
    return None


@pytest.mark.parametrize(("query", "target"), [("QX7-ZB44", "warranty.md"), ("红亮", "black.txt")])
def test_bm25_finds_exact_terms_dense_search_misses(
    corpus: tuple[Settings, Path], query: str, target: str
) -> None:
    settings, _ = corpus
    index = Index(settings)
    vec = index.embedder.embed_query(query)
    dense_rank = _rank(search.dense(index, vec, 20), index, target)
    bm25_rank = _rank(search.keyword(index, query, 20), index, target)
    assert bm25_rank == 1
    assert dense_rank is None or dense_rank > 1  # the embedder alone does not put it first
    hits = retrieve(query, settings, index=index, k=3).hits  # hybrid + coarse stage (defaults)
    assert Path(hits[0].record.source).name == target
    assert {"dense", "bm25", "rrf", "sbert"} <= set(hits[0].scores)


def test_chinese_question_finds_the_chinese_chunk(corpus: tuple[Settings, Path]) -> None:
    settings, _ = corpus
    hits = retrieve("绿茶冲泡的水温多少度合适？", settings, k=2).hits
    assert Path(hits[0].record.source).name == "green.txt"


def test_rrf_order_matches_a_hand_computed_example() -> None:
    a = [("a", 9.0), ("b", 5.0), ("c", 1.0)]
    b = [("c", 0.9), ("a", 0.8), ("d", 0.1)]
    fused = search.fuse_rrf([a, b], k=60)
    # a: 1/61 + 1/62 = 0.032522, c: 1/63 + 1/61 = 0.032266, b: 1/62 = 0.016129, d: 1/63 = 0.015873
    assert [i for i, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    weighted = search.fuse_rrf([a, b], k=60, weights=[1.0, 3.0])
    assert [i for i, _ in weighted][:2] == ["c", "a"]  # 3/61 + 1/63 beats 1/61 + 3/62


def test_coarse_stage_keeps_a_strong_bm25_candidate(corpus: tuple[Settings, Path]) -> None:
    settings, _ = corpus
    s = settings.model_copy(update={"search": settings.search.model_copy(update={"coarse_keep": 2})})
    res = retrieve("QX7-ZB44 part number", s, k=2)
    assert Path(res.hits[0].record.source).name == "warranty.md"
    coarse = [t for t in res.trace if t.stage == "coarse"]
    assert coarse and coarse[0].detail["pool"] >= 2 and coarse[0].detail["candidates"][0]["rank"] == 1


def test_coarse_scores_come_from_stored_embeddings(corpus: tuple[Settings, Path]) -> None:
    settings, _ = corpus
    res = retrieve("how long to steep coffee in a french press", settings, k=6)
    for h in res.hits:
        assert "sbert" in h.scores and "bm25" in h.scores
        if "dense" in h.scores:  # the stored vector gives the cosine Chroma measured
            assert h.scores["sbert"] == pytest.approx(h.scores["dense"], abs=1e-4)
    assert Path(res.hits[0].record.source).name == "press.md"


def test_stages_switch_per_call(corpus: tuple[Settings, Path]) -> None:
    settings, _ = corpus
    plain = retrieve("burr grinder", settings, k=3, skip=FIRST_STAGE)
    assert all("sbert" not in h.scores for h in plain.hits)
    assert not {"coarse", "ltr"} & {t.stage for t in plain.trace}
    full = retrieve("burr grinder", settings, k=3)
    ltr = [t for t in full.trace if t.stage == "ltr"]
    assert ltr and "no trained ranker" in ltr[0].detail["skipped"]  # no model beside this index
    assert retrieve("burr grinder", settings, k=40).hits  # more than coarse_keep asked: all of them come back


def test_index_stays_in_step_after_changed_and_pruned_files(tmp_path: Path, settings: Settings) -> None:
    docs = write_docs(
        tmp_path / "docs",
        {
            "a.md": "# A\n\nThe zeppelin hangar stores airships.",
            "b.md": "# B\n\nA quokka is a small marsupial from Rottnest.",
            "c.md": "# C\n\nSourdough needs a lively starter.",
        },
    )
    ingest([docs], settings)
    assert Path(retrieve("zeppelin", settings, k=1).hits[0].record.source).name == "a.md"
    (docs / "a.md").write_text("# A\n\nThe dirigible shed stores blimps.", encoding="utf-8")
    ingest([docs], settings)
    index = Index(settings)
    assert search.keyword(index, "zeppelin", 5) == []
    hit = retrieve("dirigible", settings, index=index, k=1).hits[0]
    assert "dirigible" in hit.record.text and hit.scores["bm25"] > 0 and "sbert" in hit.scores
    os.remove(docs / "b.md")
    ingest([docs], settings, prune=True)
    index = Index(settings)
    assert search.keyword(index, "quokka", 5) == []
    assert all(
        "quokka" not in h.record.text for h in retrieve("quokka marsupial", settings, index=index, k=5).hits
    )
    assert set(index.keyword.ids) == set(index.docs.all_ids())


def test_bm25_answers_on_the_index_object_that_just_ingested(tmp_path: Path, settings: Settings) -> None:
    docs = write_docs(tmp_path / "docs", {"a.md": "# A\n\nThe zeppelin hangar stores airships."})
    index = Index(settings)
    ingest([docs], settings, index=index)  # rebuilds index.keyword in place
    assert search.keyword(index, "zeppelin", 5)
    assert index.keyword.score_ids("zeppelin", index.docs.all_ids())[0] > 0


# jieba cuts these names differently in the text and in a question: 改云长 / 云长, 有泪 槽 / 泪槽.
SEGMENTED = {
    "guan.txt": "那人姓关名羽，字长生，后改云长，河东解良人也。",
    "horse.txt": "此马眼下有泪槽，额边生白点，名为的卢，骑则妨主。",
    **ZH,
}


def test_cjk_bigrams_find_what_jieba_segments_differently(tmp_path: Path, settings: Settings) -> None:
    from core.tokens import tokenize

    docs = write_docs(tmp_path / "docs", SEGMENTED)
    s = settings.model_copy(update={"index_dir": tmp_path / "index"})
    assert not ingest([docs], s).failed
    index = Index(s)
    assert "泪槽" in tokenize("泪槽是什么？") and "泪槽" not in tokenize(SEGMENTED["horse.txt"])
    assert "云长" in tokenize("云长是哪里人？") and "云长" not in tokenize(SEGMENTED["guan.txt"])
    for question, target in (("泪槽是什么？", "horse.txt"), ("云长是哪里人？", "guan.txt")):
        ranked = search.keyword(index, question, 10)
        assert _rank(ranked, index, target) == 1, question
        # jieba's words alone (the plain BM25 peer) do not reach it
        assert _rank(search.keyword(index, question, 10, bigrams=False), index, target) is None, question
    res = retrieve("泪槽是什么？", s, index=index, k=3, skip=FIRST_STAGE)
    assert Path(res.hits[0].record.source).name == "horse.txt"
    off = s.model_copy(update={"search": s.search.model_copy(update={"cjk_bigrams": False})})
    trace = retrieve("泪槽是什么？", off, index=index, k=3, skip=FIRST_STAGE).trace
    assert next(t for t in trace if t.stage == "bm25").detail["bigrams"] is False
