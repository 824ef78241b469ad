"""PDF text page by page, with page spans kept for citations.

Each page is decided on its own (`ingest.ocr`): `auto` reads the text layer when it is
usable and OCRs pages that are images without one (scans); `always` OCRs every page;
`never` reads text layers only. Tables on digital pages (found by pdfplumber from their
ruling lines) become Markdown tables where they stand on the page. A page that cannot be
read is reported with its number in the document's warnings; the others are indexed.
A PDF longer than `ingest.max_pdf_pages`, or still being read after `ingest.max_file_seconds`,
is cut there: the pages read so far are indexed and a warning says what was left out."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import LoaderError
from core.settings import IngestSettings
from core.tables import FoundTable
from ingest.doc import LoadedDoc, Page, found_table, md_table
from ingest.ocr import OcrCache, ocr_page

log = logging.getLogger(__name__)

# (event, amount): "pages_total", "page", "ocr_page" (a page OCR'd), "ocr_cached" (read from the cache).
PageProgress = Callable[[str, int], None]

Found = tuple[tuple[float, float, float, float], str]  # a table's bbox (pdfplumber) and its Markdown

MIN_TEXT_CHARS = 50  # fewer non-space characters than this on an image page: OCR it
MAX_RENDER_PX = 10000  # a longer side than this at the set dpi is rendered at a lower dpi
# pdfium is not thread-safe: one lock for every call into it from this module.
_PDFIUM = threading.RLock()


# A table of contents' or an index's dot leaders before a page number ("2.1 ASN.1 syntax. . . . . 2",
# "asn1_der_coding . . . . 9"): every ". " of them ended a "sentence", and a manual's index
# page was quoted as "9 asn1_der_coding ." (core.text.LEADER_LINE reads the line they become).
_LEADERS = re.compile(r"(?<=\S)\s*(?:\.\s?){4,}\s*(?=[0-9ivxlcIVXLC]{1,6}$)")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "").replace("\x02", "")
    return "\n".join(_LEADERS.sub(" … ", line.rstrip()) for line in text.split("\n")).strip()


def _usable(text: str) -> bool:
    chars = [c for c in text if not c.isspace()]
    if len(chars) < MIN_TEXT_CHARS:
        return False
    bad = sum(1 for c in chars if c == "\ufffd" or "\ue000" <= c <= "\uf8ff" or ord(c) < 32)
    return bad < 0.1 * len(chars)


def _count_objects(page: Any, kind: int) -> int:
    return sum(1 for _ in page.get_objects(filter=(kind,), max_depth=2))


def _open(path: Path, data: bytes | None = None) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path) if data is None else data)  # bytes: read in memory
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise LoaderError(
                f"{path.name} is encrypted with a password; decrypt it first (e.g. qpdf --decrypt)"
            ) from e
        raise LoaderError(f"{path.name} is not a readable PDF ({e})") from e


class _Tables:
    """pdfplumber, opened only when a page has ruling lines that may draw a table."""

    def __init__(self, path: Path, data: bytes | None = None) -> None:
        self.path = path
        self.data = data
        self.pdf: Any = None
        self.found: list[FoundTable] = []  # every table found, with its page, for the table store

    def find(self, index: int) -> list[Found]:
        import pdfplumber

        if self.pdf is None:
            self.pdf = pdfplumber.open(str(self.path) if self.data is None else io.BytesIO(self.data))
        found = []
        for t in self.pdf.pages[index].find_tables():
            rows = [[c or "" for c in r] for r in t.extract() if any((c or "").strip() for c in r)]
            if len(rows) >= 2 and max(len(r) for r in rows) >= 2:
                found.append((t.bbox, md_table(rows)))
                if (table := found_table(rows, page=index + 1)) is not None:
                    self.found.append(table)
        return found

    def close(self) -> None:
        if self.pdf is not None:
            self.pdf.close()


def _with_tables(page: Any, textpage: Any, tables: list[Found]) -> str:
    """The page's text with each table region replaced by its Markdown table; text above,
    beside and below a table keeps its place. pdfplumber measures from the top left,
    pdfium from the bottom left of the media box."""
    left, bottom, right, top = page.get_mediabox()

    def band(x0: float, t: float, x1: float, b: float) -> str:
        if x1 - x0 < 1 or b - t < 1:
            return ""
        return _clean(textpage.get_text_bounded(left=left + x0, bottom=top - b, right=left + x1, top=top - t))

    width, parts, y = right - left, [], 0.0
    for (x0, t, x1, b), md in sorted(tables, key=lambda tb: tb[0][1]):
        parts += [band(0, y, width, t), band(0, t, x0, b), band(x1, t, width, b), md]
        y = b
    parts.append(band(0, y, width, top - bottom))
    return "\n\n".join(p for p in parts if p)


def _page_text(
    pdf: Any, i: int, settings: IngestSettings, tables: _Tables, cache: OcrCache | None, emit: PageProgress,
) -> str:
    import pypdfium2.raw as pdfium_c

    with _PDFIUM:
        page = pdf[i]
        try:
            textpage = page.get_textpage()
            text = _clean(textpage.get_text_range())
            ocr = settings.ocr == "always" or (
                settings.ocr == "auto" and not _usable(text)
                and _count_objects(page, pdfium_c.FPDF_PAGEOBJ_IMAGE) > 0
            )
            if not ocr:
                if text and _count_objects(page, pdfium_c.FPDF_PAGEOBJ_PATH) > 0:
                    try:
                        found = tables.find(i)
                    except Exception as e:  # the page's plain text is still good
                        log.warning("page %d: table detection failed (%s); using plain text", i + 1, e)
                        found = []
                    if found:
                        text = _with_tables(page, textpage, found)
                return text
            w, h = page.get_size()
            scale = min(settings.ocr_dpi / 72, MAX_RENDER_PX / max(w, h, 1))
            image = page.render(scale=scale, grayscale=True).to_pil()
        finally:
            page.close()
    text, cached = ocr_page(image, cache, settings.ocr_threads)
    emit("ocr_cached" if cached else "ocr_page", 1)
    return text


def _cut_warning(done: int, n_pages: int, settings: IngestSettings, seconds: float | None) -> str:
    if seconds is None:
        return (f"read {done} of {n_pages} pages (ingest.max_pdf_pages = {settings.max_pdf_pages}); "
                f"pages {done + 1}-{n_pages} are not indexed; raise ingest.max_pdf_pages to index them")
    return (f"read {done} of {n_pages} pages in {seconds:.0f} s (ingest.max_file_seconds = "
            f"{settings.max_file_seconds:g}); pages {done + 1}-{n_pages} are not indexed; "
            "raise ingest.max_file_seconds to index them")


def load_pdf(
    path: Path, settings: IngestSettings, progress: PageProgress | None = None, data: bytes | None = None,
) -> LoadedDoc:
    emit: PageProgress = progress or (lambda event, n: None)
    cache = OcrCache(settings.ocr_cache_dir) if settings.ocr_cache_dir is not None else None
    t0 = time.monotonic()
    with _PDFIUM:
        pdf = _open(path, data)
        n_pages = len(pdf)
        meta_title = str(pdf.get_metadata_dict().get("Title") or "").strip()
        if meta_title.lower() in ("(anonymous)", "untitled", "(untitled)"):  # generator defaults
            meta_title = ""
    to_read = min(n_pages, max(settings.max_pdf_pages, 1))
    emit("pages_total", to_read)
    tables = _Tables(path, data)
    text, pages, warnings = "", [], []
    cut = _cut_warning(to_read, n_pages, settings, None) if to_read < n_pages else None
    try:
        for i in range(to_read):
            elapsed = time.monotonic() - t0
            if i > 0 and elapsed > settings.max_file_seconds:  # at least one page is always read
                cut = _cut_warning(i, n_pages, settings, elapsed)
                emit("page", to_read - i)  # the pages bar still ends full
                break
            try:
                t = _page_text(pdf, i, settings, tables, cache, emit)
            except Exception as e:  # one bad page must not lose the document
                log.warning("%s page %d failed: %s", path.name, i + 1, e)
                warnings.append(
                    f"page {i + 1} could not be read ({type(e).__name__}: {e}); it is not indexed")
                t = ""
            emit("page", 1)
            if not t.strip():
                continue
            if text:
                text += "\n\n"
            start = len(text)
            text += t
            pages.append(Page(number=i + 1, start=start, end=len(text)))
    finally:
        tables.close()
        with _PDFIUM:
            pdf.close()
    if cut is not None:
        log.warning("%s: %s", path.name, cut)
        warnings.append(cut)
    if not text.strip():
        if settings.ocr == "never":
            raise LoaderError(
                f"{path.name} has no text layer (scanned?); set ingest.ocr = \"auto\" to OCR it")
        detail = f" ({'; '.join(warnings)})" if warnings else ""
        raise LoaderError(f"{path.name} has no readable text, not even by OCR{detail}")
    return LoadedDoc(text=text, title=meta_title or path.stem, pages=pages, warnings=warnings,
                     tables=tables.found)
