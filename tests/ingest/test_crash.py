"""Crash consistency and the writer lock: a process killed at each step of a commit leaves an
index the next run repairs to exactly what a clean run builds; two writers never interleave;
the loader stays a few files ahead of the encoder and stops when the run stops."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path

import pytest

from core.errors import IndexBusyError
from core.index import Index
from core.lock import holder, write_lock
from core.settings import Settings, load_settings
from ingest import pipeline
from ingest.pipeline import ingest

REPO = Path(__file__).resolve().parents[2]


def _corpus(root: Path) -> Path:
    d = root / "docs"
    d.mkdir(parents=True)
    (d / "a.md").write_text("# Alpha\n\nGlaciers carve valleys.\n\n## More\n\nIce sheets hold fresh water.\n")
    (d / "b.txt").write_text("Bravo: the quarterly budget was approved on Tuesday.\n")
    return d


def _state(index: Index) -> dict[str, object]:
    """What a user's queries depend on: records, their vectors, the keyword index."""
    docs = sorted((r.source, r.start, r.end, r.text) for r in index.docs.iter_records())
    ids = index.docs.all_ids()
    vec_ids = index.vectors.all_ids()
    index.keyword.load()
    return {"records": docs, "ids": sorted(ids), "dup_ids": len(ids) - len(set(ids)),
            "vectors": sorted(vec_ids), "dup_vectors": len(vec_ids) - len(set(vec_ids)),
            "keyword": sorted(index.keyword.ids)}


def _rag_ingest(d: Path, index_dir: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_INDEX_DIR"] = str(index_dir)
    if fault:
        env["RAG_FAULT_AT"] = fault
    return subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(d), "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("step", ["after_upsert", "after_sqlite", "after_delete"])
def test_kill_at_each_commit_step_then_rerun_equals_a_clean_index(tmp_path: Path, step: str) -> None:
    d = _corpus(tmp_path)
    idx = tmp_path / "crashed"
    first = _rag_ingest(d, idx)
    assert first.returncode == 0
    assert "DEBUG" not in first.stdout + first.stderr  # library logging stays quiet without -v
    # Change one file so the commit has new vectors to add and old ones to delete.
    (d / "a.md").write_text("# Alpha\n\nDeserts hold dunes.\n\n## More\n\nIce sheets hold fresh water.\n")
    (d / "c.md").write_text("Charlie: volcanoes erupt molten rock.\n")
    crashed = _rag_ingest(d, idx, fault=step)
    assert crashed.returncode == 137, crashed.stderr  # killed at that step, like kill -9
    assert _rag_ingest(d, idx).returncode == 0
    clean = load_settings(index_dir=tmp_path / "clean")
    ingest([d], clean)
    got = _state(Index(load_settings(index_dir=idx)))
    want = _state(Index(clean))
    assert got["dup_ids"] == 0 and got["dup_vectors"] == 0
    assert got["vectors"] == got["ids"] == got["keyword"]
    assert got["records"] == want["records"]
    assert "Glaciers" not in str(got["records"])


def test_records_left_without_vectors_are_embedded_again(tmp_path: Path, settings: Settings) -> None:
    d = _corpus(tmp_path)
    ingest([d], settings)
    index = Index(settings)
    lost = index.docs.all_ids()[:2]
    index.vectors.delete(lost)  # what the old order (delete, then swap) left after a kill
    index.docs.set_meta("dirty", "1")
    ingest([d], settings)
    index = Index(settings)
    assert sorted(index.vectors.all_ids()) == sorted(index.docs.all_ids())
    got = index.vectors.get_embeddings(lost)
    assert set(got) == set(lost)


def test_second_writer_is_refused_with_the_holder_named(tmp_path: Path, settings: Settings) -> None:
    d = _corpus(tmp_path)
    ingest([d], settings)
    code = (f"import time\nfrom pathlib import Path\nfrom core.lock import write_lock\n"
            f"with write_lock(Path({str(settings.index_path)!r}), 'an ingest'):\n"
            f"    print('held', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(IndexBusyError, match=rf"an ingest is running \(pid {proc.pid}, started"):
            ingest([d], settings)
        h = holder(settings.index_path)
        assert h is not None and h.pid == proc.pid
        # Readers keep working while the writer holds the lock.
        from retrieval.pipeline import retrieve
        from retrieval.state import Plan

        assert retrieve("quarterly budget", settings, k=1, plan=Plan(mode="bm25")).hits
        proc.kill()  # kill -9: the kernel drops the lock with the process
        proc.wait()
        assert holder(settings.index_path) is None
        assert ingest([d], settings).count("unchanged") == 2
    finally:
        proc.kill()
        proc.wait()


def test_another_thread_of_the_same_process_is_refused(tmp_path: Path) -> None:
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with write_lock(tmp_path, "an upload"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(IndexBusyError, match="an upload is running in this process"), \
                write_lock(tmp_path, "an ingest"):
            pass
    finally:
        release.set()
        t.join()
    with write_lock(tmp_path, "an ingest"), write_lock(tmp_path, "a nested rebuild"):  # same thread nests
        pass


def test_cli_ingest_while_another_writer_holds_the_index(tmp_path: Path) -> None:
    d = _corpus(tmp_path)
    idx = tmp_path / "index"
    assert _rag_ingest(d, idx).returncode == 0
    (d / "c.md").write_text("Charlie: volcanoes erupt molten rock.\n")
    code = (f"import time\nfrom pathlib import Path\nfrom core.lock import write_lock\n"
            f"with write_lock(Path({str(idx)!r}), 'an ingest'):\n"
            f"    print('held', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        refused = _rag_ingest(d, idx)
        assert refused.returncode == 1
        assert f"is being written: an ingest is running (pid {proc.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        proc.kill()
        proc.wait()
    s = _state(Index(load_settings(index_dir=idx)))
    assert "volcanoes" not in str(s["records"])  # the refused run wrote nothing
    assert s["vectors"] == s["ids"] == s["keyword"]
    assert _rag_ingest(d, idx).returncode == 0
    assert "volcanoes" in str(_state(Index(load_settings(index_dir=idx)))["records"])


def test_loader_stays_a_few_files_ahead_and_stops_with_the_run(tmp_path: Path, settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    stopped = threading.Event()

    def slow_prepare(path: Path, known: dict[str, str], s: Settings, progress: pipeline.Progress) -> object:
        started.append(path.name)
        if path.name == "f1":
            try:
                while True:  # a long PDF: one progress call per page
                    progress("page", 1)
                    time.sleep(0.01)
            except BaseException:
                stopped.set()
                raise
        return pipeline.Prepared(str(path), "h", 1, "unchanged")

    monkeypatch.setattr(pipeline, "_prepare", slow_prepare)
    files = [tmp_path / f"f{i}" for i in range(50)]
    gen = pipeline._load_ahead(files, {}, settings, None)
    assert isinstance(gen, Generator)  # declared an Iterator; close() below needs the generator
    assert next(gen).path.endswith("f0")
    time.sleep(0.3)
    assert len(started) <= pipeline.PREFETCH + 1  # not all 50 parsed into memory up front
    gen.close()  # the consumer stops (error or Ctrl-C)
    assert stopped.wait(5), "the file being parsed did not stop"
    time.sleep(0.2)
    assert len(started) <= pipeline.PREFETCH + 1  # the pending files were cancelled
