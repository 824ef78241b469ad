"""Adding documents from the chat UI: upload (accepted formats only, size-limited, saved
under `<index_dir>/uploads/`) or the sample corpus, ingested into the current index in a
background job (`app.ingest_worker`: a click stops the script thread, not the ingest) with
a progress bar that refreshes itself, then the same per-file report `rag ingest` prints."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import ingest_worker
from app.ingest_worker import JobSnapshot
from app.uploads import Upload, accepted_types, save_uploads
from core.index import Index
from core.lock import holder
from core.settings import Settings

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"
REPORT_KEY = "ingest_report"
ROUND_KEY = "upload_round"
FRESH_KEY = "ingest_report_fresh"  # the report has not been shown in the main area yet
JOB_KEY = "ingest_job"  # id of the background job whose report this session will show
REFRESH_S = 1.0  # the progress bar redraws itself this often while a job runs


def _report(failures: list[str], warnings: list[str], summary: str) -> None:
    st.session_state[REPORT_KEY] = {"failures": failures, "warnings": warnings, "summary": summary}
    st.session_state[FRESH_KEY] = True


def busy_reason(settings: Settings) -> str | None:
    """Why nothing can be ingested now: a job of this process, or another writer (`rag ingest`
    in a terminal) holding the index's lock; None when the index is free."""
    if ingest_worker.running(settings.index_path) is not None:
        return "an ingest is running"
    h = holder(settings.index_path)
    return h.describe() if h is not None else None


def run_ingest(paths: list[Path], settings: Settings, refused: list[str]) -> None:
    """Start ingesting `paths` in the background; the session keeps the job's id, and the run
    that finds it finished shows its report (refused uploads first)."""
    job, _started = ingest_worker.start(paths, settings, refused)  # or the one already running
    st.session_state[JOB_KEY] = job.id
    st.session_state.pop(REPORT_KEY, None)  # the last report is stale now
    st.session_state.pop(FRESH_KEY, None)


def ingest_status(settings: Settings) -> JobSnapshot | None:
    """Once per script run, before the sidebar: the running job for this index (from any
    session), or None. A finished job this session started or watched has its report moved
    into the session, for `show_report`."""
    job = ingest_worker.running(settings.index_path)
    if job is not None:
        st.session_state[JOB_KEY] = job.id
        return job.snapshot()
    jid = st.session_state.get(JOB_KEY)
    if jid is None:
        return None
    found = ingest_worker.get(jid)
    snap = found.snapshot() if found is not None else None
    if snap is None or not snap.running:
        st.session_state.pop(JOB_KEY, None)
    if snap is not None and not snap.running:
        _report(list(snap.failures), list(snap.warnings), snap.summary)
    return None


def progress_panel(snap: JobSnapshot) -> None:
    """The running job's progress bar, redrawn every REFRESH_S seconds without rerunning the
    app; once the job has finished, the whole app reruns (report, chat, enabled buttons)."""
    _progress(snap.id)


@st.fragment(run_every=REFRESH_S)
def _progress(job_id: str) -> None:
    job = ingest_worker.get(job_id)
    snap = job.snapshot() if job is not None else None
    if snap is None or not snap.running:
        st.rerun()
        return
    names = ", ".join(p.name for p in snap.paths[:3]) + (" …" if len(snap.paths) > 3 else "")
    st.progress(snap.fraction, text=f"Ingesting {names}: {snap.text()}")


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


def _busy_help(busy: str | None) -> str | None:
    return f"{busy[0].upper()}{busy[1:]}; wait until it has finished." if busy else None


def upload_panel(settings: Settings, index: Index, where: str) -> None:
    """The uploader and its "Ingest" button (disabled while the index is being written);
    after ingesting, the uploader is emptied."""
    types = accepted_types(settings)
    rnd = st.session_state.setdefault(ROUND_KEY, 0)
    busy = busy_reason(settings)
    files = st.file_uploader(
        "Upload documents",
        type=types,
        accept_multiple_files=True,
        key=f"upload-{where}-{rnd}",
        help=f"{', '.join(types)}; up to {settings.ui.max_upload_mb:g} MB each. Saved under "
        f"{settings.index_path / 'uploads'} and indexed there.",
    )
    if files and busy:
        st.caption(_busy_help(busy) or "")
    if files and st.button(
        f"Ingest {len(files)} file{'s' if len(files) > 1 else ''}",
        key=f"ingest-{where}",
        type="primary",
        disabled=busy is not None,
        help=_busy_help(busy),
    ):
        if ingest_worker.running(settings.index_path) is not None:  # started since this page was drawn
            _report(
                ["Not ingested: an ingest is running; upload the files again when it has finished."], [], ""
            )
            st.rerun()
        saved = save_uploads([Upload(f.name, f.getvalue()) for f in files], settings)
        run_ingest(saved.paths, settings, saved.errors)
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
        busy = busy_reason(settings)
        if st.button(
            "Ingest the sample corpus", key="ingest-sample", disabled=busy is not None, help=_busy_help(busy)
        ):
            run_ingest([SAMPLE_DIR], settings, [])
            st.rerun()
