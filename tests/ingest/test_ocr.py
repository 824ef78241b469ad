"""Scanned PDFs through real OCR (RapidOCR's shipped PP-OCR models): the tests draw text
onto images with PIL and save them as image-only PDFs, then ingest and search them."""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.index import Index
from core.settings import IngestSettings, Settings, load_settings
from ingest.loaders import load
from ingest.ocr import Box, layout_text
from ingest.pipeline import ingest
from ingest.spacing import restore_spaces
from retrieval.pipeline import retrieve
from retrieval.state import Plan
from tests.conftest import missing_system_dep

DPI = 100  # test pages are rendered and OCR'd at 100 dpi to keep the CPU time small
PAGE = (827, 1169)  # A4 at 100 dpi

EN_1 = [
    "Quarterly maintenance report for the turbine fleet.",
    "Bearing temperatures rose above the alarm limit,",
    "so the inspection interval was shortened to thirty days.",
    "",
    "The reliability team replaced two gearbox seals.",
]
EN_3 = ["Warehouse inventory audit found missing pallets", "of copper wire in the northern depot."]
ZH_2 = ["涡轮机的轴承温度超过了报警上限，", "所以检查周期缩短到三十天。"]


def _cjk_font() -> str | None:
    found = sorted(glob.glob("/usr/share/fonts/**/NotoSansCJK*.tt[cf]", recursive=True))
    found += sorted(glob.glob("/usr/share/fonts/**/Noto*CJK*.tt[cf]", recursive=True))
    return found[0] if found else None


def _page_image(lines: list[str], size: int = 22, font_path: str | None = None) -> object:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size=size)
    img = Image.new("L", PAGE, 255)
    draw = ImageDraw.Draw(img)
    y = 90
    for line in lines:
        if line:
            draw.text((70, y), line, font=font, fill=0)
        y += int(size * 1.6) if line else size
    return img


def _scan_pdf(path: Path, pages: list[object]) -> Path:
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:], resolution=DPI)  # type: ignore[attr-defined]
    path.write_bytes(buf.getvalue())
    return path


def _break_page(src: Path, dst: Path, obj: int) -> Path:
    """Replace one page's object by a string (same length, so the xref stays valid): that
    page cannot be loaded, the others can."""
    data = src.read_bytes()
    i = data.index(f"\n{obj} 0 obj".encode())
    j = data.index(b"endobj", i) + len(b"endobj")
    junk = f"\n{obj} 0 obj (broken) endobj".encode()
    dst.write_bytes(data[:i] + junk + b" " * (j - i - len(junk)) + data[j:])
    return dst


def _settings(index_dir: Path, **ingest_kw: object) -> Settings:
    # small chunks, so that each page's text lands in chunks of its own
    return load_settings(index_dir=index_dir, ingest={"ocr_dpi": DPI, **ingest_kw}, chunk={"size": 40})


class Events:
    def __init__(self) -> None:
        self.n: Counter[str] = Counter()

    def __call__(self, event: str, amount: int) -> None:
        self.n[event] += amount


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One scanned 3-page PDF (English, Chinese, English) ingested once for the module."""
    root = tmp_path_factory.mktemp("scan")
    font = _cjk_font()
    if not font:  # the page-boundary and search checks below need the Chinese page 2 as drawn
        missing_system_dep("no CJK font (install Debian's fonts-noto-cjk) to draw the Chinese test page")
    zh = _page_image(ZH_2, 26, font)
    docs = root / "docs"
    docs.mkdir()
    pdf = _scan_pdf(docs / "scan.pdf", [_page_image(EN_1), zh, _page_image(EN_3)])
    settings = _settings(root / "index")
    events = Events()
    report = ingest([docs], settings, progress=events)
    return {"root": root, "pdf": pdf, "settings": settings, "report": report, "events": events.n,
            "font": font}


def test_scanned_pdf_is_ocrd_with_page_numbers_and_progress(scanned: dict) -> None:
    report, ev = scanned["report"], scanned["events"]
    assert report.count("added") == 1 and report.count("failed") == 0, report.summary()
    assert ev["pages_total"] == 3 and ev["page"] == 3 and ev["ocr_page"] == 3 and ev["ocr_cached"] == 0
    records = sorted(Index(scanned["settings"]).docs.iter_records(), key=lambda r: r.start)
    assert all(r.page_start == r.page_end for r in records)
    by_page: dict[int, str] = {}
    for r in records:
        assert r.page_start is not None  # every chunk of a PDF is paged
        by_page[r.page_start] = by_page.get(r.page_start, "") + "\n\n" + r.text
    assert set(by_page) == {1, 2, 3}
    page1 = by_page[1].strip()
    # reading order and line structure: the lines in order, the blank line as a paragraph break
    order = [page1.find(w) for w in ("Quarterly", "Bearing", "inspection", "reliability")]
    assert all(i >= 0 for i in order) and order == sorted(order), page1
    assert "\n\n" in page1.split("reliability")[0] and page1.split("\n")[1].startswith("Bearing")
    assert "copper wire" in by_page[3]


def test_english_query_finds_the_scanned_page(scanned: dict) -> None:
    settings = scanned["settings"]
    for mode in ("bm25", "dense", "hybrid"):
        hits = retrieve(
            "how often is the turbine inspection interval", settings, k=1, plan=Plan(mode=mode)
        ).hits
        top = hits[0].record
        assert top.page_start == 1 and top.location() == "scan.pdf p. 1", (mode, top.text)
    top = retrieve("missing copper wire pallets", settings, k=1, plan=Plan(mode="hybrid")).hits[0].record
    assert top.page_start == 3 and top.location() == "scan.pdf p. 3"


def test_chinese_scanned_page_is_found(scanned: dict) -> None:
    if not scanned["font"]:
        missing_system_dep("no CJK font (install Debian's fonts-noto-cjk) to draw the Chinese test page")
    hits = retrieve("轴承温度超过报警上限", scanned["settings"], k=1, plan=Plan(mode="bm25")).hits
    assert hits[0].record.page_start == 2 and "轴承温度" in hits[0].record.text
    hits = retrieve("检查周期缩短", scanned["settings"], k=1, plan=Plan(mode="hybrid")).hits
    assert hits[0].record.page_start == 2


def test_cache_means_no_page_is_ocrd_twice(scanned: dict) -> None:
    settings = scanned["settings"]
    cache = settings.index_path / "ocr_cache"
    assert len(list(cache.glob("*/*.json"))) == 3
    # the same pages under another name (a copy, a renamed or re-saved file): all from the cache
    other = scanned["root"] / "again"
    other.mkdir()
    shutil.copy(scanned["pdf"], other / "copy.pdf")
    ev = Events()
    report = ingest([other], settings, progress=ev)
    assert report.count("added") == 1 and ev.n["ocr_page"] == 0 and ev.n["ocr_cached"] == 3
    copy = [r for r in Index(settings).docs.iter_records() if r.source.endswith("copy.pdf")]
    assert any("copper wire" in r.text and r.page_start == 3 for r in copy)


def test_restore_spaces_that_ocr_drops() -> None:
    assert restore_spaces("so theinspectioninterval was") == "so the inspection interval was"
    assert restore_spaces("above the limit,so the") == "above the limit, so the"
    assert restore_spaces("report.The next") == "report. The next"
    assert restore_spaces("after 30days") == "after 30 days"
    # words the list lacks, identifiers, URLs, CJK and numbers stay as they are
    for keep in ("Kubernetes and PyTorch", "see https://example.com/theinspection", "e.g. 3.5% of U.S.",
                 "轴承温度超过了", "pypdfium2 renders", "snake_case_name"):
        assert restore_spaces(keep) == keep


def test_small_print_with_dropped_spaces_is_still_found(tmp_path: Path) -> None:
    """Small print is where OCR glues words; whatever the engine returns, the text that is
    indexed has the words apart and an English query finds it."""
    line = "Bearing temperatures rose above the limit, so the inspection interval was shortened."
    pdf = _scan_pdf(tmp_path / "small.pdf", [_page_image([line], size=17)])
    doc = load(pdf, IngestSettings(ocr_dpi=DPI))
    # (at this size and dpi PP-OCRv4 returns the line with every space dropped)
    assert "temperatures rose above the limit, so the inspection interval" in doc.text, doc.text
    settings = load_settings()
    ingest([pdf], settings)
    assert (
        retrieve("inspection interval", settings, k=1, plan=Plan(mode="bm25")).hits[0].record.page_start == 1
    )


def test_layout_keeps_reading_order_lines_and_cjk_without_spaces() -> None:
    boxes = [  # shuffled, as a detector may return them
        Box(400, 102, 700, 128, "second half", 0.9),
        Box(50, 300, 400, 326, "涡轮机的", 0.9),
        Box(50, 100, 380, 130, "First line", 0.9),
        Box(50, 140, 380, 166, "next line", 0.9),
        Box(405, 300, 700, 326, "轴承温度", 0.9),
    ]
    assert layout_text(boxes) == "First line second half\nnext line\n\n涡轮机的轴承温度"


def test_mixed_pdf_ocrs_only_its_image_pages(tmp_path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = tmp_path / "mixed.pdf"
    c = canvas.Canvas(str(pdf), pagesize=A4)
    c.drawString(72, 760, "Page one has a real text layer about solar panel efficiency in winter months.")
    c.showPage()
    img = _page_image(["Scanned page about hydraulic pump pressure", "measured at the dam outlet."])
    c.drawImage(ImageReader(img), 0, 0, width=A4[0], height=A4[1])
    c.showPage()
    c.drawString(72, 760, "Page three has a text layer again, about railway signal timing and braking.")
    c.showPage()
    c.save()
    ev = Events()
    doc = load(pdf, IngestSettings(ocr_dpi=DPI, ocr_cache_dir=tmp_path / "cache"), progress=ev)
    assert ev.n["ocr_page"] == 1 and ev.n["page"] == 3
    assert [p.number for p in doc.pages] == [1, 2, 3]
    page2 = doc.text[doc.pages[1].start : doc.pages[1].end]
    assert "hydraulic pump pressure" in page2 and "solar" not in page2
    # `never` reads text layers only; `always` OCRs every page
    ev = Events()
    doc = load(pdf, IngestSettings(ocr="never", ocr_dpi=DPI), progress=ev)
    assert ev.n["ocr_page"] == 0 and [p.number for p in doc.pages] == [1, 3]
    ev = Events()
    load(pdf, IngestSettings(ocr="always", ocr_dpi=DPI, ocr_cache_dir=tmp_path / "cache"), progress=ev)
    assert ev.n["ocr_page"] == 2 and ev.n["ocr_cached"] == 1  # page 2 was cached above


def test_scanned_pdf_with_ocr_never_is_refused_with_the_fix(tmp_path: Path) -> None:
    from core.errors import LoaderError

    pdf = _scan_pdf(tmp_path / "s.pdf", [_page_image(["anything"])])
    with pytest.raises(LoaderError, match='ingest.ocr = "auto"'):
        load(pdf, IngestSettings(ocr="never"))


def test_broken_page_is_reported_and_the_rest_indexed_by_the_cli(scanned: dict, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    # Pillow writes page 1 as object 1, page 2 as object 3 (each page's content stream follows it)
    _break_page(scanned["pdf"], docs / "broken.pdf", 3)
    cache = scanned["settings"].index_path / "ocr_cache"  # pages 1 and 3 were OCR'd there already
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_INGEST__OCR_DPI": str(DPI),
           "RAG_CHUNK__SIZE": "20", "RAG_INGEST__OCR_CACHE_DIR": str(cache)}

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=os.getcwd())

    r = rag("ingest", str(docs))
    assert r.returncode == 0, r.stderr
    assert "1 added" in r.stdout and "page 2 could not be read" in r.stdout + r.stderr
    out = json.loads(rag("search", "copper wire missing from the depot", "-k", "1", "--json").stdout)
    hit = out["hits"][0]
    assert hit["page_start"] == 3 and hit["page_end"] == 3 and hit["location"] == "broken.pdf p. 3"
    text = rag("search", "turbine bearing temperatures", "-k", "1").stdout
    assert "broken.pdf p. 1" in text
