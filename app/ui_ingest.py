"""Adding documents from the chat UI: upload (accepted formats only, size-limited, saved
under `<index_dir>/uploads/`) or the sample corpus, ingested into the current index with a
progress bar and the same per-file report `rag ingest` prints."""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from app.uploads import Upload, accepted_types, report_lines, save_uploads
from core.errors import RagError
from core.index import Index
from core.settings import Settings

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"
REPORT_KEY = "ingest_report"
ROUND_KEY = "upload_round"
FRESH_KEY = "ingest_report_fresh"  # the report has not been shown in the main area yet


def _progress_callback(bar: object) -> object:
    """An ingest progress callback drawing on `bar`; events from the loader thread (PDF pages)
    are counted but not drawn (Streamlit draws from the script thread only)."""
    me = threading.current_thread()
    n = {"files_total": 0, "file": 0, "chunks_total": 0, "chunks": 0}

    def cb(event: str, amount: int) -> None:
        if event not in n:
            return
        n[event] += amount
        if threading.current_thread() is not me:
            return
        frac = n["file"] / n["files_total"] if n["files_total"] else 0.0
        bar.progress(min(frac, 1.0),  # type: ignore[attr-defined]
                     text=f"files {n['file']}/{n['files_total']} · chunks {n['chunks']}/{n['chunks_total']}")

    return cb


def run_ingest(paths: list[Path], settings: Settings, index: Index, refused: list[str]) -> None:
    """Ingest `paths`, keeping the report (refused uploads first) for the next run to show."""
    from ingest.pipeline import ingest

    bar = st.progress(0.0, text="Reading files…")
    failures = [f"failed {e}" for e in refused]
    warnings: list[str] = []
    summary = ""
    try:
        if paths:
            report = ingest(paths, settings, progress=_progress_callback(bar), index=index)  # type: ignore[arg-type]
            f2, warnings, summary = report_lines(report, settings)
            failures += f2
        else:
            summary = "nothing to ingest"
    except RagError as e:
        failures.append(f"failed {e}")
    bar.progress(1.0, text="done")
    st.session_state[REPORT_KEY] = {"failures": failures, "warnings": warnings, "summary": summary}
    st.session_state[FRESH_KEY] = True


def show_report() -> None:
    rep = st.session_state.get(REPORT_KEY)
    if not rep:
        return
    for line in rep["failures"]:
        st.error(line)
    for line in rep["warnings"]:
        st.warning(line)
    if rep["summary"]:
        (st.warning if rep["failures"] else st.success)(rep["summary"])


def upload_panel(settings: Settings, index: Index, where: str) -> None:
    """The uploader and its "Ingest" button; after ingesting, the uploader is emptied."""
    types = accepted_types(settings)
    rnd = st.session_state.setdefault(ROUND_KEY, 0)
    files = st.file_uploader(
        "Upload documents", type=types, accept_multiple_files=True, key=f"upload-{where}-{rnd}",
        help=f"{', '.join(types)}; up to {settings.ui.max_upload_mb:g} MB each. Saved under "
             f"{settings.index_path / 'uploads'} and indexed there.",
    )
    if files and st.button(f"Ingest {len(files)} file{'s' if len(files) > 1 else ''}", key=f"ingest-{where}",
                           type="primary"):
        saved = save_uploads([Upload(f.name, f.getvalue()) for f in files], settings)
        run_ingest(saved.paths, settings, index, saved.errors)
        st.session_state[ROUND_KEY] = rnd + 1
        st.rerun()


def start_screen(settings: Settings, index: Index) -> None:
    """Shown instead of the chat while the index holds no documents."""
    st.title("Ask your documents")
    st.markdown(
        f"The index at `{settings.index_path}` holds no documents yet. Add some to start asking questions: "
        "upload files here, ingest the sample corpus, or run `rag ingest PATH` in a terminal."
    )
    show_report()
    upload_panel(settings, index, "start")
    if SAMPLE_DIR.is_dir():
        names = ", ".join(sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_file()))
        st.markdown(f"**Or try the sample corpus** ({names}): a few short documents about coffee and tea.")
        if st.button("Ingest the sample corpus", key="ingest-sample"):
            run_ingest([SAMPLE_DIR], settings, index, [])
            st.rerun()
