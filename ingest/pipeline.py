"""The ingest path, top to bottom:
discover -> hash (skip unchanged) -> load -> chunk -> embed -> upsert -> commit manifest
-> rebuild BM25. Parsing runs in a worker thread while the main thread embeds, so the
encoder (nearly all of the cost on CPU) never waits on parsing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import LoaderError
from core.index import Index
from core.settings import Settings
from core.types import Record
from ingest.chunking import chunk_document
from ingest.derived import derive
from ingest.discover import discover, file_hash
from ingest.loaders import load

log = logging.getLogger(__name__)

Status = Literal["added", "changed", "unchanged", "failed", "removed"]


@dataclass
class FileResult:
    path: str
    status: Status
    chunks: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    chars_embedded: int = 0
    seconds: float = 0.0
    derived: dict[str, Any] = field(default_factory=dict)  # ingest/derived.py: represent, raptor

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def summary(self) -> dict[str, object]:
        return {
            "added": self.count("added"), "changed": self.count("changed"),
            "unchanged": self.count("unchanged"), "failed": self.count("failed"),
            "removed": self.count("removed"), "chunks_written": self.chunks_written,
            "seconds": round(self.seconds, 2),
            "errors": [{"path": f.path, "error": f.error} for f in self.failed],
            **self.derived,
        }


@dataclass
class Prepared:
    path: str
    digest: str
    size: int
    status: Status
    text: str = ""
    records: list[Record] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


# Progress callback: (event, amount) with event in {"files_total", "file", "chunks_total", "chunks"},
# and from PDFs (called from the loader thread) "pages_total", "page", "ocr_page", "ocr_cached".
Progress = Callable[[str, int], None]


def _prepare(
    path: Path, known: dict[str, str], settings: Settings, progress: Progress | None = None
) -> Prepared:
    sp = str(path)
    try:
        size = path.stat().st_size
        limit = int(settings.ingest.max_file_mb * 1024 * 1024)
        if size > limit:
            return Prepared(sp, "", size, "failed", error=(
                f"{path.name} is {size / 1e6:.1f} MB, over the {settings.ingest.max_file_mb:g} MB limit; "
                "raise ingest.max_file_mb to index it"))
        digest = file_hash(path)
        if known.get(sp) == digest:
            return Prepared(sp, digest, size, "unchanged")
        ingest_settings = settings.ingest
        if ingest_settings.ocr_cache_dir is None:
            cache = settings.index_path / "ocr_cache"
            ingest_settings = ingest_settings.model_copy(update={"ocr_cache_dir": cache})
        doc = load(path, ingest_settings, progress=progress)
        records = chunk_document(doc, sp, settings.chunk)
        if not records:
            raise LoaderError(f"{path.name} has no indexable text")
        status: Status = "changed" if sp in known else "added"
        return Prepared(sp, digest, size, status, doc.text, records, warnings=doc.warnings)
    except LoaderError as e:
        return Prepared(sp, "", 0, "failed", error=str(e))
    except OSError as e:
        return Prepared(sp, "", 0, "failed", error=f"{path}: cannot read ({e.strerror or e})")


def _commit(index: Index, batch: list[Prepared], report: IngestReport, progress: Progress | None) -> None:
    """Embed what is new, upsert vectors, then swap each file's records in SQLite."""
    new: list[Record] = []
    stale: list[str] = []
    for p in batch:
        old_ids = set(index.docs.get_ids_for_source(p.path)) if p.status == "changed" else set()
        ids = {r.id for r in p.records}
        stale.extend(old_ids - ids)
        # Chunks whose id (path + content) is already indexed keep their vectors.
        new.extend(r for r in p.records if r.id not in old_ids)
    if new:
        vecs = index.embedder.embed([r.index_text() for r in new])
        index.vectors.upsert(new, vecs)
        report.chunks_embedded += len(new)
        report.chars_embedded += sum(len(r.index_text()) for r in new)
    if stale:
        index.vectors.delete(stale)
    for p in batch:
        index.docs.replace_file(p.path, p.digest, p.size, p.text, p.records)
        report.files.append(FileResult(p.path, p.status, len(p.records), warnings=p.warnings))
        report.chunks_written += len(p.records)
        if progress:
            progress("file", 1)
            progress("chunks", len(p.records))


def _batches(prepared: Iterator[Prepared], size: int) -> Iterator[list[Prepared]]:
    batch: list[Prepared] = []
    n = 0
    for p in prepared:
        batch.append(p)
        n += len(p.records)
        if n >= size:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def ingest(
    paths: list[Path], settings: Settings, prune: bool = False, progress: Progress | None = None,
    index: Index | None = None,
) -> IngestReport:
    t0 = time.perf_counter()
    index = index or Index(settings)
    index.check_compatible()
    report = IngestReport()
    docs = index.docs
    if docs.get_meta("dirty") == "1":
        _reconcile(index)
    found = discover(paths, settings.ingest.extensions)
    for f in found:
        if f.path is None:
            report.files.append(FileResult(f.name, "failed", error=f.error))
    files = [f.path for f in found if f.path is not None]
    known = {p: e.hash for p, e in docs.files().items()}
    if progress:
        progress("files_total", len(files))
    changed = False
    docs.set_meta("dirty", "1")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-load") as pool:
        prepared = pool.map(lambda p: _prepare(p, known, settings, progress), files)

        def ready() -> Iterator[Prepared]:
            for p in prepared:
                if p.status == "unchanged":
                    report.files.append(FileResult(p.path, "unchanged", 0))
                    if progress:
                        progress("file", 1)
                elif p.status == "failed":
                    report.files.append(FileResult(p.path, "failed", error=p.error))
                    if progress:
                        progress("file", 1)
                else:
                    if progress:
                        progress("chunks_total", len(p.records))
                    yield p

        # The encoder sorts each call's texts by length before batching; 1,024 chunks a call
        # pad about as little as one global sort (256 padded ~10% more tokens; rag bench ingest).
        for batch in _batches(ready(), max(settings.embedding.batch_size * 16, 1024)):
            _commit(index, batch, report, progress)
            changed = True
    if prune:
        for path in list(docs.files()):
            if not Path(path).exists():
                ids = docs.remove_file(path)
                index.vectors.delete(ids)
                report.files.append(FileResult(path, "removed", len(ids)))
                changed = True
    derived_changed, report.derived = derive(index, settings, progress)  # representations, RAPTOR (if on)
    changed |= derived_changed
    if changed or (index.exists() and not index.keyword.is_current()):
        index.rebuild_keyword()
    if changed:
        index.write_manifest()
    docs.set_meta("dirty", "0")
    report.seconds = time.perf_counter() - t0
    return report


def _reconcile(index: Index) -> None:
    """After a killed run: drop vectors that no committed record owns."""
    known = set(index.docs.all_ids())
    orphans = [i for i in index.vectors.all_ids() if i not in known]
    if orphans:
        log.warning("removing %d vectors left by an interrupted run", len(orphans))
        index.vectors.delete(orphans)
    index.rebuild_keyword()
