"""Files uploaded in the chat UI: checked, saved under `<index_dir>/uploads/`, ingested.

A name is reduced to its last path component and safe characters (letters of any script,
digits, `._- `) and at most MAX_NAME characters and MAX_NAME_BYTES bytes of UTF-8 (file
systems cap a name at 255 bytes), so nothing is ever written outside the upload folder; a file
whose extension ingestion does not accept, that is over `ui.max_upload_mb`, or that cannot be
written is refused with a reason and listed in the same per-file report `rag ingest` prints,
and the other files of the batch are still saved. Two files of one batch whose names sanitise
alike are kept apart (`name-2.ext`); a later upload of the same name replaces the file."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings

UPLOAD_DIR = "uploads"
MAX_NAME = 120  # characters
MAX_NAME_BYTES = 200  # UTF-8 bytes, extension included (file systems allow 255)
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


def _fit(stem: str, tail: str) -> str:
    """`stem + tail`, the stem cut (on a character boundary) to fit MAX_NAME characters and
    MAX_NAME_BYTES bytes of UTF-8."""
    stem = stem[: max(1, MAX_NAME - len(tail))]
    room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    while len(stem.encode("utf-8")) > room and len(stem) > 1:
        stem = stem[:-1]
    return (stem.rstrip(" ._") or stem) + tail


def sanitise_name(name: str) -> str:
    """A safe file name: last path component (either slash), NFKC, no control or shell-special
    characters, no leading dots, at most MAX_NAME characters and MAX_NAME_BYTES UTF-8 bytes
    keeping the extension."""
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    base = re.sub(r"_+", "_", base)
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem.strip(" ._") or "upload"
    ext = ext[:16]
    return _fit(stem, f".{ext}" if ext else "")


def _unique(safe: str, taken: set[str]) -> str:
    """`safe`, or `stem-2.ext`, `stem-3.ext`... when an earlier file of the batch took it
    (compared case-insensitively, as some file systems do)."""
    stem, ext = Path(safe).stem, Path(safe).suffix
    name, n = safe, 1
    while name.casefold() in taken:
        n += 1
        name = _fit(stem, f"-{n}{ext}")
    taken.add(name.casefold())
    return name


def _write(target: Path, data: bytes) -> None:
    """Write through a temporary file unique to this call, then rename it over `target` (a
    reader never sees half a file; two uploads at once never share a temporary file)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_uploads(files: list[Upload], settings: Settings) -> SavedUploads:
    """Write the acceptable files into the upload folder (an existing file of the same name is
    replaced, so re-uploading a document updates it in the index; within one batch, names that
    sanitise alike get `-2`, `-3`...). A file that cannot be written is reported and skipped."""
    out = SavedUploads()
    folder = upload_dir(settings).resolve()
    allowed = set(accepted_types(settings))
    limit = settings.ui.max_upload_mb
    taken: set[str] = set()
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
        safe = _unique(safe, taken)
        target = (folder / safe).resolve()
        if target.parent != folder:  # cannot happen after sanitising; never write elsewhere
            out.errors.append(f"{f.name}: refused, the name leads outside {folder}")
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write(target, f.data)
        except OSError as e:
            out.errors.append(f"{f.name}: could not be saved as {target} ({e.strerror or e}); "
                              "free some space or check the folder's permissions, then upload it again")
            continue
        out.paths.append(target)
    return out
