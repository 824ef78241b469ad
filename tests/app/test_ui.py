"""The Streamlit chat UI through `streamlit.testing.v1.AppTest`: the real app script, real
index (MiniLM, Chroma, BM25) and, for chat, the embedded SmolLM2 through `auto` with Ollama
unreachable. Assertions are about structure and provenance, never the model's wording."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from app.cmd_ui import streamlit_command
from core.errors import ConfigError
from core.feedback import feedback_path, feedback_qrels, load_feedback
from core.index import Index
from core.settings import load_settings
from ingest.pipeline import ingest
from retrieval.answer import AnswerResult
from tests.conftest import REPO
from tests.files import write_docs
from tests.ollama_server import free_port

UI = str(REPO / "app" / "ui.py")
TIMEOUT = 900  # seconds per AppTest run: the embedded model on a busy CPU is slow
DOCS = {
    "transformers.md": (
        "# Transformers\n\nA transformer is a neural network architecture built on self-attention. "
        "Each layer lets every token attend to every other token.\n\n## Training\n\n"
        "Transformers are trained with gradient descent on large text corpora. The training objective "
        "is to predict the next token, and the learning rate is warmed up and then decayed.\n"
    ),
    "sourdough.md": (
        "# Sourdough bread\n\nSourdough is leavened with a starter of wild yeast and lactic acid bacteria. "
        "Bulk fermentation takes four to six hours at 24 degrees Celsius.\n\n## Baking\n\n"
        "Bake the loaf in a preheated Dutch oven at 250 degrees for twenty minutes with the lid on.\n"
    ),
    "bicycles.md": (
        "# Bicycle maintenance\n\nLubricate the chain every 300 kilometres and wipe off the excess oil. "
        "Check the tyre pressure weekly; road tyres need about 6 bar.\n"
    ),
}
QUESTION = "How are transformers trained?"
FOLLOW_UP = "And what happens to the learning rate?"
ENV: dict[str, str] = {}  # the UI's environment for the shared corpus (filled by `corpus`)


def _env(mp: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for k in list(os.environ):
        if k.startswith("RAG_"):
            mp.delenv(k)
    for k, v in env.items():
        mp.setenv(k, v)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui")
    docs = write_docs(root / "docs", DOCS)
    index_dir = root / "index"
    ENV.update({"RAG_INDEX_DIR": str(index_dir), "RAG_LLM__MAX_TOKENS": "48", "RAG_LLM__TEMPERATURE": "0",
                "RAG_OLLAMA_URL": f"http://127.0.0.1:{free_port()}"})  # nothing listens: `auto` -> embedded
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, ENV)
        report = ingest([docs], load_settings())
    assert not report.failed
    return index_dir


@pytest.fixture
def use_corpus(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _env(monkeypatch, ENV)
    return corpus


def _app() -> AppTest:
    at = AppTest.from_file(UI, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _els(node: Any, kind: str) -> list[Any]:
    """Elements of one kind under `node` (AppTest has no typed accessor for some kinds)."""
    return list(node.get(kind))


def _texts(at: AppTest | Block, kind: str) -> list[str]:
    return [str(e.value) for e in _els(at, kind)]


def _finish_ingest(at: AppTest) -> None:
    """Wait for the background ingest the last run started, then run the app again, as the
    progress bar's fragment does in a browser once the job has finished."""
    from app import ingest_worker

    job = ingest_worker.current(load_settings().index_path)
    assert job is not None, "no ingest was started"
    assert job.wait(TIMEOUT)
    at.run()
    assert not at.exception, at.exception


@pytest.fixture(scope="module")
def conversation(corpus: Path) -> AppTest:
    """One chat, asked once for the module: a question with top-k 2 and both reranking stages
    off (set in the sidebar), then a follow-up."""
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, ENV)
        at = _app()
        at.slider(key="top_k").set_value(2)
        at.toggle(key="coarse").set_value(False)
        at.toggle(key="ltr").set_value(False)
        at.chat_input[0].set_value(QUESTION).run()
        assert not at.exception, at.exception
        at.selectbox(key="answer_mode").set_value("generative")  # the follow-up is written by the model
        at.chat_input[0].set_value(FOLLOW_UP).run()
        assert not at.exception, at.exception
    return at


def _results(at: AppTest) -> list[AnswerResult]:
    return [m["result"] for m in at.session_state["messages"] if m.get("result") is not None]


# --- no generation -----------------------------------------------------------------------

def test_empty_index_shows_start_screen_then_sample_corpus_opens_the_chat() -> None:
    at = _app()
    assert any("holds no documents yet" in t for t in _texts(at, "markdown"))
    assert not at.chat_input and not at.error  # a start screen, not an error
    assert at.file_uploader(key="upload-start-0") is not None
    at.button(key="ingest-sample").click().run()
    assert not at.exception, at.exception
    _finish_ingest(at)
    assert len(at.chat_input) == 1
    assert any("3 added" in s for s in _texts(at, "success"))
    assert any("3 documents" in t for t in _texts(at, "markdown"))
    assert Index(load_settings()).status()["documents"] == 3


def test_sample_ingest_runs_in_the_background_and_a_later_run_shows_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The click's script run returns while the ingest goes on (a gate inside `ingest()` holds
    it); meanwhile the page shows its progress and the ingest buttons are disabled."""
    import threading

    import ingest.pipeline as pipeline
    from app import ingest_worker

    gate, threads, real = threading.Event(), [], pipeline.ingest

    def gated(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        gate.wait(60)  # on a script-thread ingest this only delays the run; the asserts fail
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "ingest", gated)
    settings = load_settings()
    at = _app()
    try:
        at.button(key="ingest-sample").click().run()
        assert not at.exception, at.exception
        job = ingest_worker.running(settings.index_path)
        assert job is not None and at.session_state["ingest_job"] == job.id
        bars = _els(at, "progress")
        assert len(bars) == 1 and "Ingesting sample" in str(bars[0].proto.text)
        sample = at.button(key="ingest-sample")
        assert sample.disabled and "an ingest is running" in str(sample.help).lower()
        assert not at.success and not at.chat_input
    finally:
        gate.set()
    _finish_ingest(at)
    assert threads and threads[0] is not threading.main_thread() and threads[0].daemon
    assert [s for s in _texts(at, "success") if "3 added, 0 changed" in s]
    assert len(at.chat_input) == 1 and not _els(at, "progress")
    assert "ingest_job" not in at.session_state
    at.run()  # the report is shown once in the main area, then stays in the sidebar
    assert not [s for s in _texts(at.main, "success") if "3 added" in s]


def test_sidebar_shows_index_backend_and_the_settings_defaults(use_corpus: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_ANSWER__STRATEGY", "hyde")
    monkeypatch.setenv("RAG_SEARCH__LTR", "false")
    monkeypatch.setenv("RAG_ANSWER__CONTEXT_CHUNKS", "4")
    at = _app()
    side = " ".join(str(e.value) for e in _els(at.sidebar, "markdown") + _els(at.sidebar, "caption"))
    assert str(use_corpus) in side and "3 documents" in side and "all-MiniLM-L6-v2" in side
    assert "**llamacpp**" in side and "SmolLM2" in side
    notice = " ".join(str(w.value) for w in at.sidebar.warning)
    assert "the embedded model answers" in notice and ENV["RAG_OLLAMA_URL"] in notice
    sel = at.selectbox(key="strategy")
    assert sel.value == "hyde"
    assert sel.options == ["none (the question as asked)", "multi-query", "RAG-Fusion", "decompose",
                           "step-back", "HyDE", "translate (into the documents' language)",
                           "auto (the router picks)"]
    assert at.toggle(key="coarse").value is True and at.toggle(key="ltr").value is False
    assert at.slider(key="top_k").value == 4
    assert len(at.chat_input) == 1


def test_citation_link_opens_the_whole_document_highlighted(use_corpus: Path) -> None:
    index = Index(load_settings())
    rec = next(r for r in index.docs.iter_records(("chunk",)) if r.title.endswith("Training"))
    doc = index.docs.file_text(rec.source)
    assert doc is not None
    at = AppTest.from_file(UI, default_timeout=TIMEOUT)
    at.query_params["passage"] = rec.id
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["transformers.md"]
    body = _texts(at, "html")[0]
    assert f">{html.escape(rec.text)}</mark>" in body
    assert html.escape(doc[: rec.start]) in body and html.escape(doc[rec.end:]) in body  # the whole text
    at.query_params["passage"] = "no-such-chunk"
    at.run()
    assert any("No passage 'no-such-chunk'" in e for e in _texts(at, "error"))


def test_upload_errors_are_reported_like_the_cli_and_names_stay_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAG_UI__MAX_UPLOAD_MB", "0.01")
    settings = load_settings()
    at = _app()
    up = at.file_uploader(key="upload-start-0")
    assert sorted(up.allowed_type) == sorted({e.lower() for e in settings.ingest.extensions})
    up.set_value([
        ("../../outside.md", b"# Kettles\n\nA gooseneck kettle pours a steady stream.\n", "text/markdown"),
        ("big.txt", b"tea " * 5000, "text/plain"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "application/pdf"),
        ("empty.txt", b"", "text/plain"),
    ])
    at.run()
    at.button(key="ingest-start").click().run()
    assert not at.exception, at.exception
    _finish_ingest(at)
    errors = _texts(at, "error")
    assert any(e.startswith("failed big.txt is 0.02 MB, over the 0.01 MB upload limit") for e in errors)
    assert any("broken.pdf" in e for e in errors) and any("empty.txt" in e for e in errors)
    summary = " ".join(_texts(at, "warning"))
    assert "1 added" in summary and "2 failed" in summary and str(settings.index_path) in summary
    uploads = settings.index_path / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["broken.pdf", "empty.txt", "outside.md"]
    written = [p for p in tmp_path.rglob("*") if p.name in ("outside.md", "big.txt")]
    assert written == [uploads / "outside.md"]
    status = Index(settings).status()
    assert status["documents"] == 1 and len(at.chat_input) == 1  # the chat opens on what was indexed
    # the same per-file report as `rag ingest` on the same files
    from typer.testing import CliRunner

    from app.cli import _register, app

    _register()
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "cli_index"))
    monkeypatch.chdir(uploads)  # the CLI names files relative to the working folder, the UI to uploads/
    cli = CliRunner().invoke(app, ["ingest", "--no-progress", str(uploads)])
    assert cli.exit_code == 1
    cli_failed = sorted(line for line in cli.output.splitlines() if line.startswith("failed "))
    ui_failed = sorted(e for e in errors if "upload limit" not in e)
    assert cli_failed == ui_failed and len(ui_failed) == 2


def test_rag_ui_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_UI__PORT", "8765")
    monkeypatch.setenv("RAG_UI__MAX_UPLOAD_MB", "2.5")
    cmd = streamlit_command(load_settings())
    assert cmd[1:5] == ["-m", "streamlit", "run", UI]
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1" and opts["--server.port"] == "8765"
    assert opts["--server.headless"] == "true" and opts["--browser.gatherUsageStats"] == "false"
    assert opts["--server.maxUploadSize"] == "3"
    other = streamlit_command(load_settings(), port=9000)
    assert other[other.index("--server.port") + 1] == "9000"
    with pytest.raises(ConfigError, match="not a TCP port"):
        streamlit_command(load_settings(), port=70000)


# --- with the embedded LLM ------------------------------------------------------------------

@pytest.mark.slow
def test_a_refusal_shows_the_closest_passages_not_as_sources(use_corpus: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_ANSWER__MIN_SCORE", "1.01")  # no support reaches it: a refusal
    at = _app()
    at.chat_input[0].set_value(QUESTION).run()
    assert not at.exception, at.exception
    res = _results(at)[-1]
    assert res.abstained and res.abstain_reason == "no_support" and not res.citations
    reply = at.chat_message[-1]
    texts = [m.value for m in reply.markdown]
    assert "**Closest passages** (none of them supports an answer)" in texts and "**Sources**" not in texts
    labels = [e.label for e in reply.expander]
    top = res.closest()[0]
    assert Path(top.source).name == "transformers.md"
    assert f"[1] transformers.md · {top.title}" in labels


@pytest.mark.slow
def test_a_weakly_supported_answer_is_shown_with_its_note(use_corpus: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # under min_score, over the rule's hedge floor: the answer and its sources, and a warning
    monkeypatch.setenv("RAG_ANSWER__ABSTAIN__SAME__MIN_SCORE", "1.01")
    monkeypatch.setenv("RAG_ANSWER__ABSTAIN__SAME__HEDGE_SCORE", "0.1")
    at = _app()
    at.chat_input[0].set_value(QUESTION).run()
    assert not at.exception, at.exception
    res = _results(at)[-1]
    assert res.hedged and not res.abstained and res.citations
    reply = at.chat_message[-1]
    assert [w.value for w in reply.warning] == [res.note] and res.note.startswith("Weak support")
    assert "**Sources**" in [m.value for m in reply.markdown]


@pytest.mark.slow
def test_chat_answers_with_numbered_citations_and_the_sidebar_choices(conversation: AppTest) -> None:
    at = conversation
    first = _results(at)[0]
    assert first.question == QUESTION and not first.abstained and first.answer.strip()
    msgs = at.chat_message
    assert [m.name for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[1].markdown[0].value == first.answer  # the streamed text is what the message shows
    # the sidebar's choices reached the pipeline: top-k 2, no reranking stages
    assert len(first.hits) <= 2 and first.strategy == "none"
    assert not [t for t in first.trace if t.stage in ("coarse", "ltr")]
    assert first.citations, "the answer cites nothing"
    labels = [e.label for e in msgs[1].expander]
    for c in first.citations:
        assert f"[{c.n}] {Path(c.source).name} · {c.title}" in labels
        assert c.chunk_id in {h.record.id for h in first.hits}
    bodies = [h.value for h in _els(msgs[1], "html")]
    c = first.citations[0]
    assert any(f">{html.escape(c.text)}</mark>" in b for b in bodies)  # the cited span, highlighted
    links = " ".join(m.value for m in msgs[1].markdown)
    assert f'href="?passage={c.chunk_id}"' in links and f"`{c.source}`" in links
    assert len(_els(msgs[1], "feedback")) == len(first.citations)
    panel = next(e for e in msgs[1].expander if e.label == "How this answer was found")
    text = " ".join(m.value for m in panel.markdown)
    assert "strategy: **none**" in text and "Queries searched" in text and "Timings per stage" in text
    assert len(panel.dataframe) >= 2
    # answer.mode auto: the embedded model is small, so the answer is composed from the passages
    assert first.mode == "extractive"
    assert {"embed", "dense", "bm25", "fuse", "compose"} <= set(first.timings)


@pytest.mark.slow
def test_follow_up_uses_the_chat_history(conversation: AppTest) -> None:
    first, second = _results(conversation)
    assert second.question == FOLLOW_UP
    assert second.mode == "generative"  # the sidebar's answer mode reached the pipeline
    condense = [t for t in second.trace if t.stage == "condense"]
    assert condense, "the follow-up was not given the history"
    assert second.standalone_question != FOLLOW_UP
    assert not [t for t in first.trace if t.stage == "condense"]  # the first question had no history
    panel = next(e for e in conversation.chat_message[3].expander if e.label == "How this answer was found")
    assert "follow-up rewritten with the chat history" in panel.markdown[0].value


@pytest.mark.slow
def test_thumbs_on_sources_are_stored_as_labelled_pairs(conversation: AppTest, use_corpus: Path) -> None:
    at = conversation
    first = _results(at)[0]
    path = feedback_path(load_settings())
    c = first.citations[0]
    fb = _els(at.chat_message[1], "feedback")[0]
    fb.set_value(1).run()
    assert not at.exception, at.exception
    line: dict[str, Any] = json.loads(path.read_text().splitlines()[-1])
    got = (line["query"], line["chunk_id"], line["label"], line["source"])
    assert got == (QUESTION, c.chunk_id, 1, c.source)
    _els(at.chat_message[1], "feedback")[0].set_value(0).run()
    assert feedback_qrels(path) == {QUESTION: {c.chunk_id: 0}}
    _els(at.chat_message[1], "feedback")[0].set_value(None).run()
    assert load_feedback(path) == []
    assert len(path.read_text().splitlines()) == 3
    # a vote on the follow-up's source is keyed by the standalone question retrieval searched
    second = _results(at)[1]
    if second.citations:
        _els(at.chat_message[3], "feedback")[0].set_value(1).run()
        assert feedback_qrels(path) == {second.standalone_question: {second.citations[0].chunk_id: 1}}
