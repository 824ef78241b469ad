"""PDF text, page by page, with page spans kept for citations."""

from __future__ import annotations

import logging
from pathlib import Path

from core.errors import LoaderError
from core.settings import IngestSettings
from ingest.loaders import LoadedDoc, Page

log = logging.getLogger(__name__)


def load_pdf(path: Path, settings: IngestSettings) -> LoadedDoc:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise LoaderError(f"{path.name} is encrypted with a password; decrypt it first (e.g. qpdf --decrypt)")
        pages_text = []
        for p in reader.pages:
            pages_text.append((p.extract_text() or "").replace("\r\n", "\n"))
    except LoaderError:
        raise
    except (PdfReadError, Exception) as e:
        raise LoaderError(f"{path.name} is not a readable PDF ({type(e).__name__}: {e})") from e
    text, pages = "", []
    for i, t in enumerate(pages_text, start=1):
        t = t.strip()
        if not t:
            continue
        if text:
            text += "\n\n"
        start = len(text)
        text += t
        pages.append(Page(number=i, start=start, end=len(text)))
    if not text.strip():
        raise LoaderError(f"{path.name} has no text layer (scanned?) and OCR is not available")
    meta_title = ""
    try:
        meta_title = (reader.metadata.title or "") if reader.metadata else ""
    except Exception:
        pass
    return LoadedDoc(text=text, title=str(meta_title).strip() or path.stem, pages=pages)
