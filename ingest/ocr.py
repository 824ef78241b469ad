"""OCR of rendered pages with RapidOCR (PP-OCRv4 detection + recognition for Chinese and
English, ONNX models shipped inside the `rapidocr-onnxruntime` wheel: nothing is
downloaded). Boxes are put back into reading order (top to bottom, left to right,
paragraph breaks at large vertical gaps), dropped English spaces are restored, and the
raw result is cached by the page image's hash so no page is OCR'd twice."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

from core.lang import is_wide
from core.versions import package_versions
from ingest.spacing import restore_spaces

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_engines: dict[int, Any] = {}
_engine_lock = threading.Lock()
# Per-process totals, read by the benchmark and logged by the PDF loader.
STATS = {"pages": 0, "seconds": 0.0}


@dataclass
class Box:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    score: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


def engine_version() -> str:
    dist = "rapidocr-onnxruntime"
    return f"{dist} {package_versions([dist]).get(dist, 'not installed')}"


def _get_engine(threads: int | None) -> Any:
    """One RapidOCR per process and thread count (model load ~0.2 s); calls hold the lock."""
    key = threads or -1
    if key not in _engines:
        from rapidocr_onnxruntime import RapidOCR

        _engines[key] = RapidOCR(intra_op_num_threads=key, inter_op_num_threads=1 if threads else -1)
        # The library's own logger prints a line per call at INFO; keep it quiet.
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return _engines[key]


def run_ocr(image: Image, threads: int | None = None) -> list[Box]:
    """Detect and recognise text lines on one page image."""
    import time

    import numpy as np

    arr = np.asarray(image.convert("RGB"))
    with _engine_lock:
        engine = _get_engine(threads)
        t0 = time.perf_counter()
        # No text-line angle classifier: scans are upright, and on clean print it turned
        # about one line in five upside down (then dropped as low-confidence garbage).
        result, _ = engine(arr, use_cls=False)
        STATS["pages"] += 1
        STATS["seconds"] += time.perf_counter() - t0
    boxes = []
    for pts, text, score in result or []:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if str(text).strip():
            boxes.append(Box(min(xs), min(ys), max(xs), max(ys), str(text), float(score)))
    return boxes


def _join(left: str, right: str) -> str:
    if not left:
        return right
    if is_wide(left[-1]) and is_wide(right[0]):  # no space between CJK characters or CJK punctuation
        return left + right
    return left + " " + right


def layout_text(boxes: list[Box]) -> str:
    """Boxes as text in reading order: a line is boxes whose vertical centres lie within
    half a line height of each other, read left to right; a gap of more than about one
    line between lines starts a new paragraph."""
    if not boxes:
        return ""
    h = median(b.height for b in boxes) or 1.0
    lines: list[list[Box]] = []
    for b in sorted(boxes, key=lambda b: (b.cy, b.x0)):
        if lines and abs(b.cy - median(x.cy for x in lines[-1])) <= h * 0.5:
            lines[-1].append(b)
        else:
            lines.append([b])
    out: list[str] = []
    prev_bottom: float | None = None
    for line in lines:
        line.sort(key=lambda b: b.x0)
        text = ""
        for b in line:
            text = _join(text, b.text.strip())
        top = min(b.y0 for b in line)
        if prev_bottom is not None:
            out.append("\n\n" if top - prev_bottom > h * 0.9 else "\n")
        out.append(text)
        prev_bottom = max(b.y1 for b in line)
    return restore_spaces("".join(out))


def image_key(image: Image) -> str:
    """The page image's hash: same pixels (same page at the same dpi) -> same key."""
    h = hashlib.sha256()
    h.update(f"{image.mode} {image.size[0]}x{image.size[1]}\n".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class OcrCache:
    """Raw OCR boxes as JSON files under `root/<key[:2]>/<key>.json`, written atomically,
    so a re-ingest or a resumed run reads them instead of running OCR again."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Box] | None:
        p = self._path(key)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("format") != CACHE_FORMAT or data.get("engine") != engine_version():
            return None
        try:
            return [Box(**b) for b in data["boxes"]]
        except (KeyError, TypeError):
            return None

    def put(self, key: str, boxes: list[Box]) -> None:
        p = self._path(key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            boxes_json = [b.__dict__ for b in boxes]
            payload = {"format": CACHE_FORMAT, "engine": engine_version(), "boxes": boxes_json}
            tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, p)
        except OSError as e:  # a read-only index still ingests, just without the cache
            log.warning("could not write the OCR cache at %s: %s", p, e)


def ocr_page(image: Image, cache: OcrCache | None, threads: int | None = None) -> tuple[str, bool]:
    """Text of one page image, and whether it came from the cache."""
    key = image_key(image) if cache is not None else ""
    boxes = cache.get(key) if cache is not None else None
    cached = boxes is not None
    if boxes is None:
        boxes = run_ocr(image, threads)
        if cache is not None:
            cache.put(key, boxes)
    return layout_text(boxes), cached
