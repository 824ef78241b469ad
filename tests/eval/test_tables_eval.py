"""eval/tables.py's scoring on tiny inputs (numbers compared as numbers, router metrics, the `sql`
trace entry read back), and the committed set data/eval/tables is consistent. No LLM."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from eval.tables import (
    is_correct,
    is_strict,
    load_questions,
    number,
    numbers_in,
    router_metrics,
    same_number,
    sql_status,
    value_found,
)

SET = Path(__file__).resolve().parents[2] / "data" / "eval" / "tables"


@pytest.mark.parametrize("text, want", [("7,100", "7100"), ("7100", "7100"), ("7100.0", "7100.0"),
                                        ("-3.5", "-3.5"), ("1,234,567.25", "1234567.25")])
def test_number_reads_thousands_and_decimals(text: str, want: str) -> None:
    assert number(text) == Decimal(want)


@pytest.mark.parametrize("text", ["Saturn", "7,10", "12 kg", ""])
def test_number_is_none_for_anything_else(text: str) -> None:
    assert number(text) is None


def test_numbers_in_skips_citation_markers_and_splits_lists() -> None:
    found = numbers_in("Volume (t): 7,100 [1]; price 640.50 [2], 1,2 and 2015年")
    assert found == [Decimal("7100"), Decimal("640.50"), Decimal("1"), Decimal("2"), Decimal("2015")]


def test_same_number_equal_values_and_rounding_to_expected_places() -> None:
    assert same_number(Decimal("7100"), Decimal("7100.0"))
    assert same_number(Decimal("32.1"), Decimal("32.10"))
    assert same_number(Decimal("3.67"), Decimal("3.6667"))  # an average, rounded to the expected places
    assert not same_number(Decimal("3.67"), Decimal("3.6"))  # fewer places is not rounded up
    assert not same_number(Decimal("7100"), Decimal("710"))
    assert not same_number(Decimal("7"), Decimal("7.6"))  # rounds to 8, not 7


def test_value_found_numbers_as_numbers_text_as_substring() -> None:
    answer = "Supplier: Delta Grain; Volume (t): 12,400 [1]"
    assert value_found("12400", answer)
    assert value_found("12,400.0", answer)
    assert value_found("delta  grain", answer)  # case and whitespace ignored
    assert not value_found("1240", answer)  # not a substring match on digits
    assert not value_found("400", answer)
    assert value_found("1840", "in the 1840s")
    assert value_found("普洱", "茶名: 普洱; 销量（公斤）: 3400 [1]")


def test_is_correct_needs_every_value() -> None:
    assert is_correct(["Mercury", "Venus"], "Mercury and Venus have none.")
    assert not is_correct(["Mercury", "Venus"], "Mercury has none.")
    assert is_correct([], "anything") is None


def test_is_strict_refuses_an_answer_that_lists_the_other_rows_too() -> None:
    dump = "- 门店: 湖滨店; 员工数: 12\n- 门店: 三坊七巷店; 员工数: 15\n- 门店: 宽窄巷子店; 员工数: 7"
    assert is_correct(["三坊七巷店"], dump)
    assert is_strict(["三坊七巷店"], ["湖滨店", "宽窄巷子店"], dump) is False
    assert is_strict(["三坊七巷店"], ["湖滨店", "宽窄巷子店"], "门店: 三坊七巷店; 员工数: 15 [1]") is True
    assert is_strict(["9816"], ["16850", "8657"], "面积: 9,816.0 [1]") is True
    assert is_strict(["9816"], ["16850"], "宁波: 9816; 杭州: 16850") is False
    assert is_strict(["9816"], [], "no number") is False
    assert is_strict([], ["x"], "x") is None


def test_router_metrics_counts() -> None:
    labels = [True, True, True, False, False, False, False]
    predicted = [True, True, False, True, False, False, False]
    m = router_metrics(labels, predicted)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 3)
    assert m["precision"] == 0.667 and m["recall"] == 0.667 and m["accuracy"] == 0.714
    assert router_metrics([False], [False])["precision"] is None


def test_sql_status_from_trace_detail() -> None:
    assert sql_status(None) == ("not_run", "", [])
    assert sql_status({"skipped": "sql.mode = auto; answer mode extractive"})[0] == "skipped"
    assert sql_status({"route": {"go": False, "reason": "no table's columns match the question"}}) == (
        "router_no", "no table's columns match the question", [])
    failed = {"route": {"go": True}, "attempts": [
        {"sql": "SELECT x FROM t", "error": 'OperationalError: no such column: x'},
        {"sql": "SELEC", "error": 'OperationalError: near "SELEC": syntax error'}],
        "fallback": "no usable SQL after a retry (OperationalError: near \"SELEC\": syntax error); "
                    "answering from passages"}
    want = ("fallback", "no usable SQL after a retry", ["no such column", "syntax error"])
    assert sql_status(failed) == want
    assert sql_status({"route": {"go": True}, "attempts": [{"sql": "SELECT 1", "rows": 1}]})[0] == "answered"


def test_committed_set_is_consistent() -> None:
    qs = load_questions(SET / "questions.jsonl")
    assert len({q.qid for q in qs}) == len(qs)
    table = [q for q in qs if q.is_table]
    assert len(table) >= 20 and len(qs) - len(table) >= 15
    assert {q.lang for q in table} == {"en", "zh"}
    docs = {p.name for p in (SET / "docs").iterdir()}
    assert all(q.source in docs and q.expected for q in table)
    assert not any(set(q.expected) & set(q.wrong) for q in qs)
    assert all(q.source in docs or not q.source for q in qs)
    assert {Path(q.source).suffix for q in table} == {".csv", ".html", ".xlsx"}


def test_committed_xlsx_holds_the_generator_rows() -> None:
    import openpyxl

    from eval.sets.tables import SHEETS

    wb = openpyxl.load_workbook(SET / "docs" / "tea_sales.xlsx", read_only=True)
    try:
        got = {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    finally:
        wb.close()
    assert got == SHEETS


def test_rag_eval_tables_refuses_a_folder_that_is_not_a_table_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from app.cli import main

    (tmp_path / "docs").mkdir()  # no questions.jsonl
    monkeypatch.setattr(sys, "argv", ["rag", "eval", "--tables", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code != 0 and "questions.jsonl" in err and "data/eval/tables" in err
