"""Files uploaded in the chat UI: checked, saved under `<index_dir>/uploads/`, ingested.

A name is reduced to its last path component and safe characters (letters of any script,
digits, `._- `), so nothing is ever written outside the upload folder; a file whose
extension ingestion does not accept, or that is over `ui.max_upload_mb`, is refused with
a reason and listed in the same per-file report `rag ingest` prints."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings

UPLOAD_DIR = "uploads"
MAX_NAME = 120
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


@dataclass
class Upload:
    name: str  # as the browser sent it
    data: bytes


@dataclass
class SavedUploads:
    paths: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one sentence per refused file


def upload_dir(settings: Settings) -> Path:
    return settings.index_path / UPLOAD_DIR


def accepted_types(settings: Settings) -> list[str]:
    """Extensions ingestion accepts, with their dots: `st.file_uploader(type=...)` then checks
    them on the server too (a bare "text" would mean any text/* MIME type to it)."""
    return sorted({"." + e.lower().lstrip(".") for e in settings.ingest.extensions})


def sanitise_name(name: str) -> str:
    """A safe file name: last path component (either slash), NFKC, no control or shell-special
    characters, no leading dots, at most MAX_NAME characters keeping the extension."""
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    base = re.sub(r"_+", "_", base)
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem.strip(" ._") or "upload"
    ext = ext[:16]
    room = MAX_NAME - (len(ext) + 1 if ext else 0)
    return f"{stem[:room]}.{ext}" if ext else stem[:MAX_NAME]


def save_uploads(files: list[Upload], settings: Settings) -> SavedUploads:
    """Write the acceptable files into the upload folder (an existing file of the same name is
    replaced, so re-uploading a document updates it in the index)."""
    out = SavedUploads()
    folder = upload_dir(settings).resolve()
    allowed = set(accepted_types(settings))
    limit = settings.ui.max_upload_mb
    for f in files:
        safe = sanitise_name(f.name)
        ext = Path(safe).suffix.lower()
        if ext not in allowed:
            out.errors.append(f"{f.name}: '{ext or 'no extension'}' files are not accepted; "
                              f"upload one of: {', '.join(sorted(allowed))}")
            continue
        size_mb = len(f.data) / (1024 * 1024)
        if size_mb > limit:
            out.errors.append(f"{f.name} is {size_mb:.2f} MB, over the {limit:g} MB upload limit; "
                              "raise ui.max_upload_mb or ingest it with `rag ingest PATH`")
            continue
        target = (folder / safe).resolve()
        if target.parent != folder:  # cannot happen after sanitising; never write elsewhere
            out.errors.append(f"{f.name}: refused, the name leads outside {folder}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(f.data)
        tmp.replace(target)
        out.paths.append(target)
    return out


def report_lines(report: object, settings: Settings) -> tuple[list[str], list[str], str]:
    """(failures, warnings, summary) worded as `rag ingest` prints them."""
    from ingest.pipeline import IngestReport

    assert isinstance(report, IngestReport)
    s = report.summary()
    failures = [f"failed {f.error}" for f in report.failed]
    warnings = [f"warning {Path(f.path).name}: {w}" for f in report.files for w in f.warnings]
    summary = (f"{s['added']} added, {s['changed']} changed, {s['unchanged']} unchanged, "
               f"{s['failed']} failed, {s['removed']} removed; "
               f"{s['chunks_written']} chunks written in {s['seconds']}s -> {settings.index_path}")
    return failures, warnings, summary
