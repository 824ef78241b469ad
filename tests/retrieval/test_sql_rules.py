"""SQL written by rules for a model too small to write it (retrieval/sql_rules.py): each shape of
question becomes the query a person would write, run read-only over a real table store, and a
question no rule fits gets no query (the passages answer it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.tables import FoundTable, TableStore
from retrieval.sql_rules import plan

SUPPLIERS = FoundTable(
    ["Supplier", "Country", "Year", "Volume (t)"],
    [["Acme", "Kenya", "2023", "5200"], ["Birch & Sons", "Kenya", "2023", "7100"],
     ["Acme", "Kenya", "2022", "4000"], ["Cedar", "Peru", "2023", "3000"],
     ["O'Brien", "Peru", "2022", "6100"]],
    caption="Deliveries",
)
TEAS = FoundTable(["茶名", "类别", "价格"], [["龙井", "绿茶", "120"], ["碧螺春", "绿茶", "90"],
                                          ["大红袍", "乌龙茶", "150"]])


@pytest.fixture
def store(tmp_path: Path) -> TableStore:
    s = TableStore(tmp_path / "tables.sqlite")
    s.replace_source("/d/suppliers.csv", [SUPPLIERS])
    s.replace_source("/d/teas.csv", [TEAS])
    return s


def _answer(store: TableStore, question: str, table: str = "suppliers") -> tuple[str, list[tuple]]:
    info = store.info(table)
    assert info is not None
    p = plan(question, info, store)
    assert p is not None, question
    return p.shape, store.run_readonly(p.sql, 50, 2.0).rows


def test_each_shape_becomes_the_query_a_person_would_write(store: TableStore) -> None:
    shape, rows = _answer(store, "Which supplier had the highest volume in 2023?")
    assert shape == "max" and rows == [(2, "Birch & Sons", 2023, 7100)]
    shape, rows = _answer(store, "Which supplier delivered the lowest volume in Peru?")
    assert shape == "min" and rows[0][1:] == ("Cedar", "Peru", 3000)
    assert _answer(store, "How many deliveries came from Kenya?") == ("count", [(3,)])
    assert _answer(store, "What was the total volume in 2022?") == ("sum", [(10100,)])
    assert _answer(store, "What is the average volume of Acme?") == ("avg", [(4600.0,)])
    shape, rows = _answer(store, "What did O'Brien deliver?")  # a quote in the value stays data
    assert shape == "lookup" and [r[1] for r in rows] == ["O'Brien"]
    shape, rows = _answer(store, "Which delivery had the second highest volume?")
    assert shape == "max" and rows[0][1:] == ("O'Brien", 6100)  # ORDER BY ... LIMIT 1 OFFSET 1
    shape, rows = _answer(store, "Which had more volume in 2023, Acme or Cedar?")
    assert shape == "max" and rows[0][1] == "Acme" and rows[0][-1] == 5200
    shape, rows = _answer(store, "How much more did Birch & Sons deliver than Cedar in 2023?")
    assert shape == "lookup" and sorted(r[1] for r in rows) == ["Birch & Sons", "Cedar"]  # both shown
    assert _answer(store, "绿茶有几种？", "teas") == ("count", [(2,)])
    shape, rows = _answer(store, "哪种茶价格最高？", "teas")
    assert shape == "max" and rows[0][1] == "大红袍"


def test_no_rule_no_query(store: TableStore) -> None:
    info = store.info("suppliers")
    assert info is not None
    assert plan("Tell me about suppliers", info, store) is None  # no shape, no quoted value
    assert plan("Which is the biggest?", store.info("teas") or info, store) is not None  # one number column
    two = TableStore(store.path.parent / "two.sqlite")
    two.replace_source("/d/x.csv", [FoundTable(["Name", "Height", "Weight"], [["a", "1", "2"]])])
    assert plan("Which is the biggest?", two.catalogue()[0], two) is None  # which number? no guess


def test_a_count_of_every_row_only_counts_what_the_rows_are(store: TableStore) -> None:
    """COUNT(*) with no filter says the same for any question: "How many times can oolong tea
    leaves be infused?" reached the sample's grind table by its "Contact time" column and was
    answered "Count: 5". Counted words that name the rows (the table's name or caption, its
    first text column, "rows") keep the count; a count with a filter is specific anyway."""
    info = store.info("suppliers")
    assert info is not None
    assert _answer(store, "How many suppliers are listed?") == ("count", [(5,)])  # first text column
    assert _answer(store, "How many deliveries are there?") == ("count", [(5,)])  # the caption
    assert _answer(store, "How many rows does the table have?") == ("count", [(5,)])
    assert plan("How many times can tea leaves be infused?", info, store) is None
    assert plan("How many countries export coffee?", info, store) is None  # a column, not the rows
    assert _answer(store, "How many deliveries came from Kenya?") == ("count", [(3,)])  # filtered
    assert _answer(store, "表里有几种茶？", "teas") == ("count", [(3,)])  # 茶 of its first column, 茶名
    assert plan("一壶茶够多少个人喝？", store.info("teas") or info, store) is None  # people, not teas


def test_a_hostile_question_adds_no_sql(store: TableStore) -> None:
    info = store.info("suppliers")
    assert info is not None
    p = plan("How many deliveries came from Kenya'; DROP TABLE suppliers; --?", info, store)
    assert p is not None and "DROP" not in p.sql.upper()
    assert store.run_readonly(p.sql, 5, 2.0).rows == [(3,)]
    assert store.info("suppliers") is not None and store.info("suppliers").n_rows == 5  # type: ignore[union-attr]
