"""The table store (core/tables.py) on a real SQLite file: how found tables are stored (names,
types, row numbers, catalogue), swapped and removed per source, and that a model-written
statement can only ever read: everything else is refused by SQLite itself and changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import SqlError
from core.tables import FoundTable, TableStore, column_type, safe_identifier

SUPPLIERS = FoundTable(
    ["Supplier", "Year", "Volume (t)", "Order", "Price €"],
    [["Acme", "2023", "5,200", "a", "1.5"], ["Birch", "2023", "7100", "b", "2"],
     ["Acme", "2022", "4000", "", ""]],
    page=2, caption="Deliveries",
)


@pytest.fixture
def store(tmp_path: Path) -> TableStore:
    s = TableStore(tmp_path / "tables.sqlite")
    assert s.replace_source("/docs/suppliers.csv", [SUPPLIERS]) == ["suppliers"]
    return s


def _raw(store: TableStore, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(store.path) as conn:
        return conn.execute(sql).fetchall()


def test_columns_are_safe_identifiers_and_typed_by_their_values(store: TableStore) -> None:
    (t,) = store.catalogue()
    assert (t.name, t.source, t.page, t.caption, t.n_rows) == ("suppliers", "/docs/suppliers.csv", 2,
                                                               "Deliveries", 3)
    assert t.columns == ["Supplier", "Year", "Volume (t)", "Order", "Price €"]
    assert t.sql_columns == ["supplier", "year", "volume_t", "order_", "price"]  # "order" is a keyword
    assert t.types == ["TEXT", "INTEGER", "INTEGER", "TEXT", "REAL"]
    rows = _raw(store, "SELECT _row, supplier, year, volume_t, order_, price FROM suppliers ORDER BY _row")
    assert rows == [(1, "Acme", 2023, 5200, "a", 1.5), (2, "Birch", 2023, 7100, "b", 2.0),
                    (3, "Acme", 2022, 4000, None, None)]
    assert safe_identifier("供应商 名称", set(), "x") == "供应商_名称"  # letters of any script are kept
    assert safe_identifier("2023", set(), "x") == "c_2023"
    assert safe_identifier("", {"column_1"}, "column_1") == "column_1_2"
    assert column_type(["1", "x"]) == "TEXT" and column_type(["", ""]) == "TEXT"
    schema = store.schema_prompt(limit_rows=2)
    assert "volume_t INTEGER,  -- \"Volume (t)\"" in schema and "suppliers.csv, page 2 (Deliveries)" in schema
    assert "2 | Birch | 2023 | 7100" in schema and "Acme | 2022" not in schema  # two sample rows


def test_a_source_swaps_its_tables_and_removing_it_drops_them(store: TableStore) -> None:
    other = FoundTable(["Name", "Score"], [["x", "1"]])
    # another file of the same name gets its own table; the first keeps its own
    (twin,) = store.replace_source("/elsewhere/suppliers.csv", [other])
    assert twin.startswith("suppliers_") and len({t.name for t in store.catalogue()}) == 2
    assert store.replace_source("/docs/suppliers.csv", [other, other]) == ["suppliers_1", "suppliers_2"]
    names = {t.name for t in store.catalogue()}
    assert "suppliers" not in names and {"suppliers_1", "suppliers_2"} <= names
    assert "suppliers" not in {r[0] for r in _raw(store, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert store.remove_source("/docs/suppliers.csv") == 2
    assert [t.source for t in store.catalogue()] == ["/elsewhere/suppliers.csv"]
    assert store.replace_source("/docs/none.md", []) == [] and store.remove_source("/never") == 0


def test_nothing_to_store_creates_no_file(tmp_path: Path) -> None:
    s = TableStore(tmp_path / "t.sqlite")
    assert s.replace_source("/a.md", []) == [] and not s.exists() and s.catalogue() == []
    with pytest.raises(SqlError, match="no table file"):
        s.run_readonly("SELECT 1", 5, 1.0)
    assert not s.exists()  # the read-only side never creates it


def test_a_select_returns_rows_tables_read_and_the_row_limit(store: TableStore) -> None:
    sql = "SELECT _row, supplier FROM suppliers WHERE year = 2023 ORDER BY volume_t DESC;"
    res = store.run_readonly(sql, 1, 1.0)
    assert res.columns == ["_row", "supplier"] and res.rows == [(2, "Birch")] and res.truncated
    assert res.tables == ["suppliers"]


MALICIOUS = [
    ("DROP TABLE suppliers", "not authorized"),
    ("DELETE FROM suppliers", "not authorized"),
    ("UPDATE suppliers SET volume_t = 0", "not authorized"),
    ("INSERT INTO suppliers(supplier) VALUES ('x')", "not authorized"),
    ("CREATE TABLE t(a)", "not authorized"),
    ("ATTACH DATABASE 'attached.sqlite' AS a", "not authorized"),
    ("SELECT 1; DROP TABLE suppliers", "one statement"),
    ("PRAGMA writable_schema=1", "not authorized"),
    ("SELECT load_extension('x')", "load_extension"),
    ("VACUUM", "denied"),
    ("SELECT zeroblob(1000000000)", "too big"),
]


@pytest.mark.parametrize(("sql", "error"), MALICIOUS)
def test_anything_but_reading_is_refused_and_changes_nothing(store: TableStore, sql: str, error: str,
                                                             isolated: Path) -> None:
    before = _raw(store, "SELECT * FROM suppliers ORDER BY _row")
    with pytest.raises(SqlError, match=error):
        store.run_readonly(sql, 10, 1.0)
    assert _raw(store, "SELECT * FROM suppliers ORDER BY _row") == before
    assert [t.name for t in store.catalogue()] == ["suppliers"]
    assert not (isolated / "attached.sqlite").exists()


def test_a_runaway_recursive_query_is_stopped_at_the_time_limit(store: TableStore) -> None:
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(SqlError, match="time limit"):
        store.run_readonly(sql, 10, 0.3)
    ok = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT sum(x) FROM c"
    assert store.run_readonly(ok, 10, 1.0).rows == [(15,)]  # a bounded recursive CTE is fine
