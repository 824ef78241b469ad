from pathlib import Path

import pytest

from core.errors import LoaderError
from core.settings import IngestSettings
from ingest.loaders import load


@pytest.fixture
def ing() -> IngestSettings:
    return IngestSettings()


def test_markdown_title_and_text(tmp_path: Path, ing: IngestSettings) -> None:
    p = tmp_path / "a.md"
    p.write_text("# Title Here\n\nBody text.\r\nSecond line.")
    doc = load(p, ing)
    assert doc.title == "Title Here" and "\r" not in doc.text and "Second line." in doc.text


def test_gb18030_and_big5_are_detected(tmp_path: Path, ing: IngestSettings) -> None:
    text = "绿茶适合用八十度左右的水冲泡，水温太高会把茶叶烫熟，茶汤发苦。" * 5
    p = tmp_path / "gb.txt"
    p.write_bytes(text.encode("gb18030"))
    assert load(p, ing).text == text
    trad = "綠茶適合用八十度左右的水沖泡，水溫太高會把茶葉燙熟，茶湯發苦。" * 5
    p2 = tmp_path / "big5.txt"
    p2.write_bytes(trad.encode("big5"))
    assert load(p2, ing).text == trad


def test_html_drops_scripts_and_keeps_headings_and_tables(tmp_path: Path, ing: IngestSettings) -> None:
    p = tmp_path / "p.html"
    p.write_text(
        "<html><head><title>T</title><script>var x=1;</script></head><body><h2>Section</h2>"
        "<p>Hello <b>world</b>.</p><table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "</body></html>"
    )
    doc = load(p, ing)
    assert doc.title == "T" and "var x" not in doc.text
    assert "## Section" in doc.text and "Hello world" in doc.text
    assert "| A | B |\n|---|---|\n| 1 | 2 |" in doc.text


# The shape of a generated documentation page (mdBook, Sphinx): the site's menu bar with its
# own heading, a theme picker and keyboard help in the body, outside <nav>, beside <main>.
DOC_PAGE = (
    "<html><head><title>Slices - The Book</title></head><body>"
    "<!-- Set the theme before any content is loaded, prevents flash -->"
    '<div id="help"><h2>Keyboard shortcuts</h2><p>Press S or / to search in the book</p></div>'
    '<div id="menu-bar"><h1 class="menu-title">The Book</h1><ul><li>Light</li><li>Coal</li></ul></div>'
    '<div role="navigation"><a href="a.html">Previous chapter</a></div>'
    '<p hidden>Loading the sidebar</p>'
    '<main><h1>The Slice Type<a class="headerlink" href="#slices">¶</a></h1><!-- a note to the author -->'
    "<p>Slices let you reference a contiguous sequence of elements in a collection.</p></main>"
    '<div role="contentinfo">Built with a generator</div>'
    "</body></html>"
)


def test_html_reads_the_one_main_element_and_no_comments(tmp_path: Path, ing: IngestSettings) -> None:
    p = tmp_path / "page.html"
    p.write_text(DOC_PAGE)
    doc = load(p, ing)
    assert doc.title == "Slices - The Book"
    assert doc.text.startswith("# The Slice Type\n") and "contiguous sequence of elements" in doc.text
    assert "¶" not in doc.text  # a heading's permalink (Sphinx, MkDocs)
    for chrome in ("Keyboard shortcuts", "search in the book", "The Book", "Coal", "Previous chapter",
                   "Loading the sidebar", "Built with", "Set the theme", "note to the author"):
        assert chrome not in doc.text


def test_html_without_one_main_reads_the_body_without_chrome(tmp_path: Path, ing: IngestSettings) -> None:
    # two <article>s are a listing: the whole body is read, less comments, landmarks and hidden parts
    page = DOC_PAGE.replace("<main>", "<article>").replace("</main>", "</article>")
    page = page.replace("</body>", "<article><p>A second post about vectors.</p></article></body>")
    p = tmp_path / "list.html"
    p.write_text(page)
    doc = load(p, ing)
    assert "contiguous sequence" in doc.text and "A second post about vectors." in doc.text
    assert "# The Book" in doc.text  # the menu's heading: nothing says it is chrome
    for chrome in ("Previous chapter", "Loading the sidebar", "Built with", "Set the theme",
                   "note to the author"):
        assert chrome not in doc.text
    # an empty <main> (a script fills it) is no content: the body is read
    empty = DOC_PAGE.replace("<main>", "<div>").replace("</main>", "</div><main> </main>")
    assert empty.count("<main>") == 1
    p.write_text(empty)
    assert "contiguous sequence" in load(p, ing).text


def test_docx_headings_and_tables(tmp_path: Path, ing: IngestSettings) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Report", level=1)
    d.add_paragraph("The body paragraph.")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text, t.cell(1, 0).text, t.cell(1, 1).text = "K", "V", "x", "y"
    p = tmp_path / "r.docx"
    d.save(str(p))
    doc = load(p, ing)
    assert "# Report" in doc.text and "The body paragraph." in doc.text
    assert "| K | V |\n|---|---|\n| x | y |" in doc.text


def _pdf(path: Path, pages: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        c.drawString(72, 760, text)
        c.showPage()
    c.save()


def test_pdf_pages_are_kept(tmp_path: Path, ing: IngestSettings) -> None:
    p = tmp_path / "two.pdf"
    _pdf(p, ["Alpha page one text.", "Beta page two text."])
    doc = load(p, ing)
    assert [pg.number for pg in doc.pages] == [1, 2]
    assert doc.text[doc.pages[1].start : doc.pages[1].end].startswith("Beta")


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"   \n\n ", "empty"),
        ("bin.txt", bytes(range(256)) * 20, "binary"),
        ("corrupt.pdf", b"%PDF-1.4\nthis is not really a pdf", "PDF"),
        ("corrupt.docx", b"PK\x03\x04 not a zip really", "DOCX"),
        ("x.xyz", b"hello", "unsupported"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path: Path, ing: IngestSettings, name: str, data: bytes,
                                         reason: str) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(LoaderError, match=reason):
        load(p, ing)


def test_encrypted_pdf_is_refused_with_the_fix(tmp_path: Path, ing: IngestSettings) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    _pdf(plain, ["Secret text."])
    w = PdfWriter()
    for page in PdfReader(str(plain)).pages:
        w.add_page(page)
    w.encrypt("hunter2")
    enc = tmp_path / "enc.pdf"
    with enc.open("wb") as f:
        w.write(f)
    with pytest.raises(LoaderError, match="encrypted"):
        load(enc, ing)


def test_html_code_keeps_its_lines_in_a_fence_and_markdown_titles_skip_code(
    tmp_path: Path, ing: IngestSettings
) -> None:
    p = tmp_path / "enum.html"
    p.write_text("<main><h1>Enums</h1><p>Define it like this:</p>"
                 "<pre><code>enum Kind {\n    V4,\n    V6,\n}\n# not a heading</code></pre>"
                 "<p>Done.</p></main>")
    text = load(p, ing).text
    assert "Define it like this:\n\n~~~\nenum Kind {\nV4,\nV6,\n}\n# not a heading\n~~~\n\nDone." in text
    md = tmp_path / "notes.md"
    md.write_text("```bash\n# install it first\npip install x\n```\n\n# Real Title\n\nBody.")
    assert load(md, ing).title == "Real Title"


def test_pdf_dot_leaders_become_one_mark_and_prose_keeps_its_periods() -> None:
    """A manual's contents and index ("asn1_der_coding . . . . . 9") had been cut into
    "sentences" at every leader and quoted as "9 asn1_der_coding ."."""
    from core.text import LEADER_LINE
    from ingest.pdf import _clean

    raw = ("2.1 ASN.1 syntax. . . . . . . . . 2\r\nasn1_der_coding . . . . . . 9\nPreface ........ iv\n"
           "It ended. Then 3. . . 4 more.\nversion 4.19.0")
    lines = _clean(raw).split("\n")
    assert lines == ["2.1 ASN.1 syntax … 2", "asn1_der_coding … 9", "Preface … iv",
                     "It ended. Then 3. . . 4 more.", "version 4.19.0"]
    assert [bool(LEADER_LINE.search(ln)) for ln in lines] == [True, True, True, False, False]


@pytest.mark.parametrize(
    ("title", "heading", "expected"),
    [
        ("What is Ownership? - The Rust Programming Language", "What Is Ownership?", "What is Ownership?"),
        ("KMeans — scikit-learn 1.5 documentation", "KMeans", "KMeans"),
        ("Docs » Slices", "Slices", "Slices"),
        ("Slices and more", "Slices", "Slices and more"),  # no separator: a longer name
        ("Slices: a guide", "Slices", "Slices: a guide"),  # a subtitle, not a site
        ("Index (libffi: the portable foreign function interface library)", "Index",
         "Index (libffi: the portable foreign function interface library)"),
        ("Slices - The Book", "", "Slices - The Book"),
    ],
)
def test_html_title_drops_the_site_name_beside_the_pages_heading(
    title: str, heading: str, expected: str
) -> None:
    from ingest.loaders import _page_title

    assert _page_title(title, heading) == expected


def test_html_title_from_a_sphinx_page(tmp_path: Path, ing: IngestSettings) -> None:
    p = tmp_path / "kmeans.html"
    p.write_text("<html><head><title>KMeans — scikit-learn 1.5 documentation</title></head><body>"
                 '<div role="main"><h1>KMeans<a class="headerlink" href="#k">¶</a></h1>'
                 "<p>K-Means clustering.</p></div></body></html>")
    assert load(p, ing).title == "KMeans"
