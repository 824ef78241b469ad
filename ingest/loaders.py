"""Loaders: one function per format, each returning the document's plain text (Markdown
structure kept: headings as `#`, tables as Markdown tables) with page spans for paged
formats. Every failure is a `LoaderError` whose message says what is wrong.

Each loader takes the file's bytes as `data` when the caller has already read them (the
pipeline hashes and parses the same bytes, so a file rewritten mid-ingest cannot be
indexed under another version's hash); without `data` the file is read from `path`."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import LoaderError
from core.settings import IngestSettings
from core.tables import FoundTable
from core.text import fenced
from ingest.doc import LoadedDoc, found_table, md_table

if TYPE_CHECKING:
    from bs4 import BeautifulSoup, Tag

log = logging.getLogger(__name__)


def decode_bytes(data: bytes, name: str) -> str:
    """UTF-8 first; else detect (GB18030, Big5, Latin-1 ...); refuse binary content."""
    if not data.strip():
        raise LoaderError(f"{name} is empty")
    head = data[:8192]
    if b"\x00" in head and not (head.startswith(b"\xff\xfe") or head.startswith(b"\xfe\xff")):
        raise LoaderError(f"{name} looks binary (NUL bytes), not text; remove it or fix its extension")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoaderError(f"{name} is not readable text in any known encoding (binary?)")
    text = str(best)
    bad = sum(1 for c in text[:4096] if (ord(c) < 32 and c not in "\r\n\t\f") or c == "\ufffd")
    if bad > 0.05 * min(len(text), 4096):
        raise LoaderError(f"{name} looks binary, not text; remove it or fix its extension")
    log.info("%s decoded as %s", name, best.encoding)
    return text


def _bytes(path: Path, data: bytes | None) -> bytes:
    return path.read_bytes() if data is None else data


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_heading(text: str) -> str | None:
    lines = text.splitlines()[:50]
    for line, code in zip(lines, fenced(lines), strict=True):
        s = line.strip()
        if s.startswith("# ") and not code:  # not a comment in a code block
            return s[2:].strip()
    return None


_PIPE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def _pipe_cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def pipe_tables(text: str) -> list[FoundTable]:
    """Markdown pipe tables (a header row, a rule row of dashes, then rows starting with "|"),
    each captioned by the heading above it, as tables for the SQL store. Inside a fenced code
    block a table is an example and a `# line` a comment: neither is read."""
    lines = text.splitlines()
    code = fenced(lines)
    out: list[FoundTable] = []
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if code[i]:
            i += 1
            continue
        if line.lstrip().startswith("#"):
            heading = line.lstrip("# ").strip()
        if ("|" in line and i + 1 < len(lines) and _PIPE_RULE.match(lines[i + 1])
                and "-" in lines[i + 1]):
            header = _pipe_cells(line)
            rows, j = [header], i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                rows.append(_pipe_cells(lines[j]))
                j += 1
            width = len(header)
            rows = [r[:width] + [""] * (width - len(r)) for r in rows]
            if (t := found_table(rows, caption=heading)) is not None:
                out.append(t)
            i = j
            continue
        i += 1
    return out


def load_text(path: Path, settings: IngestSettings, data: bytes | None = None) -> LoadedDoc:
    text = _normalise(decode_bytes(_bytes(path, data), path.name))
    if not text.strip():
        raise LoaderError(f"{path.name} is empty")
    return LoadedDoc(text=text, title=_first_heading(text) or path.stem, tables=pipe_tables(text))


# block elements read as paragraphs (a <pre> is read apart, by _html_code)
_BLOCKS = ("p", "li", "blockquote", "div", "section", "article", "main", "ul", "ol", "dl")


def _html_table(table: Tag, tables: list[FoundTable]) -> str:
    """A table as Markdown; its rows also to `tables`, captioned by its <caption> or the heading
    before it."""
    rows = [  # this table's own rows and cells; a nested table stays inside its cell
        [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"], recursive=False)]
        for tr in table.find_all("tr") if tr.find_parent("table") is table
    ]
    head = table.find("caption") or table.find_previous(["h1", "h2", "h3", "h4", "h5", "h6"])
    if (t := found_table(rows, caption=head.get_text(" ", strip=True) if head else "")) is not None:
        tables.append(t)
    return md_table(rows)


def _html_code(pre: Tag) -> str:
    """A <pre> block with its lines, fenced as Markdown writes it: flattened into one line,
    `fn main() { let x: i8 = 5; let y: Option = Some(5);` had been quoted as an answer's sentence,
    and a `# comment` line inside is no heading (core.text.fenced)."""
    code = "\n".join(ln.rstrip() for ln in pre.get_text().strip("\n").split("\n"))
    fence = "~~~~" if "~~~" in code else "~~~"  # a fence the code cannot close
    return f"{fence}\n{code}\n{fence}"


def _walk_html(node: Tag, parts: list[str], tables: list[FoundTable]) -> None:
    """Append the text under `node` to `parts`: headings as `#`, tables as Markdown tables (and
    to `tables` as rows, captioned by their <caption> or the heading before them), block
    elements as paragraphs (list items as `- `)."""
    from bs4 import Comment, Declaration, Doctype, ProcessingInstruction, Tag

    for child in node.children:
        if isinstance(child, (Comment, Declaration, Doctype, ProcessingInstruction)):
            continue  # markup's notes to itself ("<!-- Set the theme before ... -->"), never shown
        if not isinstance(child, Tag):
            s = " ".join(str(child).split())
            if s:
                parts.append(s)
            continue
        name = child.name or ""
        if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            parts.append("\n\n" + "#" * int(name[1]) + " " + child.get_text(" ", strip=True) + "\n\n")
        elif name == "table":
            parts.append("\n\n" + _html_table(child, tables) + "\n\n")
        elif name == "pre":
            parts.append("\n\n" + _html_code(child) + "\n\n")
        elif name in _BLOCKS:
            if name in ("p", "li", "blockquote") and not child.find(["table", "p", "div"]):
                prefix = "- " if name == "li" else ""
                parts.append("\n\n" + prefix + child.get_text(" ", strip=True) + "\n\n")
            else:
                _walk_html(child, parts, tables)
                parts.append("\n\n")
        elif name == "br":
            parts.append("\n")
        elif name == "title":
            continue
        else:
            _walk_html(child, parts, tables)


# The permalink a documentation generator puts in each heading and signature (Sphinx, MkDocs:
# a "¶"; others "#" or "§"), which had made "IDLE ¶" a section title.
_PERMALINK = ["headerlink", "anchorjs-link", "heading-anchor", "anchor-link", "permalink"]
# ARIA landmarks that hold a site's chrome, not the page's content (WAI-ARIA roles).
_CHROME_ROLES = ["navigation", "banner", "contentinfo", "search", "menubar", "toolbar"]


def _main_content(soup: BeautifulSoup) -> Tag | BeautifulSoup:
    """The page's own content: its one `<main>` (or `role="main"`) element, else its one
    `<article>`, when that holds text; else the whole body. Generated documentation and blogs
    (mdBook, Sphinx, most site templates) put their menus, a table of contents of the whole
    site, theme pickers and keyboard-shortcut help in the body beside it, outside `<nav>`; read
    whole, every page's first chunk was that chrome (the Rust book: "Keyboard shortcuts Press ←
    or → to navigate between chapters ... - Light - Rust - Coal - Navy") and each section sat
    under the menu bar's heading. Several `<article>`s are a listing, not one page's content."""
    mains = soup.find_all(True, attrs={"role": "main"})
    for found in (soup.find_all("main"), mains, soup.find_all("article")):
        if len(found) == 1 and found[0].get_text(strip=True):
            return found[0]
    return soup.body or soup


# What stands between a page's name and its site's in a <title>: "Page - Site", "Site | Page"
_AFTER_NAME = re.compile(r"^\s*[-|–—·•»]\s")
_BEFORE_NAME = re.compile(r"\s[-|–—·•»]\s*$")


def _page_title(title: str, heading: str) -> str:
    """A page's `<title>` without the site's name when it is the page's first heading plus
    the site's ("What is Ownership? - The Rust Programming Language", "KMeans — scikit-learn
    1.5 documentation", "Docs | Slices"): the site's name, in every chunk's title, told no
    chunk from another, and the page's heading says the rest."""
    t, h = title.strip(), heading.strip()
    if not h or len(h) >= len(t):
        return title
    if t.casefold().startswith(h.casefold()) and _AFTER_NAME.match(t[len(h):]):
        return t[: len(h)]
    if t.casefold().endswith(h.casefold()) and _BEFORE_NAME.search(t[: -len(h)]):
        return t[-len(h):]
    return title


def _chrome(soup: BeautifulSoup) -> list[Tag]:
    """What a page shows around its content, never read: scripts, styles and forms, the site's
    navigation, header and footer (as elements or ARIA landmarks, _CHROME_ROLES), hidden
    elements, and a heading's permalink (Sphinx / MkDocs: "IDLE ¶" in every heading)."""
    return [
        *soup(["script", "style", "noscript", "nav", "footer", "header", "form", "svg"]),
        *soup.find_all(True, attrs={"role": _CHROME_ROLES}),
        *soup.find_all(True, attrs={"hidden": True}),
        *soup.find_all("a", class_=_PERMALINK),
    ]


def load_html(path: Path, settings: IngestSettings, data: bytes | None = None) -> LoadedDoc:
    from bs4 import BeautifulSoup

    raw = decode_bytes(_bytes(path, data), path.name)
    soup = BeautifulSoup(raw, "html.parser")
    for t in _chrome(soup):
        t.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    parts: list[str] = []
    tables: list[FoundTable] = []
    content = _main_content(soup)
    heading = content.find(["h1", "h2"])
    title = _page_title(title, heading.get_text(" ", strip=True) if heading else "")
    _walk_html(content, parts, tables)
    text = "".join(p if p.startswith("\n") or p.endswith("\n") else p + " " for p in parts)
    lines = [ln.strip() for ln in text.split("\n")]
    text, blank = "", 0
    for ln in lines:  # collapse runs of blank lines to one
        blank = blank + 1 if not ln else 0
        if blank <= 1:
            text += ln + "\n"
    text = text.strip()
    if not text:
        raise LoaderError(f"{path.name} has no visible text")
    return LoadedDoc(text=text, title=title or _first_heading(text) or path.stem, tables=tables)


MB = 1024 * 1024
RATIO_FLOOR_MB = 1.0  # archives that inflate to less than this are not ratio-checked


def check_zip(data: bytes, name: str, settings: IngestSettings, kind: str = "DOCX") -> None:
    """Refuse an archive (DOCX, XLSX) whose members would inflate past the limits, before any
    member is decompressed. The sizes are the central directory's; `zipfile` never
    inflates a member past its declared size, so they bound what reading it costs."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as e:
        raise LoaderError(f"{name} is not a readable {kind} file (not a zip archive: {e})") from e
    inflated = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if inflated > settings.max_uncompressed_mb * MB:
        raise LoaderError(
            f"{name} would inflate to {inflated / MB:.0f} MB when unpacked, over the "
            f"{settings.max_uncompressed_mb:g} MB limit (a zip bomb?); "
            "raise ingest.max_uncompressed_mb to index it")
    ratio = inflated / max(packed, 1)
    if inflated > RATIO_FLOOR_MB * MB and ratio > settings.max_compression_ratio:
        raise LoaderError(
            f"{name} is compressed {ratio:.0f}:1, over the {settings.max_compression_ratio:g}:1 limit "
            "(a zip bomb?); raise ingest.max_compression_ratio to index it")


def load_docx(path: Path, settings: IngestSettings, data: bytes | None = None) -> LoadedDoc:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    data = _bytes(path, data)
    check_zip(data, path.name, settings)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as e:
        raise LoaderError(f"{path.name} is not a readable DOCX file ({type(e).__name__}: {e})") from e
    parts: list[str] = []
    tables: list[FoundTable] = []
    heading = ""  # the last heading: a table's caption
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(block, document)
            txt = p.text.strip()
            if not txt:
                continue
            style = (p.style.name or "") if p.style is not None else ""
            if style.startswith("Heading") and style[-1:].isdigit():
                parts.append("#" * int(style[-1]) + " " + txt)
                heading = txt
            elif style == "Title":
                parts.append("# " + txt)
                heading = txt
            else:
                parts.append(txt)
        elif tag == "tbl":
            t = Table(block, document)
            rows = [[c.text for c in r.cells] for r in t.rows]
            parts.append(md_table(rows))
            if (found := found_table(rows, caption=heading)) is not None:
                tables.append(found)
    text = "\n\n".join(p for p in parts if p)
    if not text.strip():
        raise LoaderError(f"{path.name} has no text")
    title = (document.core_properties.title or "").strip()
    return LoadedDoc(text=text, title=title or _first_heading(text) or path.stem, tables=tables)


def load_pdf(
    path: Path, settings: IngestSettings, progress: Callable[[str, int], None] | None = None,
    data: bytes | None = None,
) -> LoadedDoc:
    from ingest.pdf import load_pdf as _load_pdf

    return _load_pdf(path, settings, progress, data=data)


def load_csv(path: Path, settings: IngestSettings, data: bytes | None = None) -> LoadedDoc:
    from ingest.sheets import load_csv as _load_csv

    return _load_csv(path, settings, decode_bytes(_bytes(path, data), path.name))


def load_xlsx(path: Path, settings: IngestSettings, data: bytes | None = None) -> LoadedDoc:
    from ingest.sheets import load_xlsx as _load_xlsx

    data = _bytes(path, data)
    check_zip(data, path.name, settings, "XLSX")
    return _load_xlsx(path, settings, data)


LOADERS: dict[str, Callable[..., LoadedDoc]] = {
    ".md": load_text,
    ".markdown": load_text,
    ".txt": load_text,
    ".text": load_text,
    ".rst": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".docx": load_docx,
    ".pdf": load_pdf,
    ".csv": load_csv,
    ".xlsx": load_xlsx,
}


def load(
    path: Path, settings: IngestSettings, progress: Callable[[str, int], None] | None = None,
    data: bytes | None = None,
) -> LoadedDoc:
    """`progress` gets per-page events from paged formats (see ingest.pdf.PageProgress);
    `data`, when given, is the file's content (read once by the caller), else `path` is read."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoaderError(
            f"{path.name}: unsupported file type '{path.suffix}'; supported: {', '.join(sorted(LOADERS))}"
        )
    try:
        if loader is load_pdf:
            return load_pdf(path, settings, progress, data=data)
        return loader(path, settings, data=data)
    except LoaderError:
        raise
    except MemoryError as e:
        raise LoaderError(f"{path.name} is too large to load in memory") from e
    except Exception as e:
        raise LoaderError(f"{path.name} could not be read ({type(e).__name__}: {e})") from e
