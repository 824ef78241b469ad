"""Tables at ingest: the CSV and XLSX loaders, and HTML / DOCX / PDF tables, each carried by the
loaded document as rows and stored by the ingest pipeline as a SQLite table (core/tables.py)
with its source, page and columns; incremental like the rest of the index (a changed file
replaces its tables, a deleted one loses them, an unchanged one is not touched)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from core.index import Index
from core.settings import IngestSettings, load_settings
from ingest.loaders import load
from ingest.pipeline import ingest
from tests.files import write_docs
from tests.ingest.test_tables import _pdf_with_table

CSV = "Supplier;Year;Volume\nAcme;2023;5200\nBirch;2023;7100\nAcme;2022;4000\n"
HTML = ("<html><body><h2>Fleet</h2><p>Our vans.</p><table><tr><th>Van</th><th>Seats</th></tr>"
        "<tr><td>Transit</td><td>3</td></tr><tr><td>Sprinter</td><td>2</td></tr></table></body></html>")


def _xlsx(path: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Prices"
    for row in [["Fruit", "Price", "Date"], ["Apple", 1.25, "2024-01-02"], ["Pear", 2, None]]:
        ws.append(row)
    wb.create_sheet("Empty")
    wb.save(path)
    return path


def test_csv_is_sniffed_decoded_and_read_as_one_table(tmp_path: Path) -> None:
    p = tmp_path / "deliveries.csv"
    p.write_bytes("Lieferant;Menge\nMüller;5\nBäcker;7\n".encode("latin-1"))  # not UTF-8, ';'-separated
    doc = load(p, IngestSettings())
    (t,) = doc.tables
    assert t.header == ["Lieferant", "Menge"] and t.rows == [["Müller", "5"], ["Bäcker", "7"]]
    assert t.caption == ""  # the file's name says what it is
    assert "# deliveries" in doc.text and "| Müller | 5 |" in doc.text  # searchable as a Markdown table
    numbers = tmp_path / "n.csv"
    numbers.write_text("1,2\n3,4\n")  # no header: the columns are numbered
    (t,) = load(numbers, IngestSettings()).tables
    assert t.header == ["column_1", "column_2"] and t.rows == [["1", "2"], ["3", "4"]]


def test_csv_rows_past_the_limit_are_cut_with_a_warning(tmp_path: Path) -> None:
    p = tmp_path / "big.csv"
    p.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(10)))
    doc = load(p, IngestSettings(max_table_rows=4))
    assert len(doc.tables[0].rows) == 4 and "max_table_rows" in doc.warnings[0]


def test_xlsx_sheets_become_tables_and_a_corrupt_one_is_one_clear_error(tmp_path: Path) -> None:
    doc = load(_xlsx(tmp_path / "prices.xlsx"), IngestSettings())
    (t,) = doc.tables  # the empty sheet holds no table
    assert t.caption == "Prices" and t.header == ["Fruit", "Price", "Date"]
    assert t.rows == [["Apple", "1.25", "2024-01-02"], ["Pear", "2"]]  # stored padded, as NULL
    assert "# Prices" in doc.text and "| Apple | 1.25 | 2024-01-02 |" in doc.text
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(Exception, match="bad.xlsx is not a readable XLSX file"):
        load(bad, IngestSettings())


def test_html_docx_and_pdf_tables_are_carried_with_caption_and_page(tmp_path: Path) -> None:
    import docx

    h = tmp_path / "fleet.html"
    h.write_text(HTML)
    (t,) = load(h, IngestSettings()).tables
    assert (t.header, t.rows, t.caption) == (["Van", "Seats"], [["Transit", "3"], ["Sprinter", "2"]], "Fleet")
    d = docx.Document()
    d.add_heading("Staff", level=1)
    tb = d.add_table(rows=2, cols=2)
    for (i, j), text in {(0, 0): "Name", (0, 1): "Role", (1, 0): "Ann", (1, 1): "Chef"}.items():
        tb.cell(i, j).text = text
    d.save(str(tmp_path / "s.docx"))
    (t,) = load(tmp_path / "s.docx", IngestSettings()).tables
    assert (t.header, t.rows, t.caption) == (["Name", "Role"], [["Ann", "Chef"]], "Staff")
    pdf = _pdf_with_table(tmp_path / "b.pdf", [["MiniLM", "22M", "4.1"], ["SmolLM2", "135M", "38.0"]])
    (t,) = load(pdf, IngestSettings()).tables
    assert t.header == ["Model", "Params", "Latency ms"] and t.page == 1
    assert t.rows[1] == ["SmolLM2", "135M", "38.0"]


def _catalogue(index_dir: Path) -> dict[str, tuple[str, int | None, list[str], int]]:
    tables = Index(load_settings(index_dir=index_dir)).tables
    return {Path(t.source).name: (t.name, t.page, t.columns, t.n_rows) for t in tables.catalogue()}


def test_ingest_stores_tables_and_keeps_them_in_step_with_the_files(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", {"suppliers.csv": CSV, "fleet.html": HTML,
                                          "notes.md": "# Notes\n\nNo table here, only prose about vans.\n"})
    _xlsx(docs / "prices.xlsx")
    (docs / "broken.xlsx").write_bytes(b"PK\x03\x04 broken")
    index_dir = tmp_path / "index"
    s = load_settings(index_dir=index_dir)
    report = ingest([docs], s)
    assert [Path(f.path).name for f in report.failed] == ["broken.xlsx"]  # one clear error, the rest indexed
    assert "not a readable XLSX file" in str(report.failed[0].error)
    assert _catalogue(index_dir) == {
        "suppliers.csv": ("suppliers", None, ["Supplier", "Year", "Volume"], 3),
        "fleet.html": ("fleet", None, ["Van", "Seats"], 2),
        "prices.xlsx": ("prices", None, ["Fruit", "Price", "Date"], 2),
    }
    path = index_dir / "tables.sqlite"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(volume) FROM suppliers WHERE year = 2023").fetchone() == (7100,)
    # the chunks hold the table too: passage search still finds it
    texts = [r.text for r in Index(s).docs.iter_records() if r.source.endswith("suppliers.csv")]
    assert any("| Birch | 2023 | 7100 |" in t for t in texts)

    stamp = os.stat(path).st_mtime_ns
    assert ingest([docs], s).count("unchanged") == 4 and os.stat(path).st_mtime_ns == stamp  # nothing done

    (docs / "suppliers.csv").write_text("Supplier,Region\nAcme,North\n")  # changed: its table is replaced
    (docs / "fleet.html").unlink()  # deleted: its table goes
    report = ingest([docs], s, prune=True)
    assert report.count("changed") == 1 and report.count("removed") == 1
    cat = _catalogue(index_dir)
    assert cat["suppliers.csv"] == ("suppliers", None, ["Supplier", "Region"], 1) and "fleet.html" not in cat
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"rag_catalog", "suppliers", "prices"}


def test_markdown_pipe_tables_are_stored_and_answered_by_the_rules(tmp_path: Path) -> None:
    from retrieval.answer import ask

    notes = ("# 模型对比\n\n下表比较三个模型。\n\n| 模型 | 参数量(B) | 上下文长度 |\n| :-- | --: | --- |\n"
             "| LLaMA-2 | 70 | 4096 |\n| Qwen | 72 | 32768 |\n| Mistral | 7 | 8192 |\n\n"
             "A rule below is not a table:\n\nText | with a pipe\n\nand no rule row.\n")
    s = load_settings(index_dir=tmp_path / "index", search={"ltr_self_train": False},
                      llm={"provider": "llamacpp"})
    ingest([write_docs(tmp_path / "docs", {"models.md": notes})], s)
    (t,) = Index(s).tables.catalogue()
    assert (t.caption, t.columns, t.n_rows) == ("模型对比", ["模型", "参数量(B)", "上下文长度"], 3)
    assert t.types == ["TEXT", "INTEGER", "INTEGER"]
    res = ask("哪个模型的上下文长度最长？", s)  # the embedded model: the rules write the SQL
    assert res.mode == "sql" and "Qwen" in res.answer and "32768" in res.answer
    assert [Path(c.source).name for c in res.citations] == ["models.md"]


def test_a_pipe_table_in_a_code_block_is_an_example_not_a_table() -> None:
    from ingest.loaders import pipe_tables

    text = ("# Prices\n\n```markdown\n# How to write a table\n| a | b |\n|---|---|\n| 1 | 2 |\n```\n\n"
            "| tea | price |\n|---|---|\n| green | 3 |\n| black | 4 |\n")
    tables = pipe_tables(text)
    assert len(tables) == 1 and tables[0].caption == "Prices"
