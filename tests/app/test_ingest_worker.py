"""The UI's background ingest (app.ingest_worker): real ingests of a tiny folder (MiniLM,
Chroma, BM25) in a daemon thread; a gate inside `ingest()` holds a job running while the
test looks at it, so nothing here depends on timing."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ingest.pipeline as pipeline
from app import ingest_worker
from core.errors import IndexBusyError
from core.index import Index
from core.lock import write_lock
from core.settings import Settings
from tests.files import write_docs

DOCS = {
    "kettle.md": "# Kettles\n\nA gooseneck kettle pours a slow, steady stream onto the coffee bed.\n",
    "grinder.md": "# Grinders\n\nBurr grinders crush beans evenly; blade grinders chop them unevenly.\n",
    "water.txt": "Water for tea: green tea at 80 degrees, black tea at 95 degrees.\n",
}
WAIT_S = 300.0  # a real ingest on a busy CPU; the tests never assert how long anything takes


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return write_docs(tmp_path / "docs", DOCS)


class Gate:
    """Wraps the real `ingest()`: records the calling thread, then waits for `open()`."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real, self.event, self.entered = real, threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.event.wait(WAIT_S), "the test never opened the gate"
        return self.real(*args, **kwargs)

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Any:
    g = Gate(pipeline.ingest)
    monkeypatch.setattr(pipeline, "ingest", g)
    yield g
    g.open()  # never leave a worker waiting


def _no_seconds(line: str) -> str:
    return re.sub(r"in [0-9.]+s ->", "in Ns ->", line)


def test_ingest_runs_in_a_background_thread_and_reports_like_rag_ingest(
    docs: Path,
    settings: Settings,
    gate: Gate,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job, started = ingest_worker.start([docs], settings)
    assert started
    snap = job.snapshot()
    assert snap.status == "running" and snap.summary == ""  # start returned before ingesting
    assert ingest_worker.running(settings.index_path) is job
    assert ingest_worker.get(job.id) is job
    gate.open()
    assert job.wait(WAIT_S)
    assert gate.threads and gate.threads[0] is not threading.current_thread()
    assert gate.threads[0].daemon
    snap = job.snapshot()
    assert snap.status == "done", snap.failures
    assert snap.files == snap.files_total == 3
    assert snap.chunks == snap.chunks_total > 0
    assert snap.fraction == 1.0 and snap.finished is not None and not snap.failures
    assert ingest_worker.running(settings.index_path) is None
    assert ingest_worker.current(settings.index_path) is job  # kept for its report
    assert Index(settings).status()["documents"] == 3
    # the summary line is the one `rag ingest` prints for the same folder
    from typer.testing import CliRunner

    from app.cli import _register, app

    _register()
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "cli_index"))
    cli = CliRunner().invoke(app, ["ingest", "--no-progress", str(docs)])
    assert cli.exit_code == 0, cli.output
    cli_summary = next(line for line in cli.output.splitlines() if " added, " in line)
    assert _no_seconds(snap.summary) == _no_seconds(cli_summary.strip()).replace(
        str(tmp_path / "cli_index"), str(settings.index_path)
    )
    assert snap.summary.startswith("3 added, 0 changed, 0 unchanged, 0 failed, 0 removed; ")


def test_progress_is_counted_across_threads(settings: Settings) -> None:
    job = ingest_worker.IngestJob("x", str(settings.index_path), [])

    def emit() -> None:
        for _ in range(2000):
            job.progress("chunks", 1)
            job.progress("page", 1)
            job.progress("no-such-event", 1)  # ignored

    threads = [threading.Thread(target=emit) for _ in range(4)]
    for t in threads:
        t.start()
    job.progress("files_total", 2)
    job.progress("pages_total", 8000)
    for t in threads:
        t.join()
    snap = job.snapshot()
    assert snap.chunks == 8000 and snap.steps["page"] == (8000, 8000) and snap.files_total == 2
    assert "pages 8000/8000" in snap.text()


def test_a_second_start_while_one_runs_returns_the_running_job(
    docs: Path,
    settings: Settings,
    gate: Gate,
    tmp_path: Path,
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "more.md").write_text("# More\n\nSomething else entirely.\n")
    first, started = ingest_worker.start([docs], settings)
    assert started and gate.entered.wait(WAIT_S)
    again, started_again = ingest_worker.start([other], settings)
    assert again is first and not started_again and again.paths == [docs]
    gate.open()
    assert first.wait(WAIT_S) and first.snapshot().status == "done"
    assert len(gate.threads) == 1  # one ingest, not two
    assert Index(settings).status()["documents"] == 3
    third, started_third = ingest_worker.start([other], settings)  # the index is free again
    assert started_third and third is not first
    assert third.wait(WAIT_S) and third.snapshot().summary.startswith("1 added")
    assert ingest_worker.get(first.id) is first  # the earlier report is still there


def test_a_rag_error_ends_the_job_as_failed_with_its_message(
    docs: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    msg = "The index at /x is being written: an ingest is running (pid 1, started 10:00:00); try again"

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise IndexBusyError(msg)

    monkeypatch.setattr(pipeline, "ingest", busy)
    job, _ = ingest_worker.start([docs], settings, refused=["big.txt is 3 MB, over the 1 MB upload limit"])
    assert job.wait(WAIT_S)
    snap = job.snapshot()
    assert snap.status == "failed" and snap.summary == ""
    assert snap.failures == ("failed big.txt is 3 MB, over the 1 MB upload limit", f"failed {msg}")
    assert ingest_worker.running(settings.index_path) is None


def test_another_writer_holding_the_index_fails_the_job_naming_it(docs: Path, settings: Settings) -> None:
    with write_lock(settings.index_path, "a prune"):
        job, _ = ingest_worker.start([docs], settings)
        assert job.wait(WAIT_S)
    snap = job.snapshot()
    assert snap.status == "failed"
    assert len(snap.failures) == 1 and "a prune is running" in snap.failures[0]
    assert str(settings.index_path) in snap.failures[0]
    assert Index(settings).status().get("documents", 0) == 0


def test_an_unexpected_error_does_not_leave_the_job_running(
    docs: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pipeline, "ingest", broken)
    job, _ = ingest_worker.start([docs], settings)
    assert job.wait(WAIT_S)
    snap = job.snapshot()
    assert snap.status == "failed" and "ZeroDivisionError: division by zero" in snap.failures[0]


def test_nothing_to_ingest_is_done_at_once_with_the_refused_uploads(settings: Settings) -> None:
    job, started = ingest_worker.start([], settings, refused=["a.exe: '.exe' files are not accepted"])
    snap = job.snapshot()
    assert started and snap.status == "done" and snap.summary == "nothing to ingest"
    assert snap.failures == ("failed a.exe: '.exe' files are not accepted",)
