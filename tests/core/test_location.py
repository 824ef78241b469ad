"""core.types.location: the one citation-location format (records, the UI's citations and hit
table, `rag ask`'s source lines)."""

from __future__ import annotations

from core.types import Record, location


def test_a_file_without_pages_is_its_name() -> None:
    assert location("/data/notes/tea.md") == "tea.md"
    assert location("/data/notes/茶叶 notes.md", None, None) == "茶叶 notes.md"


def test_one_page_and_a_page_range() -> None:
    assert location("/x/report.pdf", 3, 3) == "report.pdf p. 3"
    assert location("/x/report.pdf", 3, None) == "report.pdf p. 3"
    assert location("/x/report.pdf", 3, 5) == "report.pdf pp. 3-5"


def test_a_record_without_a_source_file_is_derived() -> None:
    assert location("") == "(derived)"
    assert location("", 2, 2) == "(derived) p. 2"


def test_a_record_reports_the_same_location() -> None:
    r = Record(id="a", text="t", source="/x/report.pdf", page_start=2, page_end=4)
    assert r.location() == location("/x/report.pdf", 2, 4) == "report.pdf pp. 2-4"


def test_rag_ask_source_lines_use_it() -> None:
    from app.cmd_ask import _source_line

    c = {"n": 1, "source": "/x/report.pdf", "page_start": 2, "page_end": 2, "start": 0, "end": 9, "title": ""}
    assert _source_line(c) == "[1] report.pdf p. 2 [0:9]\n    /x/report.pdf"
    c |= {"page_start": None, "page_end": None, "title": "Intro"}
    assert _source_line(c) == "[1] report.pdf [0:9]  Intro\n    /x/report.pdf"
