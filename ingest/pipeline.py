"""The ingest path, top to bottom:
discover -> hash (skip unchanged) -> load -> chunk -> embed -> upsert -> commit manifest
-> rebuild BM25. Parsing runs in a worker thread while the main thread embeds, so the
encoder (nearly all of the cost on CPU) never waits on parsing."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import LoaderError
from core.index import Index
from core.lock import write_lock
from core.settings import Settings
from core.tables import FoundTable
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
    # the folders' files of types ingest does not read (ingest.extensions), by suffix
    skipped: dict[str, int] = field(default_factory=dict)

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
            "skipped_types": dict(self.skipped),
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
    tables: list[FoundTable] = field(default_factory=list)  # stored as SQLite tables (core/tables.py)


# Progress callback: (event, amount) with event in {"files_total", "file", "chunks_total", "chunks"},
# and from PDFs (called from the loader thread) "pages_total", "page", "ocr_page", "ocr_cached".
Progress = Callable[[str, int], None]


def _prepare(
    path: Path, known: dict[str, str], settings: Settings, progress: Progress | None = None
) -> Prepared:
    """Read the file once: the bytes hashed are the bytes parsed, so a file rewritten while
    it is ingested is stored with the hash of the version whose text is indexed."""
    sp = str(path)
    try:
        size = path.stat().st_size
        limit = int(settings.ingest.max_file_mb * 1024 * 1024)
        data = b""
        if size <= limit:
            with path.open("rb") as f:
                data = f.read(limit + 1)  # one byte over the limit at most: a file that grew is refused
            size = len(data)
        if size > limit:
            return Prepared(sp, "", size, "failed", error=(
                f"{path.name} is {size / 1e6:.1f} MB, over the {settings.ingest.max_file_mb:g} MB limit; "
                "raise ingest.max_file_mb to index it"))
        digest = file_hash(path, data)
        if known.get(sp) == digest:
            return Prepared(sp, digest, size, "unchanged")
        ingest_settings = settings.ingest
        if ingest_settings.ocr_cache_dir is None:
            cache = settings.index_path / "ocr_cache"
            ingest_settings = ingest_settings.model_copy(update={"ocr_cache_dir": cache})
        doc = load(path, ingest_settings, progress=progress, data=data)
        records = chunk_document(doc, sp, settings.chunk)
        if not records:
            raise LoaderError(f"{path.name} has no indexable text")
        status: Status = "changed" if sp in known else "added"
        return Prepared(sp, digest, size, status, doc.text, records, warnings=doc.warnings, tables=doc.tables)
    except LoaderError as e:
        return Prepared(sp, "", 0, "failed", error=str(e))
    except OSError as e:
        return Prepared(sp, "", 0, "failed", error=f"{path}: cannot read ({e.strerror or e})")


def _commit(index: Index, batch: list[Prepared], report: IngestReport, progress: Progress | None) -> None:
    """Embed what is new and upsert its vectors, swap each file's records in SQLite, and only
    then delete the vectors no record owns any more. A kill between two steps leaves either
    vectors without records (dropped by `_reconcile`) or, never, records without vectors:
    the old chunks keep theirs until the new ones are committed."""
    new: list[Record] = []
    stale: list[str] = []
    for p in batch:
        old_ids = set(index.docs.get_ids_for_source(p.path)) if p.status == "changed" else set()
        ids = {r.id for r in p.records}
        stale.extend(old_ids - ids)
        # Chunks whose id (path + content) is already indexed keep their vectors.
        new.extend(r for r in p.records if r.id not in old_ids)
    if new:
        texts = [index.settings.embedding.text_of(r) for r in new]
        index.vectors.upsert(new, index.embedder.embed(texts))
        report.chunks_embedded += len(new)
        report.chars_embedded += sum(map(len, texts))
    _fault("after_upsert")
    for p in batch:
        # tables first: a kill before the file's records commit re-ingests it, replacing them again
        index.tables.replace_source(p.path, p.tables)
        index.docs.replace_file(p.path, p.digest, p.size, p.text, p.records)
        report.files.append(FileResult(p.path, p.status, len(p.records), warnings=p.warnings))
        report.chunks_written += len(p.records)
        if progress:
            progress("file", 1)
            progress("chunks", len(p.records))
    _fault("after_sqlite")
    if stale:
        index.vectors.delete(stale)
    _fault("after_delete")


def _fault(step: str) -> None:
    """Crash-test hook: `RAG_FAULT_AT=<step>` kills the process there (tests/faults/), as
    kill -9 would, so each step of a commit is tested for what it leaves behind."""
    if os.environ.get("RAG_FAULT_AT") == step:
        os._exit(137)


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


# Parsed files waiting for the encoder: enough to keep it busy, few enough that a folder of
# large files is never held in memory at once.
PREFETCH = 4


class _Cancelled(BaseException):  # not Exception: a loader's broad except must not swallow it
    """Raised inside the loader thread (through its progress callback) once the run stops."""


def _load_ahead(
    files: list[Path], known: dict[str, str], settings: Settings, progress: Progress | None,
) -> Iterator[Prepared]:
    """`_prepare` each file in one worker thread, at most PREFETCH files ahead of the consumer.
    When the consumer stops (an error, Ctrl-C), pending files are cancelled and the file being
    parsed stops at its next page: the progress callback it calls raises."""
    stop = threading.Event()

    def guarded(event: str, amount: int) -> None:
        if stop.is_set():
            raise _Cancelled()
        if progress:
            progress(event, amount)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-load")
    pending: deque[Future[Prepared]] = deque()
    todo = iter(files)
    try:
        for f in todo:
            pending.append(pool.submit(_prepare, f, known, settings, guarded))
            if len(pending) >= PREFETCH:
                break
        while pending:
            done = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_prepare, nxt, known, settings, guarded))
            yield done
    finally:
        stop.set()
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def ingest(
    paths: list[Path], settings: Settings, prune: bool = False, progress: Progress | None = None,
    index: Index | None = None, notice: Callable[[str], None] | None = None,
) -> IngestReport:
    """Index `paths` (files and folders) into the index of `settings`, holding its writer lock.
    `notice` gets lines to show while it runs (the derived layers' cost estimates)."""
    with write_lock(settings.index_path, "an ingest"):
        return _ingest(paths, settings, prune, progress, index or Index(settings), notice)


def _ingest(
    paths: list[Path], settings: Settings, prune: bool, progress: Progress | None, index: Index,
    notice: Callable[[str], None] | None = None,
) -> IngestReport:
    t0 = time.perf_counter()
    index.check_compatible()
    report = IngestReport()
    docs = index.docs
    reconciled = docs.get_meta("dirty") == "1"
    if reconciled:
        _reconcile(index)
    files = _discovered(paths, settings, report)
    known = _rechunk(index, settings, {p: e.hash for p, e in docs.files().items()}, notice)
    if progress:
        progress("files_total", len(files))
    changed = False
    docs.set_meta("dirty", "1")
    # The encoder sorts each call's texts by length before batching; 1,024 chunks a call
    # pad about as little as one global sort (256 padded ~10% more tokens; rag bench ingest).
    ready = _to_commit(files, known, settings, progress, report)
    for batch in _batches(ready, max(settings.embedding.batch_size * 16, 1024)):
        _commit(index, batch, report, progress)
        changed = True
    if prune:
        changed |= _prune(index, report)
    derived_changed, report.derived = derive(index, settings, progress, notice)  # representations, RAPTOR
    changed |= derived_changed
    if changed or (index.exists() and not index.keyword.is_current()):
        # Only these files' records changed since the keyword index was last built, unless a
        # killed run was repaired or a derived layer wrote records: then its order is read whole.
        touched = {f.path for f in report.files if f.status in ("added", "changed", "removed")}
        index.rebuild_keyword(None if reconciled or derived_changed else touched)
    if changed:
        index.write_manifest()
    docs.set_meta("dirty", "0")
    report.seconds = time.perf_counter() - t0
    return report


def _rechunk(index: Index, settings: Settings, known: dict[str, str],
             notice: Callable[[str], None] | None) -> dict[str, str]:
    """`known` (each indexed file's hash), with no file left as unchanged when the chunk
    settings differ from those the index was last written with: a changed `chunk.size` had
    found every file unchanged and changed nothing. The files of this run are chunked again
    (their chunks that come out the same keep their vectors); the notice says so."""
    built, now = index.manifest().get("chunk"), settings.chunk.model_dump()
    if not isinstance(built, dict):
        return known
    moved = {k: (built[k], v) for k, v in now.items() if k in built and built[k] != v}
    if not known or not moved:
        return known
    if notice:
        what = ", ".join(f"chunk.{k} {a} -> {b}" for k, (a, b) in moved.items())
        notice(f"The chunk settings changed since this index was written ({what}): the files of "
               "this ingest are chunked again; files not in it keep their chunks.")
    return dict.fromkeys(known, "")


def _discovered(paths: list[Path], settings: Settings, report: IngestReport) -> list[Path]:
    """The files to consider; what could not be read (a missing path, a symlink loop) is
    reported as failed."""
    skipped: Counter[str] = Counter()
    found = discover(paths, settings.ingest.extensions,
                     follow_external_links=settings.ingest.follow_external_links, skipped=skipped)
    report.skipped = dict(skipped.most_common())
    report.files += [FileResult(f.name, "failed", error=f.error) for f in found if f.path is None]
    return [f.path for f in found if f.path is not None]


def _to_commit(
    files: list[Path], known: dict[str, str], settings: Settings, progress: Progress | None,
    report: IngestReport,
) -> Iterator[Prepared]:
    """The loaded and chunked files that changed; unchanged and failed ones go to the report."""
    for p in _load_ahead(files, known, settings, progress):
        if p.status in ("unchanged", "failed"):
            report.files.append(FileResult(p.path, p.status, error=p.error))
            if progress:
                progress("file", 1)
            continue
        if progress:
            progress("chunks_total", len(p.records))
        yield p


def _prune(index: Index, report: IngestReport) -> bool:
    """Remove what the index holds of files that no longer exist; True when something went."""
    removed = False
    for path in list(index.docs.files()):
        if not Path(path).exists():
            ids = index.docs.remove_file(path)
            index.vectors.delete(ids)
            index.tables.remove_source(path)
            report.files.append(FileResult(path, "removed", len(ids)))
            removed = True
    return removed


def _reconcile(index: Index) -> None:
    """After a killed run, make the vector store agree with the committed records both ways:
    drop vectors that no record owns, embed records that have no vector."""
    known = set(index.docs.all_ids())
    have = set(index.vectors.all_ids())
    orphans = sorted(have - known)
    if orphans:
        log.warning("removing %d vectors left by an interrupted run", len(orphans))
        index.vectors.delete(orphans)
    missing = sorted(known - have)
    if missing:
        log.warning("embedding %d records an interrupted run left without vectors", len(missing))
        recs = index.docs.get(missing)
        todo = [recs[i] for i in missing if i in recs]
        for k in range(0, len(todo), 1024):
            part = todo[k:k + 1024]
            text_of = index.settings.embedding.text_of
            index.vectors.upsert(part, index.embedder.embed([text_of(r) for r in part]))
    index.rebuild_keyword()
