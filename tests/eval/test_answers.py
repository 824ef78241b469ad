"""The answer evaluation's threshold choice: one rule per kind of question, on dev only."""

from __future__ import annotations

from eval.answers import Row, choose, metrics


def _row(kind: str, split: str, answerable: bool, coverage: float) -> Row:
    return Row("set", f"{kind}-{split}-{coverage}", split, answerable, "extractive", "q", kind=kind,
               passages=[{"dense": 0.0, "coverage": coverage}])


def test_each_kind_gets_the_threshold_that_separates_its_own_questions() -> None:
    rows = []
    for split in ("dev", "test"):
        # English docs: answerable questions cover 0.9 of their terms, unanswerable 0.5
        rows += [_row("same", split, True, 0.9), _row("same", split, False, 0.5)]
        # Chinese prose: everything lower, 0.4 against 0.15
        rows += [_row("cjk", split, True, 0.4), _row("cjk", split, False, 0.15)]
    rules, curve = choose(rows)
    assert 0.5 < rules["same"][1] <= 0.9 and 0.15 < rules["cjk"][1] <= 0.4
    # ties go to the lowest weight and threshold that separate
    assert rules["same"] == (0.0, 0.55) and rules["cjk"] == (0.0, 0.2)
    assert {c["kind"] for c in curve} == {"same", "cjk"}
    m = metrics([r for r in rows if r.split == "test"], rules)
    assert m["answer_rate"] == 1.0 and m["abstention_rate"] == 1.0
    one = metrics([r for r in rows if r.split == "test"], {"same": (0.0, 0.55), "cjk": (0.0, 0.55)})
    assert one["answer_rate"] == 0.5  # one threshold for both abstains on every Chinese question


def test_a_kind_without_unanswerable_dev_questions_keeps_the_default() -> None:
    rows = [_row("crosslingual", "dev", True, 0.3), _row("crosslingual", "test", False, 0.1)]
    assert choose(rows)[0] == {}
