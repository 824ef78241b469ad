"""Abstention from the original question's evidence, and corrective retrieval."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.index import Index
from retrieval.answer import ask
from retrieval.grade import answerable, evidence, keyword_query
from retrieval.pipeline import retrieve
from tests.retrieval.answer_corpus import FACT_Q, build, settings_for


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("grade"))


@pytest.mark.parametrize(
    "question", ["Who painted the Mona Lisa?", "What is the capital of Peru?", "蒙娜丽莎是谁画的？"]
)
def test_an_unrelated_question_abstains(corpus: Path, question: str) -> None:
    res = ask(question, settings_for(corpus))
    assert res.abstained and res.abstain_reason == "no_support" and res.citations == []
    check = next(t.detail for t in res.trace if t.stage == "abstain_check")
    assert res.support is not None and res.support < check["min_score"] and "min_score" in res.answer
    stages = [t.stage for t in res.trace]
    assert "compose" not in stages and "generate" not in stages
    assert "corrective" in stages  # the keyword retry ran before giving up


def test_answerable_questions_pass_in_both_languages(corpus: Path) -> None:
    for q in (FACT_Q, "绿茶应该怎么保存？"):
        res = ask(q, settings_for(corpus))
        assert not res.abstained, (q, res.answer)
        assert "corrective" not in [t.stage for t in res.trace]


def test_evidence_is_the_original_question_and_dense_weight_follows_the_script(corpus: Path) -> None:
    s = settings_for(corpus)
    idx = Index(s)
    en = retrieve(FACT_Q, s, index=idx, k=3)
    ev = evidence(FACT_Q, en.hits, idx, en.query_vector, s)
    assert answerable(ev, s) and ev.coverage > 0.5
    w = evidence(
        FACT_Q, en.hits, idx, en.query_vector, settings_for(corpus, answer={"abstain_dense_weight": 0.5})
    )
    assert w.dense_weight == 0.5
    zh = retrieve("绿茶应该怎么保存？", s, index=idx, k=3)
    ev_zh = evidence("绿茶应该怎么保存？", zh.hits, idx, zh.query_vector, s)
    zh_w = settings_for(corpus, answer={"abstain_dense_weight": 0.5})
    ev_zh = evidence("绿茶应该怎么保存？", zh.hits, idx, zh.query_vector, zh_w)
    assert ev_zh.dense_weight == 0.0 and ev_zh.support == pytest.approx(
        ev_zh.coverage
    )  # MiniLM cannot read it
    # A variant's hits graded against the original question: the evidence does not move with the query.
    other = retrieve("sourdough fermentation hours", s, index=idx, k=3)
    assert (
        not answerable(evidence(FACT_Q, other.hits[:1], idx, en.query_vector, s), s)
        or Path(other.hits[0].record.source).name == "lighthouse.md"
    )


def test_threshold_and_corrective_are_settings(corpus: Path) -> None:
    strict = ask(FACT_Q, settings_for(corpus, answer={"min_score": 1.01, "corrective": False}))
    assert strict.abstained and "corrective" not in [t.stage for t in strict.trace]


def test_the_rule_is_per_kind_unless_one_threshold_is_set() -> None:
    from core.settings import load_settings
    from retrieval.grade import KINDS, rule

    s = load_settings()
    assert set(s.answer.abstain) == set(KINDS)
    for kind in KINDS:
        r = s.answer.abstain[kind]
        assert rule(kind, s) == (r.dense_weight, r.min_score)
    one = load_settings(answer={"min_score": 0.42, "abstain_dense_weight": 0.1})
    assert {rule(k, one) for k in KINDS} == {(0.1, 0.42)}
    assert rule("unknown", s) == rule("same", s)


def test_keyword_query_keeps_content_words() -> None:
    assert (
        keyword_query("How long should coffee steep in a French press?") == "long coffee steep French press"
    )
    assert "绿茶" in keyword_query("绿茶应该怎么保存？")
