"""`rag bench ocr`: pages per second for scanned A4 pages at 200 dpi on 2 CPU cores, and the
share of ingest time that OCR takes (the rest: rendering, chunking, embedding, indexing).

    .venv/bin/python -m eval.bench.ocr [--pages 6] [--cores 2] [--json OUT]

The pages are made here (dense English text, and one Chinese page when a CJK font is
installed), so the figures need no data set. Model loading is timed apart."""

from __future__ import annotations

import glob
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core.settings import Settings
from eval.bench import Echo, machine, main_for

A4_200DPI = (1654, 2339)
_TEXT = (
    "The inspection of the turbine fleet found that bearing temperatures rose above the alarm limit "
    "during the summer months, so the maintenance interval was shortened to thirty days and the "
    "reliability team replaced the gearbox seals on four units. Spare parts were ordered from the "
    "northern depot, where the inventory audit had found missing pallets of copper wire. "
)
_ZH = ("涡轮机的轴承温度在夏季超过了报警上限，所以检查周期缩短到三十天，"
       "可靠性团队更换了四台机组的齿轮箱密封件。")


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return lines + [cur] if cur else lines


def _pages(n: int) -> list[Any]:
    """n A4 pages at 200 dpi: ~45 lines of 11 pt text each, like a scanned report."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=31)  # 11 pt at 200 dpi
    cjk = sorted(glob.glob("/usr/share/fonts/**/NotoSansCJK*.tt[cf]", recursive=True))
    pages = []
    for i in range(n):
        img = Image.new("L", A4_200DPI, 255)
        draw = ImageDraw.Draw(img)
        if i == n - 1 and cjk and n > 1:
            zh = ImageFont.truetype(cjk[0], 34)
            lines = [_ZH[j : j + 38] for j in range(0, len(_ZH), 38)] * 12
            for k, line in enumerate(lines[:45]):
                draw.text((160, 160 + k * 46), line, font=zh, fill=0)
        else:
            lines = _wrap((f"Page {i + 1}. " + _TEXT) * 9, 88)[:45]
            for k, line in enumerate(lines):
                draw.text((160, 160 + k * 46), line, font=font, fill=0)
        pages.append(img)
    return pages


def _scanned_pdf(path: Path, pages: list[Any]) -> Path:
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:], resolution=200)
    path.write_bytes(buf.getvalue())
    return path


def _pin_cores(n: int) -> list[int]:
    """Run on n CPU cores (the first n this process may use)."""
    try:
        cores = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cores)
        return cores
    except (AttributeError, OSError):
        return list(range(min(n, os.cpu_count() or 1)))


def run(settings: Settings, *, pages: int = 6, cores: int = 2, echo: Echo | None = None) -> dict[str, Any]:
    """OCR alone, then an ingest of the same pages, on `cores` cores (this process is pinned to
    them); the figures are printed through `echo` and returned."""
    from ingest import ocr
    from ingest.pipeline import ingest

    used = _pin_cores(cores)
    work = Path(tempfile.mkdtemp(prefix="rag-bench-ocr-"))
    try:
        ing = settings.ingest.model_copy(update={
            "ocr": "auto", "ocr_dpi": 200, "ocr_threads": len(used), "ocr_cache_dir": work / "ocr_cache"})
        s = settings.model_copy(update={"index_dir": work / "index", "ingest": ing})
        images = _pages(pages)
        docs = work / "docs"
        docs.mkdir()
        pdf = _scanned_pdf(docs / "scan.pdf", images)

        t0 = time.perf_counter()
        ocr.run_ocr(images[0].crop((0, 0, 800, 300)), len(used))  # load the OCR models
        model_load_s = time.perf_counter() - t0

        per_page = []  # OCR alone, straight on the page images
        cpu0 = time.process_time()
        for img in images:
            t0 = time.perf_counter()
            ocr.run_ocr(img, len(used))
            per_page.append(time.perf_counter() - t0)

        cpu_per_page = (time.process_time() - cpu0) / pages
        load1 = machine.load_avg()
        from core.models import get_embedder  # load the embedder before timing the ingest

        get_embedder(s.embedding).embed(["warm up"])
        before = dict(ocr.STATS)
        t0 = time.perf_counter()
        report = ingest([docs], s)
        ingest_s = time.perf_counter() - t0
        ocr_in_ingest_s = ocr.STATS["seconds"] - before["seconds"]
        ocr_pages = int(ocr.STATS["pages"] - before["pages"])

        shutil.copy(pdf, docs / "copy.pdf")  # the same pages again: served by the cache
        t0 = time.perf_counter()
        ingest([docs], s)
        cached_s = time.perf_counter() - t0
        ocr_pages_cached_run = int(ocr.STATS["pages"] - before["pages"]) - ocr_pages

        total = sum(per_page)
        res: dict[str, Any] = {
            "cores": len(used), "pages": pages, "page_px": list(A4_200DPI), "dpi": 200,
            "model_load_s": round(model_load_s, 2),
            "ocr_pages_per_s": round(pages / total, 3),
            "ocr_s_per_page_p50": round(statistics.median(per_page), 2),
            "ocr_s_per_page_max": round(max(per_page), 2),
            "ocr_cpu_s_per_page": round(cpu_per_page, 2),
            "load_avg_1m": round(load1, 1),
            "ingest_s": round(ingest_s, 2), "ingest_pages_per_s": round(pages / ingest_s, 3),
            "ocr_share_of_ingest": round(ocr_in_ingest_s / ingest_s, 3),
            "ocr_pages_in_ingest": ocr_pages, "chunks": report.chunks_written,
            "reingest_same_pages_s": round(cached_s, 2), "ocr_pages_on_reingest": ocr_pages_cached_run,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if echo:
        for line in _lines(res):
            echo(line)
    return res


def _lines(res: dict[str, Any]) -> list[str]:
    w, h = res["page_px"]
    return [
        f"OCR on {res['cores']} CPU cores, A4 at {res['dpi']} dpi ({w}x{h} px), {res['pages']} pages",
        f"  OCR alone:   {res['ocr_pages_per_s']} pages/s  (p50 {res['ocr_s_per_page_p50']} s/page, "
        f"max {res['ocr_s_per_page_max']} s; {res['ocr_cpu_s_per_page']} CPU-s/page; "
        f"model load {res['model_load_s']} s; load average {res['load_avg_1m']})",
        f"  ingest:      {res['ingest_s']} s = {res['ingest_pages_per_s']} pages/s; "
        f"OCR is {res['ocr_share_of_ingest']:.0%} of it ({res['ocr_pages_in_ingest']} pages OCR'd, "
        f"{res['chunks']} chunks)",
        f"  re-ingest of the same pages: {res['reingest_same_pages_s']} s, "
        f"{res['ocr_pages_on_reingest']} pages OCR'd (cache)",
    ]


def main(argv: list[str] | None = None) -> None:
    main_for(run, __doc__.split("\n")[0].strip('"'), argv, pages=6, cores=2)


if __name__ == "__main__":
    main()
