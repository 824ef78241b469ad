"""Ingest in a background thread, for the chat UI.

Streamlit stops its script thread on every click, so an ingest run inline would stop half
way. Here `start` runs `ingest.pipeline.ingest` in a daemon thread and keeps the job in a
process-wide registry keyed by index folder: one job per index at a time, found again by
any later script run (a Streamlit session keeps only the job's id). The writer lock is
taken by `ingest()` itself, so a `rag ingest` running in a terminal ends the job as failed
with the one line `IndexBusyError` says. No Streamlit import: this is plain Python."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import RagError
from core.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["running", "done", "failed"]
COUNTED = ("files_total", "file", "chunks_total", "chunks")
# other steps shown by name: (done event, total event) -> what the progress text calls them
STEPS = {
    "page": ("page", "pages_total"),
    "represent": ("represent", "represent_total"),
    "raptor": ("raptor", "raptor_total"),
}
STEP_NAMES = {"page": "pages", "represent": "summaries", "raptor": "RAPTOR summaries"}
_STEP_OF = {ev: (step, i == 1) for step, evs in STEPS.items() for i, ev in enumerate(evs)}


@dataclass(frozen=True)
class JobSnapshot:
    """One consistent reading of a job, safe to use from any thread."""

    id: str
    index_dir: str
    paths: tuple[Path, ...]
    started: float
    status: Status
    files: int
    files_total: int
    chunks: int
    chunks_total: int
    steps: dict[str, tuple[int, int]]  # step -> (done, total): PDF pages, representations, RAPTOR
    failures: tuple[str, ...]
    warnings: tuple[str, ...]
    summary: str
    finished: float | None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def fraction(self) -> float:
        """Files done out of files found (1.0 once finished)."""
        if not self.running:
            return 1.0
        return min(self.files / self.files_total, 1.0) if self.files_total else 0.0

    def text(self) -> str:
        if not self.running:
            return "done" if self.status == "done" else "failed"
        if not self.files_total and not self.files:
            return "Reading files…"
        parts = [f"files {self.files}/{self.files_total}", f"chunks {self.chunks}/{self.chunks_total}"]
        parts += [f"{STEP_NAMES[k]} {d}/{t}" for k, (d, t) in self.steps.items() if t]
        return " · ".join(parts)


@dataclass
class IngestJob:
    id: str
    index_dir: str
    paths: list[Path]
    started: float = field(default_factory=time.time)
    status: Status = "running"
    files: int = 0
    files_total: int = 0
    chunks: int = 0
    chunks_total: int = 0
    steps: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def progress(self, event: str, amount: int) -> None:
        """The ingest progress callback; called from the job's thread and the loader thread."""
        with self._lock:
            if event in COUNTED:
                attr = "files" if event == "file" else event
                setattr(self, attr, getattr(self, attr) + amount)
            elif event in _STEP_OF:
                step, total = _STEP_OF[event]
                self.steps.setdefault(step, [0, 0])[1 if total else 0] += amount

    def finish(self, status: Status, failures: list[str], warnings: list[str], summary: str) -> None:
        with self._lock:
            self.failures += failures
            self.warnings += warnings
            self.summary = summary
            self.finished = time.time()
            self.status = status
        self._done.set()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                self.id,
                self.index_dir,
                tuple(self.paths),
                self.started,
                self.status,
                self.files,
                self.files_total,
                self.chunks,
                self.chunks_total,
                {k: (v[0], v[1]) for k, v in self.steps.items()},
                tuple(self.failures),
                tuple(self.warnings),
                self.summary,
                self.finished,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (True) or `timeout` seconds passed (False)."""
        return self._done.wait(timeout)


_jobs: dict[str, IngestJob] = {}  # index folder -> its latest job (running or finished)
_by_id: dict[str, IngestJob] = {}
_guard = threading.Lock()
KEEP_FINISHED = 32  # finished jobs kept for their reports, oldest dropped first


def _key(index_dir: Path) -> str:
    return str(Path(index_dir).resolve())


def start(paths: Sequence[Path], settings: Settings, refused: Sequence[str] = ()) -> tuple[IngestJob, bool]:
    """Start ingesting `paths` into the index of `settings` in the background. `refused` are
    one-line reasons for uploads that were not saved; they head the job's failures.
    Returns (job, started): while a job for this index runs, that job and False (nothing new
    is started; its `paths` say what it ingests)."""
    key = _key(settings.index_path)
    with _guard:
        running = _jobs.get(key)
        if running is not None and running.status == "running":
            return running, False
        job = IngestJob(uuid.uuid4().hex[:12], key, list(paths))
        job.failures = [f"failed {e}" for e in refused]
        _jobs[key] = job
        _by_id[job.id] = job
        _forget_old()
    if not job.paths:
        job.finish("done", [], [], "nothing to ingest")
        return job, True
    threading.Thread(target=_run, args=(job, settings), name=f"rag-ingest-{job.id}", daemon=True).start()
    return job, True


def _forget_old() -> None:
    finished = [j for j in _by_id.values() if j.status != "running" and _jobs.get(j.index_dir) is not j]
    for j in sorted(finished, key=lambda j: j.started)[: max(len(finished) - KEEP_FINISHED, 0)]:
        _by_id.pop(j.id, None)


def _common_folder(paths: list[Path]) -> Path:
    """The folder the job's files share (the uploads folder): lines name files relative to it."""
    if not paths:
        return Path.cwd()
    common = Path(os.path.commonpath([str(p) for p in paths]))
    return common.parent if len(paths) == 1 or common in paths else common


def _run(job: IngestJob, settings: Settings) -> None:
    from app.ingest_lines import report_lines
    from ingest.pipeline import ingest

    try:
        report = ingest(job.paths, settings, progress=job.progress)
        failures, warnings, summary = report_lines(report, settings, _common_folder(job.paths))
        job.finish("done", failures, warnings, summary)
    except RagError as e:  # IndexBusyError included: another writer holds the index
        job.finish("failed", [f"failed {e}"], [], "")
    except Exception as e:  # a bug must not leave the job "running" forever
        log.exception("ingest job %s crashed", job.id)
        job.finish(
            "failed",
            [f"failed: the ingest stopped with an unexpected error: {type(e).__name__}: {e}"],
            [],
            "",
        )


def current(index_dir: Path) -> IngestJob | None:
    """The latest job for this index folder (running or finished), or None."""
    with _guard:
        return _jobs.get(_key(index_dir))


def running(index_dir: Path) -> IngestJob | None:
    job = current(index_dir)
    return job if job is not None and job.status == "running" else None


def get(job_id: str) -> IngestJob | None:
    with _guard:
        return _by_id.get(job_id)
