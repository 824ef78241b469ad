"""The answer evaluation's threshold choice: one rule per kind of question, on dev only."""

from __future__ import annotations

from pathlib import Path

from core.settings import AbstainRule
from eval.answers import Row, choose, choose_hedge, hedges, metrics


def _row(kind: str, split: str, answerable: bool, coverage: float, absent: float = 0.0) -> Row:
    return Row("set", f"{kind}-{split}-{coverage}-{absent}", split, answerable, "extractive", "q", kind=kind,
               passages=[{"dense": 0.0, "coverage": coverage}], absent=absent)


def _rule(w: float, t: float, gate: bool = False) -> AbstainRule:
    return AbstainRule(min_score=t, dense_weight=w, absent_gate=gate)


def test_each_kind_gets_the_threshold_that_separates_its_own_questions() -> None:
    rows = []
    for split in ("dev", "test"):
        # English docs: answerable questions cover 0.9 of their terms, unanswerable 0.5
        rows += [_row("same", split, True, 0.9), _row("same", split, False, 0.5)]
        # Chinese prose: everything lower, 0.4 against 0.15
        rows += [_row("cjk", split, True, 0.4), _row("cjk", split, False, 0.15)]
    rules, curve = choose(rows)
    assert 0.5 < rules["same"].min_score <= 0.9 and 0.15 < rules["cjk"].min_score <= 0.4
    # ties go to the absent gate (which changes nothing here: every term is in the index), then
    # to the lowest weight and threshold that separate
    assert rules["same"] == _rule(0.0, 0.55, True) and rules["cjk"] == _rule(0.0, 0.2, True)
    assert {c["kind"] for c in curve} == {"same", "cjk"}
    m = metrics([r for r in rows if r.split == "test"], rules)
    assert m["answer_rate"] == 1.0 and m["abstention_rate"] == 1.0
    one = metrics([r for r in rows if r.split == "test"], {"same": _rule(0.0, 0.55), "cjk": _rule(0.0, 0.55)})
    assert one["answer_rate"] == 0.5  # one threshold for both abstains on every Chinese question


def test_a_kind_without_unanswerable_dev_questions_keeps_the_default() -> None:
    rows = [_row("crosslingual", "dev", True, 0.3), _row("crosslingual", "test", False, 0.1)]
    assert choose(rows)[0] == {}


def test_the_absent_gate_is_chosen_where_only_it_separates() -> None:
    # Unanswerable Chinese questions share as many words with the text as answerable ones do,
    # but half their weight is in a name the corpus never mentions.
    rows = []
    for split in ("dev", "test"):
        rows += [_row("cjk", split, True, 0.4), _row("cjk", split, False, 0.4, absent=0.5)]
    rules, _ = choose(rows)
    assert rules["cjk"].absent_gate and 0.2 < rules["cjk"].min_score <= 0.4
    m = metrics([r for r in rows if r.split == "test"], rules)
    assert m["answer_rate"] == 1.0 and m["abstention_rate"] == 1.0


def test_a_table_answer_is_answered_whatever_its_passages() -> None:
    # The product answers table questions from their rows without grading passages.
    sql = Row("set", "t", "test", True, "extractive", "q", passages=[], sql=True)
    prose = Row("set", "p", "test", True, "extractive", "q", passages=[])
    assert metrics([sql, prose], {"same": _rule(0.0, 0.5)})["answer_rate"] == 0.5


def test_a_rule_less_than_one_question_short_of_the_best_ties_and_the_gate_wins_it() -> None:
    """Without the gate two more answerable questions pass (their names are absent, their other
    words covered) and one more unanswerable one too: 0.917 against 0.900 balanced accuracy, less
    than one answerable question's worth (0.05), so a tie, and the gate wins it."""
    rows = []
    for split in ("dev", "test"):
        rows += [_row("crosslingual", split, True, 0.6) for _ in range(8)]
        rows += [_row("crosslingual", split, True, 0.6, absent=0.5) for _ in range(2)]
        rows += [_row("crosslingual", split, False, 0.3) for _ in range(5)]
        rows += [_row("crosslingual", split, False, 0.6, absent=0.5)]
    rules, curve = choose(rows)
    best_without = max(c["balanced"] for c in curve if not c["absent_gate"])
    best_with = max(c["balanced"] for c in curve if c["absent_gate"])
    assert abs(best_without - 0.9167) < 1e-3 and abs(best_with - 0.9) < 1e-3
    assert rules["crosslingual"] == _rule(0.0, 0.35, True)
    # a whole answerable question short is no tie: the better rule wins
    rows = [r for r in rows if not (r.answerable and r.absent)]
    rows += [_row("crosslingual", s, True, 0.6, absent=0.5) for s in ("dev", "test") for _ in range(6)]
    assert not choose(rows)[0]["crosslingual"].absent_gate


def test_a_passage_in_the_other_script_is_replayed_under_the_crosslingual_rule() -> None:
    """As retrieval/grade.evidence decides: an English question's Chinese passage (a mixed
    folder) is judged by the crosslingual rule, its English passages by the question's own."""
    from eval.answers import passes
    from retrieval.grade import passage_kind

    assert passage_kind("same", False) == "crosslingual" and passage_kind("same", True) == "same"
    assert passage_kind("cjk", False) == "crosslingual"
    assert passage_kind("crosslingual", True) == "crosslingual"
    rules = {"same": _rule(0.0, 0.65), "crosslingual": _rule(0.0, 0.35)}
    chinese = {"dense": 0.2, "coverage": 0.5, "same_script": False}
    english = {"dense": 0.5, "coverage": 0.5, "same_script": True}
    row = Row("set", "q", "test", True, "extractive", "q", kind="same", passages=[english, chinese])
    assert passes(row, rules)  # the Chinese passage clears 0.35 though not 0.65
    alone = Row("set", "q", "test", True, "extractive", "q", kind="same", passages=[english])
    assert not passes(alone, rules)
    # an older results.json without the script: the question's kind for every passage
    old = Row("set", "q", "test", True, "extractive", "q", kind="same",
              passages=[{"dense": 0.2, "coverage": 0.5}])
    assert not passes(old, rules)


def test_the_hedge_floor_answers_nine_in_ten_of_the_answerable_dev_questions() -> None:
    # Questions asked in the passages' words cover 0.9 of their terms; the same facts asked in
    # other words 0.5 or 0.3, like the unanswerable ones (0.4). min_score stays where it
    # separates best; under it the floor is the highest threshold answering 90% of the answerable.
    rows = []
    for split in ("dev", "test"):
        rows += [_row("same", split, True, 0.9) for _ in range(5)]
        rows += [_row("same", split, True, c) for c in (0.5, 0.5, 0.5, 0.5, 0.3)]
        rows += [_row("same", split, False, 0.4) for _ in range(5)]
    for n, r in enumerate(rows):
        r.qid = f"q{n}"
    rule = _rule(0.0, 0.55, True)
    hedged = choose_hedge(rows, {"same": rule})["same"]
    assert hedged.hedge_score == 0.5 and hedged.min_score == 0.55  # 9 of 10 answered at 0.5, 5 at 0.55
    m = metrics([r for r in rows if r.split == "test"], {"same": hedged})
    assert m["answer_rate"] == 0.5 and m["abstention_rate"] == 1.0  # the confident answers, as before
    assert m["hedge_rate"] == 0.4 and m["answer_or_hedge_rate"] == 0.9 and m["refusal_rate"] == 1.0
    assert not hedges(rows[0], {"same": hedged}) and hedges(rows[5], {"same": hedged})
    # a rule that already answers nine in ten gets no floor
    assert choose_hedge(rows, {"same": _rule(0.0, 0.3, True)})["same"].hedge_score is None


def test_paraphrases_are_answerable_questions_of_their_originals_split(tmp_path: Path) -> None:
    import json

    from eval.answers import _questions

    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in (("a", "Alpha text."),
                                                                                   ("b", "Beta text.")))
    )
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "What is alpha?", "evidence": ["Alpha"]}) + "\n"
        + json.dumps({"_id": "q2", "text": "What is beta?", "evidence": ["Beta"]}) + "\n"
    )
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\tb\t2\n")
    (tmp_path / "paraphrases.jsonl").write_text(
        json.dumps({"_id": "p1", "text": "Tell me about the first letter", "of": "q1"}) + "\n"
        + json.dumps({"_id": "p9", "text": "Of nothing judged", "of": "q9"}) + "\n"
    )
    ds, qs = _questions(tmp_path)
    assert ("p1", "Tell me about the first letter", "dev", True) in qs
    assert not any(q[0] == "p9" for q in qs)  # its original is not a judged question
    assert ds.evidence["p1"] == ["Alpha"] and ds.qrels["p1"] == {"a": 2}
