"""Tables stay tables: PDF (pdfplumber), DOCX and HTML tables come back as Markdown
tables with their header in reading position; a long table is chunked between rows and
every chunk repeats the header row."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import ChunkSettings, IngestSettings, Settings
from ingest.chunking import chunk_document
from ingest.loaders import load
from ingest.pipeline import ingest
from retrieval.pipeline import retrieve
from retrieval.state import Plan

HEADER = "| Model | Params | Latency ms |"
ROWS = [["MiniLM", "22M", "4.1"], ["SmolLM2", "135M", "38.0"], ["Mistral", "7B", "910"]]


def _pdf_with_table(path: Path, rows: list[list[str]], long: bool = False) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

    ss = getSampleStyleSheet()
    table = LongTable([["Model", "Params", "Latency ms"], *rows], repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    story = [
        Paragraph("Benchmark results", ss["Heading1"]),
        Paragraph("The table below lists model sizes and latency on the test machine.", ss["Normal"]),
        Spacer(1, 12), table, Spacer(1, 12),
        Paragraph("Smaller models answer faster but less accurately.", ss["Normal"]),
    ]
    SimpleDocTemplate(str(path), pagesize=A4, title="Benchmarks").build(story)
    return path


def _rows_of(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.startswith("| ") and not ln.startswith(HEADER)]


def _assert_md_table(text: str, header: str, rows: list[list[str]]) -> None:
    lines = text.split("\n")
    i = lines.index(header)
    assert re.fullmatch(r"\|(---\|)+", lines[i + 1]), lines[i + 1]
    assert lines[i + 2 : i + 2 + len(rows)] == ["| " + " | ".join(r) + " |" for r in rows]


def test_pdf_table_is_a_markdown_table_in_reading_position(tmp_path: Path) -> None:
    doc = load(_pdf_with_table(tmp_path / "bench.pdf", ROWS), IngestSettings())
    _assert_md_table(doc.text, HEADER, ROWS)
    before, after = doc.text.index("lists model sizes"), doc.text.index("Smaller models")
    assert before < doc.text.index(HEADER) < after
    assert doc.title == "Benchmarks" and [p.number for p in doc.pages] == [1]
    # the cells are not repeated as loose text beside the table
    assert doc.text.count("SmolLM2") == 1


def test_long_pdf_table_chunks_repeat_the_header_and_never_cut_a_row(tmp_path: Path) -> None:
    rows = [[f"model-{i:03d}", f"{i * 7}M", f"{i * 1.5:.1f}"] for i in range(1, 121)]
    doc = load(_pdf_with_table(tmp_path / "long.pdf", rows), IngestSettings())
    assert len(doc.pages) >= 3  # the table runs over several pages
    records = chunk_document(doc, str(tmp_path / "long.pdf"), ChunkSettings(size=120))
    table_chunks = [r for r in records if "| model-" in r.text]
    assert len(table_chunks) >= 6
    seen: list[str] = []
    for r in table_chunks:
        lines = r.text.split("\n")
        first = lines.index(HEADER)
        assert re.fullmatch(r"\|(---\|)+", lines[first + 1])
        seen += _rows_of(r.text)
        # a chunk's page range holds each of its rows
        for row in _rows_of(r.text):
            page = next(p.number for p in doc.pages if doc.text.find(row, p.start) < p.end)
            assert r.page_start is not None and r.page_end is not None  # a PDF chunk is paged
            assert r.page_start <= page <= r.page_end
    expected = ["| " + " | ".join(x) + " |" for x in rows]
    assert [s for s in seen if not s.startswith("|---")] == expected  # every row once, whole, in order


def _docx_with_table(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Benchmark results", level=1)
    d.add_paragraph("The table below lists model sizes and latency on the test machine.")
    t = d.add_table(rows=1 + len(ROWS), cols=3)
    for j, h in enumerate(["Model", "Params", "Latency ms"]):
        t.cell(0, j).text = h
    for i, row in enumerate(ROWS, start=1):
        for j, v in enumerate(row):
            t.cell(i, j).text = v
    d.add_paragraph("Smaller models answer faster but less accurately.")
    d.save(str(path))
    return path


def test_docx_table_is_a_markdown_table(tmp_path: Path) -> None:
    doc = load(_docx_with_table(tmp_path / "bench.docx"), IngestSettings())
    _assert_md_table(doc.text, HEADER, ROWS)
    assert doc.text.index("lists model sizes") < doc.text.index(HEADER) < doc.text.index("Smaller models")


HTML = """<html><head><title>Bench</title></head><body>
<h1>Benchmark results</h1><p>The table below lists model sizes and latency on the test machine.</p>
<div class="wrap"><table>
 <caption>Models</caption>
 <thead><tr><th>Model</th><th>Params</th><th>Latency ms</th></tr></thead>
 <tbody>{rows}</tbody>
</table></div>
<p>Smaller models answer faster but less accurately.</p></body></html>"""


def _html(rows: list[list[str]]) -> str:
    return HTML.format(rows="".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows))


def test_html_table_is_a_markdown_table(tmp_path: Path) -> None:
    p = tmp_path / "bench.html"
    p.write_text(_html(ROWS))
    doc = load(p, IngestSettings())
    _assert_md_table(doc.text, HEADER, ROWS)
    assert doc.text.index("lists model sizes") < doc.text.index(HEADER) < doc.text.index("Smaller models")


def test_long_html_table_chunks_repeat_the_header(tmp_path: Path) -> None:
    rows = [[f"model-{i:03d}", f"{i * 7}M", f"{i * 1.5:.1f}"] for i in range(1, 81)]
    p = tmp_path / "long.html"
    p.write_text(_html(rows))
    records = chunk_document(load(p, IngestSettings()), str(p), ChunkSettings(size=100))
    table_chunks = [r for r in records if "| model-" in r.text]
    assert len(table_chunks) >= 4
    seen = []
    for r in table_chunks:
        assert r.text.split("\n")[0] == HEADER
        seen += [s for s in _rows_of(r.text) if not s.startswith("|---")]
    assert seen == ["| " + " | ".join(x) + " |" for x in rows]


def test_search_hit_on_a_table_row_carries_the_header(tmp_path: Path, settings: Settings) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    _pdf_with_table(d / "bench.pdf", ROWS)
    _docx_with_table(d / "bench.docx")
    report = ingest([d], settings)
    assert report.count("added") == 2, report.summary()
    hits = retrieve("SmolLM2 135M latency", settings, k=2, plan=Plan(mode="bm25")).hits
    assert {h.record.location() for h in hits} == {"bench.pdf p. 1", "bench.docx"}
    for h in hits:
        assert HEADER in h.record.text and "| SmolLM2 | 135M | 38.0 |" in h.record.text


def test_html_nested_table_rows_are_not_repeated(tmp_path: Path) -> None:
    p = tmp_path / "nested.html"
    p.write_text("<table><tr><th>Part</th><th>Detail</th></tr><tr><td>pump</td><td>"
                 "<table><tr><td>rated 5 bar</td></tr></table></td></tr></table>")
    doc = load(p, IngestSettings())
    assert doc.text.split("\n") == ["| Part | Detail |", "|---|---|", "| pump | rated 5 bar |"]
