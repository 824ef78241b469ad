"""A mixed folder, English documents beside a Chinese one (the shipped `data/sample/`: coffee
notes in English, a tea guide in Chinese, 12.5% CJK), asked in English end to end: the corpus
is mostly English, so the question's kind stays "same", but its words are glossed with the
Chinese ones the corpus uses (retrieval/crosslingual.gloss_target) and the Chinese passage is
judged by the crosslingual rule (retrieval/grade.passage_kind). Before, "What water
temperature for green tea?" found only coffee passages and was refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.index import Index
from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval.answer import ask
from retrieval.crosslingual import gloss_target, mismatch

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("mixed")
    docs = root / "sample"
    shutil.copytree(SAMPLE, docs)
    s = load_settings(index_dir=str(root / "index"), llm={"provider": "llamacpp"},
                      answer={"mode": "extractive"}, search={"ltr_self_train": False})
    assert not ingest([docs], s).failed
    return s


def test_an_english_question_over_a_mixed_corpus_is_glossed(settings: Settings) -> None:
    index = Index(settings)
    share = index.keyword.lexicon().cjk_share
    assert settings.search.gloss_corpus_cjk <= share < settings.search.crosslingual_corpus_cjk
    # translations are made for its Chinese words, pinyin names not (a mostly English folder)
    assert index.keyword.translations() and index.keyword.names() == {}
    assert (index.keyword.path / "names.json").read_text() == "{}"
    q = "What water temperature for green tea?"
    assert mismatch(q, index, settings) is None  # the corpus as a whole is English
    target = gloss_target(q, index, settings)
    assert target is not None and target.mixed and target.question_lang == "en"
    assert gloss_target("绿茶的水温是多少？", index, settings) is None  # Chinese is not glossed
    above = settings.model_copy(update={"search": settings.search.model_copy(
        update={"gloss_corpus_cjk": share + 0.01})})
    assert gloss_target(q, index, above) is None


def test_the_chinese_passage_answers_an_english_question(settings: Settings) -> None:
    res = ask("What water temperature for green tea?", settings)
    assert not res.abstained, res.answer
    assert "八十度" in res.answer
    assert "tea-guide-zh.txt" in [Path(c.source).name for c in res.citations]
    glosses = next(t.detail for t in res.trace if t.stage == "glosses")
    assert glosses["mismatch"]["mixed"] is True and "绿茶" in str(glosses["translations"])
    check = next(t.detail for t in res.trace if t.stage == "abstain_check")
    assert check["kind"] == "same" and check["decided_by"] == "crosslingual"
    kinds = {Path(h.record.source).name: p["kind"] for h, p in zip(res.hits, check["passages"], strict=False)}
    assert kinds.get("tea-guide-zh.txt") == "crosslingual"


@pytest.mark.parametrize(("question", "fact"), [
    ("How long should coffee steep in a French press?", "four minutes"),
    # 水温 (the translation of "water temperature") is in the tea guide only: the Chinese
    # passages it brings into the pool must not switch the cosine off for the English ones
    # (retrieval/rerank.mixed_corpus_cap), or the tea guide ranks first and is quoted
    ("What water temperature should I use to brew coffee?", "90 and 96 degrees"),
])
def test_english_questions_of_the_english_documents_are_answered_from_them(
    settings: Settings, question: str, fact: str
) -> None:
    res = ask(question, settings)
    assert not res.abstained and fact in res.answer, res.answer
    assert [Path(c.source).name for c in res.citations] == ["coffee-brewing.md"]
    assert Path(res.hits[0].record.source).name == "coffee-brewing.md"


def test_a_chinese_question_finds_the_english_documents_through_the_dictionary(settings: Settings) -> None:
    """The other direction: the Chinese words of a question over a mostly English folder add
    their English translations that the corpus uses (crosslingual.to_english), found as the
    dictionary's words (法压壶, which jieba cuts in three), not jieba's."""
    res = ask("法压壶需要多粗的研磨度？", settings)
    glosses = next(t.detail for t in res.trace if t.stage == "glosses")
    assert glosses["translations"]["法压壶"] == ["french press"]
    assert glosses["mismatch"]["question_lang"] == "zh"
    bm25 = next(t.detail for t in res.trace if t.stage == "bm25")
    assert "french press" in bm25["query"] and bm25["bigrams"] is True
    assert not res.abstained and "coarse" in res.answer.casefold(), res.answer
    assert {Path(c.source).name for c in res.citations} <= {"coffee-brewing.md", "grind-sizes.html"}
