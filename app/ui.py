"""The Streamlit chat UI (`rag ui` runs `streamlit run app/ui.py`).

Top to bottom: settings -> (a `?passage=<chunk id>` link shows that passage's whole
document) -> sidebar (index, backend and model, strategy, reranking stages, top-k, upload)
-> start screen while the index is empty -> chat: history, then a new question streamed
through `retrieval.answer.ask_stream` with the chat history, its citations and the
"How this answer was found" panel."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app import ui_data, ui_ingest, ui_render
from core.errors import RagError
from core.feedback import feedback_path
from core.index import Index
from core.llm import LLM, Message, get_llm
from core.settings import Settings, load_settings
from retrieval.answer import AnswerResult, AskOptions, ask_stream

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
for _noisy in ("chromadb", "httpx", "sentence_transformers", "jieba", "urllib3", "bm25s", "transformers"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

MODES = ["auto", "extractive", "generative"]
MODE_LABELS = {"auto": "auto (extractive for small models)", "extractive": "extractive (quotes the passages)",
               "generative": "generative (the model writes, every sentence checked)"}
STRATEGY_LABELS = {"none": "none (the question as asked)", "multi-query": "multi-query",
                   "fusion": "RAG-Fusion", "decompose": "decompose", "step-back": "step-back", "hyde": "HyDE",
                   "translate": "translate (into the documents' language)", "auto": "auto (the router picks)"}
MAX_K = 20


@dataclass
class Choices:
    strategy: str
    coarse: bool
    ltr: bool
    k: int
    mode: str  # answer.mode: auto | extractive | generative
    settings: Settings  # with the reranking switches and answer mode applied


def strategies() -> list[str]:
    from retrieval.translate import CHOICES

    return list(CHOICES)


@st.cache_resource(ttl=30, show_spinner=False)
def _llm(key: str, _settings: Settings) -> LLM:
    """The backend `auto` resolves to, probed again at most every 30 s (`key` = LLM settings)."""
    return get_llm(_settings)


def llm_for(settings: Settings) -> LLM:
    key = settings.llm.model_dump_json() + settings.ollama_url
    return _llm(key, settings)


def sidebar(settings: Settings, index: Index, status: dict[str, Any]) -> tuple[Choices, LLM | None]:
    sb = st.sidebar
    sb.header("localrag")
    sb.subheader("Index")
    sb.caption(f"`{status['index_dir']}`")
    if status["exists"]:
        sb.markdown(f"collection **{settings.collection}** · {status.get('documents', 0)} documents · "
                    f"{status.get('chunks', 0)} chunks  \n{status.get('embedding_model')} · "
                    f"Chroma {status['vector_store']}")
    else:
        sb.markdown(f"collection **{settings.collection}** · empty")
    if settings.route.collections:
        sb.caption("Routable collections: " + ", ".join(c.name for c in settings.route.collections))
    sb.subheader("Model")
    llm: LLM | None = None
    try:
        llm = llm_for(settings)
        sb.markdown(f"**{llm.backend}** · `{llm.model}`")
        notice = ui_data.backend_notice(llm.backend, llm.reason)
        if notice:
            sb.warning(notice, icon="⚠️")
        else:
            sb.caption(llm.reason)
    except RagError as e:
        sb.error(str(e))
    sb.subheader("Retrieval")
    opts = strategies()
    default = settings.answer.strategy if settings.answer.strategy in opts else opts[0]
    strategy = sb.selectbox("Query strategy", opts, index=opts.index(default), key="strategy",
                            format_func=lambda s: STRATEGY_LABELS.get(s, s))
    coarse = sb.toggle("Coarse rerank (SBERT)", value=settings.search.coarse, key="coarse")
    ltr = sb.toggle("Fine rerank (LightGBM LTR)", value=settings.search.ltr, key="ltr")
    if ltr and not _ranker_exists(settings):
        sb.caption("No trained ranker yet; the LTR stage is skipped. Train one with `rag train-ranker`.")
    k = sb.slider("Passages in the prompt (top-k)", 1, MAX_K,
                  min(max(settings.answer.context_chunks, 1), MAX_K), key="top_k")
    mode = sb.selectbox("Answer mode", MODES, index=MODES.index(settings.answer.mode), key="answer_mode",
                        format_func=lambda m: MODE_LABELS[m])
    with sb.expander("Add documents"):
        if not st.session_state.get(ui_ingest.FRESH_KEY):  # else the main area shows it
            ui_ingest.show_report()
        ui_ingest.upload_panel(settings, index, "sidebar")
    if sb.button("Clear the chat", key="clear"):
        st.session_state["messages"] = []
    search = settings.search.model_copy(update={"coarse": coarse, "ltr": ltr})
    answer_s = settings.answer.model_copy(update={"mode": mode})
    chosen = settings.model_copy(update={"search": search, "answer": answer_s})
    return Choices(strategy, coarse, ltr, k, mode, chosen), llm


def _ranker_exists(settings: Settings) -> bool:
    from retrieval.rerank import BOOSTER_FILE, ranker_path

    return (ranker_path(settings) / BOOSTER_FILE).exists()


def _stream(stream: Iterator[str | AnswerResult]) -> AnswerResult | None:
    """Show the answer as it comes and return its result. The whole text so far is made safe on
    every update (an image or link split across tokens is caught), and the final text is the
    result's: the check may have removed sentences that were streamed."""
    box = st.empty()
    text = ""
    for part in stream:
        if isinstance(part, AnswerResult):
            box.markdown(ui_render.answer_markdown(part))
            return part
        text += part
        box.markdown(ui_render.safe_markdown(text) + " ▌")
    return None


def history_messages(messages: list[dict[str, Any]]) -> list[Message]:
    return [{"role": m["role"], "content": m["content"]} for m in messages
            if m.get("content") and not m.get("error")]


def show_message(m: dict[str, Any], index: Index, settings: Settings) -> None:
    with st.chat_message(m["role"]):
        if m.get("error"):
            st.error(m["error"])
            return
        st.markdown(ui_render.safe_markdown(m["content"]))
        if m.get("result") is not None:
            ui_render.answer_extras(m["result"], m["id"], index, feedback_path(settings))


def answer(question: str, choices: Choices, index: Index, llm: LLM | None,
           messages: list[dict[str, Any]]) -> None:
    history = history_messages(messages)
    messages.append({"id": uuid.uuid4().hex[:12], "role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(question)
    msg: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "role": "assistant", "content": "", "result": None}
    with st.chat_message("assistant"):
        got: AnswerResult | None = None
        try:
            opts = AskOptions(history=history or None, strategy=choices.strategy, k=choices.k)
            got = _stream(ask_stream(question, choices.settings, opts, index=index, llm=llm))
        except RagError as e:
            msg["error"] = str(e)
            st.error(msg["error"])
        if got is not None:
            msg["result"], msg["content"] = got, got.answer
            ui_render.answer_extras(got, msg["id"], index, feedback_path(choices.settings))
    messages.append(msg)


def main() -> None:
    st.set_page_config(page_title="localrag", page_icon="📚", layout="wide")
    try:
        settings = load_settings()
    except Exception as e:  # a broken rag.toml: say which and why
        st.error(f"Could not read the settings (rag.toml / RAG_* variables): {e}")
        return
    index = Index(settings)
    passage = st.query_params.get("passage")
    if passage:
        ui_render.document_page(index, passage)
        return
    try:
        index.check_compatible()
        status = index.status()
    except RagError as e:
        st.error(str(e))
        return
    job = ui_ingest.ingest_status(settings)  # before the sidebar: a finished ingest's report is fresh
    choices, llm = sidebar(settings, index, status)
    if job is not None:
        ui_ingest.progress_panel(job)
    if not status["exists"] or not status.get("chunks"):
        ui_ingest.start_screen(settings, index)
        return
    if st.session_state.pop(ui_ingest.FRESH_KEY, False):  # documents were just added: say how it went
        ui_ingest.show_report()
    messages: list[dict[str, Any]] = st.session_state.setdefault("messages", [])
    if not messages:
        st.title("Ask your documents")
        st.caption(f"{status.get('documents', 0)} documents in `{status['index_dir']}`. Answers cite their "
                   "sources; open a citation to see the passage in its document.")
    for m in messages:
        show_message(m, index, settings)
    question = st.chat_input("Ask a question about your documents", disabled=llm is None)
    if question and question.strip():
        answer(question.strip(), choices, index, llm, messages)


main()
