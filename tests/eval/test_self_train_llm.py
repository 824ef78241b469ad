"""The self-trained ranker also learns from questions a capable LLM writes about chunks
(`search.ltr_llm_questions`): asked through the real `ollama` client of a test server that
speaks Ollama's API, whose scripted replies are questions made from the passage shown. A small
model is not asked, a server that is down is asked once and the ranker trains without them,
and the replies are cached in the index so a retrain asks nothing again."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cmd_index import _ranker_status
from core.index import Index
from core.settings import Settings, load_settings
from eval import self_train as st
from eval import synthetic
from ingest.pipeline import ingest
from tests.conftest import REPO, SAMPLE
from tests.ollama_server import OllamaTestServer

NOTES = REPO / "tests" / "data" / "llm-notes-zh"
CAPABLE = "llama3.1:8b"  # a name core.llm.too_small lets write
SMALL = "smollm2:135m"  # "135m" is in answer.small_models
DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port
N = 5


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ingested index for the module (no LLM: the default settings find no Ollama and
    summarise extractively), copied for each test since training writes beside it."""
    root = tmp_path_factory.mktemp("built")
    docs = root / "docs"
    shutil.copytree(SAMPLE, docs)
    for f in NOTES.iterdir():
        shutil.copy(f, docs / f.name)
    with pytest.MonkeyPatch.context() as mp:  # as the `isolated` fixture, which runs after this one
        for k in [k for k in os.environ if k.startswith("RAG_")]:
            mp.delenv(k)
        mp.chdir(root)
        mp.setenv("RAG_OLLAMA_URL", DOWN)
        mp.setenv("RAG_INDEX_DIR", str(root / "index"))
        report = ingest([docs], load_settings())
    assert not report.failed
    return root / "index"


@pytest.fixture
def index_dir(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "index"  # the `isolated` fixture's RAG_INDEX_DIR
    shutil.copytree(built, dest)
    return dest


class Writer:
    """A scripted capable model: asked about a passage, it asks how its two longest English
    words relate (or what its first Chinese words are), and remembers which passage each
    question came from."""

    def __init__(self) -> None:
        self.passage_of: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        passage = str(messages[-1]["content"])
        words = sorted(dict.fromkeys(re.findall(r"[A-Za-z]{5,}", passage)), key=lambda w: (-len(w), w))
        if len(words) >= 2:
            q = f"How are {words[0]} and {words[1]} related?"
        else:
            q = "".join(re.findall(r"[\u4e00-\u9fff]", passage)[:6]) + "是什么？"
        with self.lock:
            self.passage_of[q] = passage
        return q


@pytest.fixture
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[CAPABLE, SMALL], reply=Writer()) as srv:
        yield srv


def _settings(url: str, model: str = CAPABLE, **search: Any) -> Settings:
    return load_settings(
        ollama_url=url, llm={"provider": "ollama", "model": model},
        search={"ltr_llm_questions": N, "ltr_self_queries": 60, "ltr_min_gain": -1.0, **search},
    )


def _chats(srv: OllamaTestServer) -> int:
    return sum(r["path"] == "/api/chat" for r in srv.requests)


def test_a_capable_llm_writes_questions_about_the_chunks_it_was_shown(
    index_dir: Path, server: OllamaTestServer
) -> None:
    s = _settings(server.url)
    index = Index(s)
    stages: list[tuple[str, int, int]] = []
    res = st.self_train(index, s, lambda stage, done, total: stages.append((stage, done, total)))
    asked = _chats(server)
    assert res.trained and 1 <= asked <= N
    assert res.by_kind.get("llm", 0) >= 1 and res.by_kind.get("crop", 0) >= 1
    assert res.queries == sum(res.by_kind.values())
    info = res.llm_questions
    assert info["state"] == "asked" and info["requests"] == asked and info["kept"] == res.by_kind["llm"]
    assert "written by the LLM" in res.line()
    questions = [x for x in stages if x[0] == "questions"]
    assert questions and questions[-1][1] == questions[-1][2] == info["asked"]
    # the report, and `rag status --json`, say what the ranker learned from
    status = _ranker_status(s, index)
    assert status["pseudo_queries"]["llm"] == res.by_kind["llm"]
    assert status["llm_questions"].startswith(f"{info['kept']} of {info['asked']} kept")
    # the gate measured them apart too (held out like the others; too few here to decide by)
    import json

    from retrieval.rerank import MANIFEST_FILE, ranker_path
    report = json.loads((ranker_path(s) / MANIFEST_FILE).read_text())["report"]
    sub = report["heldout_ndcg@10_llm"]
    assert 1 <= sub["queries"] <= res.by_kind["llm"] and 0.0 <= sub["with_ranker"] <= 1.0

    # each question names as relevant the chunk whose text the prompt showed
    writer = server.reply
    assert isinstance(writer, Writer)
    again = st.llm_questions(index, s, st.chunks_by_source(index), set())
    assert _chats(server) == asked  # a retrain asks nothing again: the replies are cached
    assert again.state == "asked" and again.requests == 0 and len(again.queries) == info["kept"]
    recs = index.docs.get([i for q in again.queries for i in q.relevant])
    for q in again.queries:
        assert q.how == "llm" and q.qid.startswith("q") and len(q.relevant) == 1
        (cid, grade), = q.relevant.items()
        assert grade == 2 and recs[cid].kind == "chunk"
        assert writer.passage_of[q.text] == recs[cid].text[: synthetic.PASSAGE_CHARS]


def test_a_small_model_is_not_asked(index_dir: Path, server: OllamaTestServer) -> None:
    s = _settings(server.url, model=SMALL)
    res = st.self_train(Index(s), s)
    assert res.trained and "llm" not in res.by_kind
    assert _chats(server) == 0
    assert res.llm_questions["state"] == "skipped" and "too small" in res.llm_questions["note"]
    # nor the embedded model `auto` falls back to when no Ollama answers
    llm, why = st.question_llm(load_settings(ollama_url=DOWN, search={"ltr_llm_questions": N}))
    assert llm is None and "embedded llama.cpp model" in why


def test_an_unreachable_ollama_is_not_asked_and_the_ranker_trains_without_it(
    index_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = _settings(DOWN)
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="eval.self_train"):
        asked = st.llm_questions(Index(s), s, st.chunks_by_source(Index(s)), set())
    assert time.perf_counter() - t0 < 10
    assert asked.state == "failed" and asked.requests == 0 and asked.queries == []
    assert asked.note.startswith("skipped") and "not reachable at http://127.0.0.1:9" in asked.note
    warnings = [r for r in caplog.records if r.name == "eval.self_train"]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert "other pseudo-queries" in warnings[0].getMessage()

    res = st.self_train(Index(s), s)
    assert res.trained and "llm" not in res.by_kind and res.by_kind.get("crop", 0) >= 1
    assert res.llm_questions["state"] == "failed" and "LLM questions skipped" in res.line()
    assert "not reachable" in _ranker_status(s, Index(s))["llm_questions"]


def test_a_model_the_server_lacks_is_not_asked(index_dir: Path, server: OllamaTestServer) -> None:
    s = _settings(server.url, model="qwen2.5:7b")
    asked = st.llm_questions(Index(s), s, st.chunks_by_source(Index(s)), set())
    assert asked.state == "failed" and _chats(server) == 0 and "no model 'qwen2.5:7b'" in asked.note
    assert "ollama pull qwen2.5:7b" in asked.note


def test_a_server_that_never_answers_holds_the_ingest_for_the_probe_only(index_dir: Path) -> None:
    """An Ollama that accepts connections and never answers (a machine going down, a proxy):
    its /api/tags is given core.llm.PROBE_TIMEOUT_S, not the 120 s a question may take."""
    with OllamaTestServer(models=[CAPABLE], hang={"/api/tags", "/api/chat"}) as srv:
        s = _settings(srv.url)
        t0 = time.perf_counter()
        asked = st.llm_questions(Index(s), s, st.chunks_by_source(Index(s)), set())
        assert time.perf_counter() - t0 < 10
        assert asked.state == "failed" and asked.requests == 0 and "did not answer" in asked.note


def test_zero_llm_questions_is_off(index_dir: Path, server: OllamaTestServer) -> None:
    s = _settings(server.url, ltr_llm_questions=0)
    asked = st.llm_questions(Index(s), s, st.chunks_by_source(Index(s)), set())
    assert asked.state == "off" and "ltr_llm_questions = 0" in asked.note and asked.queries == []
    assert _chats(server) == 0


def test_the_questions_are_asked_within_a_time_budget_the_rest_at_a_later_retrain(index_dir: Path) -> None:
    """A slow model (0.5 s a question here; seconds on a CPU-only Ollama) is asked only as many
    questions as the first reply's time says fit in search.ltr_llm_budget_s; the replies are
    cached, so the next asking goes on with the rest."""
    writer = Writer()

    def slow(messages: list[dict[str, Any]]) -> str:
        time.sleep(0.5)
        return writer(messages)

    with OllamaTestServer(models=[CAPABLE], reply=slow) as srv:
        s = _settings(srv.url, ltr_llm_budget_s=0.8)
        index = Index(s)
        first = st.llm_questions(index, s, st.chunks_by_source(index), set())
        assert first.requests == 1 and first.over_budget == N - 1 and first.state == "asked"
        assert f"{N - 1} left for a later retrain" in first.note
        again = st.llm_questions(index, s, st.chunks_by_source(index), set())
        assert again.requests == 1 and again.over_budget == N - 2  # one from the cache, one more asked
        assert _chats(srv) == 2


def test_the_budget_counts_the_first_reply_and_the_concurrency() -> None:
    assert st.budgeted(1.0, 30.0, 1, 40) == 30  # 29 more in the 29 s left, one at a time
    assert st.budgeted(1.0, 30.0, 2, 100) == 59  # two at a time
    assert st.budgeted(0.1, 30.0, 2, 40) == 40  # all fit
    assert st.budgeted(40.0, 30.0, 4, 40) == 1  # the first alone took the budget


def test_question_chunks_spread_over_documents_and_leave_the_cut_queries_alone(index_dir: Path) -> None:
    s = _settings(DOWN)
    by_source = st.chunks_by_source(Index(s))
    picked = st.question_chunks(by_source, len(by_source), seed=0)
    assert len({r.source for r in picked}) == len(picked) == len(by_source)  # one per document first
    assert [r.id for r in st.question_chunks(by_source, 8, seed=0)] == \
        [r.id for r in st.question_chunks(by_source, 8, seed=0)]  # deterministic
    many = st.question_chunks(by_source, 10_000, seed=0)
    assert all(len(st.tokenize(r.text)) >= st.MIN_PASSAGE_WORDS for r in many)
    assert len(many) == len({r.id for r in many})
    # the cut queries are the same whether or not the LLM's chunks are drawn
    cut = [q.text for q in st.cut_queries(by_source, 30, 0)]
    assert cut == [q.text for q in st.cut_queries(st.chunks_by_source(Index(s)), 30, 0)]
