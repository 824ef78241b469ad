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
    # English corpus (the tea guide aside): a crosslingual question, its cosine weighs nothing.
    assert ev_zh.kind == "crosslingual" and ev_zh.dense_weight == 0.0
    assert ev_zh.support == pytest.approx(ev_zh.coverage)
    from core.settings import AbstainRule
    from retrieval.grade import dense_weight

    r = AbstainRule(min_score=0.4, dense_weight=0.5)  # Chinese of Chinese text keeps the weight
    assert dense_weight(r, "cjk", 1.0) == 0.5 and dense_weight(r, "crosslingual", 0.8) == pytest.approx(0.1)
    # A variant's hits graded against the original question: the evidence does not move with the query.
    other = retrieve("sourdough fermentation hours", s, index=idx, k=3)
    assert (
        not answerable(evidence(FACT_Q, other.hits[:1], idx, en.query_vector, s), s)
        or Path(other.hits[0].record.source).name == "lighthouse.md"
    )


def test_terms_the_index_never_holds_scale_support_under_the_gate(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval import grade

    q = FACT_Q.rstrip("?") + " according to Zyxwvutian scholars?"
    s = settings_for(corpus)
    idx = Index(s)
    hits = retrieve(q, s, index=idx, k=3)
    # In a corpus this small what is missing is chance ("用", even "咖啡因"): nothing counts.
    assert len(idx.keyword.ids) < grade.ABSENT_MIN_RECORDS
    zh = "绿茶的咖啡因用什么保存？"
    zh_hits = retrieve(zh, s, index=idx, k=3)
    small = evidence(zh, zh_hits.hits, idx, zh_hits.query_vector, s)
    missing = {t: df for t, df in idx.keyword.doc_freqs(grade.question_terms(zh)).items() if df == 0}
    assert "咖啡因" in missing and "用" in missing, missing
    assert small.absent == 0.0
    monkeypatch.setattr(grade, "ABSENT_MIN_RECORDS", 1)
    assert evidence(zh, zh_hits.hits, idx, zh_hits.query_vector, s).absent > 0.0
    off = evidence(q, hits.hits, idx, hits.query_vector, settings_for(corpus, answer={"abstain": {
        "same": {"min_score": 0.3, "dense_weight": 0.0, "absent_gate": False}}}))
    on = evidence(q, hits.hits, idx, hits.query_vector, settings_for(corpus, answer={"abstain": {
        "same": {"min_score": 0.3, "dense_weight": 0.0, "absent_gate": True}}}))
    assert 0.0 < on.absent < 1.0 and on.absent == off.absent  # "zyxwvutian" is in no record
    assert on.absent_gate and on.support == pytest.approx(off.support * (1 - on.absent), abs=1e-3)
    full = evidence(FACT_Q, hits.hits, idx, hits.query_vector, s)
    assert full.absent == 0.0
    # A missing common English word is no name: it may be phrased otherwise in the text.
    lower = q.replace("Zyxwvutian", "zyxwvutian")
    assert evidence(lower, hits.hits, idx, hits.query_vector, s).absent == 0.0


def test_threshold_and_corrective_are_settings(corpus: Path) -> None:
    strict = ask(FACT_Q, settings_for(corpus, answer={"min_score": 1.01, "corrective": False}))
    assert strict.abstained and "corrective" not in [t.stage for t in strict.trace]


def test_weak_support_gives_a_marked_answer_and_none_still_abstains(corpus: Path) -> None:
    """Between a rule's hedge_score and its min_score the answer is given, quoted and cited, but
    marked (`hedged`, a note naming the support and the threshold); below the floor, or with
    answer.hedge off, the question is refused as before."""
    weak = {"abstain": {"same": {"min_score": 1.01, "dense_weight": 0.0, "absent_gate": False,
                                 "hedge_score": 0.3}}}
    res = ask(FACT_Q, settings_for(corpus, answer=weak))
    assert not res.abstained and res.hedged, res.answer
    assert "37 hours" in res.answer and res.citations
    assert res.note.startswith("Weak support") and "min_score 1.01" in res.note
    assert res.to_dict()["hedged"] is True and "hedge" in [t.stage for t in res.trace]
    unrelated = ask("What is the capital of Peru?", settings_for(corpus, answer=weak))
    assert unrelated.abstained and not unrelated.hedged and unrelated.note == ""
    off = ask(FACT_Q, settings_for(corpus, answer={**weak, "hedge": False}))
    assert off.abstained and not off.hedged and off.citations == []
    one = ask(FACT_Q, settings_for(corpus, answer={**weak, "min_score": 1.01}))  # one threshold: no floor
    assert one.abstained and not one.hedged


def test_the_rule_is_per_kind_unless_one_threshold_is_set() -> None:
    from core.settings import load_settings
    from retrieval.grade import KINDS, rule

    s = load_settings()
    assert set(s.answer.abstain) == set(KINDS)
    for kind in KINDS:
        r = s.answer.abstain[kind]
        assert rule(kind, s) == r
    one = load_settings(answer={"min_score": 0.42, "abstain_dense_weight": 0.1})
    assert {(rule(k, one).dense_weight, rule(k, one).min_score) for k in KINDS} == {(0.1, 0.42)}
    assert [rule(k, one).absent_gate for k in KINDS] == [s.answer.abstain[k].absent_gate for k in KINDS]
    assert all(rule(k, one).hedge_score is None for k in KINDS)  # one line: answer or refuse
    assert all(0 < (rule(k, s).hedge_score or 0) < rule(k, s).min_score for k in KINDS)
    assert rule("unknown", s) == rule("same", s)


def test_name_terms_are_the_words_that_name_something() -> None:
    from retrieval.grade import name_terms

    assert name_terms("How much does an NVIDIA H100 GPU cost?") == {"nvidia", "h100", "gpu"}
    assert name_terms("What is FlashAttention and how does it speed up attention?") == {"flashattent"}
    assert name_terms("Which index does Milvus build? Which one is faster?") == {"milvus"}
    assert name_terms("Why can keys and values be reused?") == set()  # common words: phrased otherwise
    assert name_terms("梯度裁剪有什么用？") == set()  # Chinese terms always count (term_stats)


def test_keyword_query_keeps_content_words() -> None:
    assert (
        keyword_query("How long should coffee steep in a French press?") == "long coffee steep French press"
    )
    assert "绿茶" in keyword_query("绿茶应该怎么保存？")


def test_a_comparison_is_supported_by_what_each_side_says() -> None:
    """"What is the difference between Ridge and Lasso?" was refused over the scikit-learn docs
    (coverage 34%): the passages say what Ridge and Lasso do, never "difference"."""
    from retrieval.grade import question_terms

    assert question_terms("What is the difference between Ridge and Lasso?") == ["lasso", "ridg"]
    assert question_terms("How does label spreading differ from label propagation?") == [
        "label", "propag", "spread"]
    assert question_terms("Compare BM25 versus dense retrieval") == ["bm25", "dens", "retriev"]
    assert set(question_terms("LoRA 和 QLoRA 的区别是什么？")) == {"lora", "qlora"}
