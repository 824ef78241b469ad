"""`rag ask` end to end over a small corpus ingested here: real MiniLM, Chroma, BM25 and the
embedded SmolLM2 (llama.cpp), or the Ollama path through the real `ollama` client against
tests/ollama_server.py. Assertions are about structure and provenance (citations point at
retrieved chunks), never about the wording of the model's answer."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from core.index import Index
from core.llm import LlamaCppLLM
from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval.answer import AnswerResult, AskOptions, ask, ask_stream
from tests.files import write_docs
from tests.ollama_server import OllamaTestServer, Reply, free_port

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
LLM_OPTS = {"provider": "llamacpp", "temperature": 0.0, "max_tokens": 24}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ask")
    docs = write_docs(root / "docs", DOCS)
    index_dir = root / "index"
    report = ingest([docs], load_settings(index_dir=index_dir))
    assert not report.failed
    return index_dir


def _settings(index_dir: Path, **over: Any) -> Settings:
    llm = {**LLM_OPTS, **over.pop("llm", {})}
    return load_settings(index_dir=index_dir, llm=llm, answer={"context_chunks": 3, **over.pop("answer", {})},
                         **over)


def _chunk_ids(index_dir: Path) -> dict[str, Any]:
    idx = Index(load_settings(index_dir=index_dir))
    return {r.id: r for r in idx.docs.iter_records()}


# ---------- the Python API (the UI uses the same)


@pytest.mark.slow
def test_ask_streams_tokens_then_a_result_whose_citations_are_retrieved_chunks(corpus: Path) -> None:
    s = _settings(corpus, answer={"mode": "generative", "check": False})  # the raw token stream
    parts = list(ask_stream(QUESTION, s))
    tokens, res = parts[:-1], parts[-1]
    assert isinstance(res, AnswerResult) and all(isinstance(t, str) for t in tokens) and len(tokens) >= 2
    text = "".join(t for t in tokens if isinstance(t, str))  # all of them (asserted above)
    assert res.answer == text.strip() and not res.abstained
    assert res.backend == "llamacpp" and res.model.endswith(".gguf") and res.reason
    assert res.hits and Path(res.hits[0].record.source).name == "transformers.md"
    prompt_ids = {h.record.id for h in res.hits}
    records = _chunk_ids(corpus)
    docs = Index(s).docs
    for c in res.citations:  # only passages that were in the prompt, with their real provenance
        assert c.chunk_id in prompt_ids
        rec = records[c.chunk_id]
        # the cited passage is the hit chunk's window: exact offsets into the source, around the chunk
        assert c.source == rec.source and c.start <= rec.start and rec.end <= c.end
        assert c.text == (docs.file_text(c.source) or "")[c.start : c.end]
        assert 1 <= c.n <= len(res.hits)
    assert {"retrieve", "generate", "first_token", "total"} <= set(res.timings)
    stages = [t.stage for t in res.trace]
    assert stages[0] == "llm_select" and "abstain_check" in stages and stages[-1] == "cite"


def test_default_answer_with_the_embedded_model_is_extractive_and_cited(corpus: Path) -> None:
    res = ask(QUESTION, _settings(corpus))
    assert res.mode == "extractive" and not res.abstained and "gradient descent" in res.answer
    assert {Path(c.source).name for c in res.citations} == {"transformers.md"}
    assert "generate" not in [t.stage for t in res.trace]


@pytest.mark.slow
def test_generative_answer_from_the_embedded_model_ships_only_checked_sentences(corpus: Path) -> None:
    parts = list(ask_stream(QUESTION, _settings(corpus, answer={"mode": "generative"})))
    res = parts[-1]
    assert isinstance(res, AnswerResult) and res.mode == "generative"
    assert res.answer == "".join(p for p in parts[:-1] if isinstance(p, str)).strip()
    check = next(t.detail for t in res.trace if t.stage == "check")
    assert check["kept"] + len(check["dropped"]) == check["claims"]
    prompt_ids = {h.record.id for h in res.hits}
    assert all(c.chunk_id in prompt_ids for c in res.citations)


def test_empty_index_abstains_without_generating(tmp_path: Path) -> None:
    s = _settings(tmp_path / "never-ingested")
    res = ask(QUESTION, s)
    assert res.abstained and res.abstain_reason == "empty_index" and res.citations == []
    assert "rag ingest" in res.answer
    (tmp_path / "empty").mkdir()
    ingest([tmp_path / "empty"], load_settings(index_dir=tmp_path / "idx0"))  # an index with no chunks
    res = ask(QUESTION, _settings(tmp_path / "idx0"))
    assert res.abstained and res.abstain_reason == "empty_index"
    assert "generate" not in [t.stage for t in res.trace]


def test_unsupported_question_abstains_instead_of_inventing(corpus: Path) -> None:
    res = ask("Who painted the Mona Lisa?", _settings(corpus))
    assert res.abstained and res.abstain_reason == "no_support" and res.citations == []
    assert res.best_similarity is not None and res.best_similarity < 0.2
    assert "min_score" in res.answer
    assert "generate" not in [t.stage for t in res.trace]
    # the same threshold decides for a relevant question: above it, retrieval supports an answer
    strict = ask(QUESTION, _settings(corpus, answer={"min_score": 1.01}))
    assert strict.abstained and strict.abstain_reason == "no_support"
    # a refusal lists the passages that came closest, never as the answer's citations
    closest = strict.closest()
    assert strict.citations == [] and 1 <= len(closest) <= 3
    assert closest[0].source.endswith("transformers.md") and {c.via for c in closest} == {"closest"}
    assert [c.chunk_id for c in closest] == [h.record.id for h in strict.hits[: len(closest)]]
    assert strict.to_dict()["closest"] == [c.to_dict() for c in closest]
    answered = ask(QUESTION, _settings(corpus))
    assert not answered.abstained and answered.closest() == [] and answered.to_dict()["closest"] == []


def test_cli_refusal_lists_the_closest_passages(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _rag(monkeypatch, capsys, "ask", QUESTION, "--no-serve",
                        env=_env(corpus, RAG_ANSWER__MIN_SCORE="1.01"))
    assert code == 0 and "Sources:" not in out
    refusal, closest = out.split("Closest passages (none of them supports an answer):", 1)
    assert "min_score" in refusal and "transformers.md" in closest.splitlines()[2], closest


def test_cli_marks_a_weakly_supported_answer(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # support under min_score but over the rule's hedge floor: answered, quoted and cited, and
    # the note says so between the answer and its sources
    env = _env(corpus, RAG_ANSWER__ABSTAIN__SAME__MIN_SCORE="1.01",
               RAG_ANSWER__ABSTAIN__SAME__HEDGE_SCORE="0.1")
    code, out, _ = _rag(monkeypatch, capsys, "ask", QUESTION, "--no-serve", env=env)
    assert code == 0 and "Closest passages" not in out
    answer, rest = out.split("Weak support:", 1)
    assert "[1]" in answer and "min_score 1.01" in rest and "Sources:" in rest


REWRITE = "How is a transformer neural network trained?"


def test_follow_up_is_rewritten_before_retrieval(corpus: Path, server: OllamaTestServer) -> None:
    """A capable model's rewrite (scripted) is what retrieval searches, not the fallback (the
    last user turn joined with the follow-up, which the embedded 135M model always ends up in)."""
    history = [
        {"role": "user", "content": "What is a transformer?"},
        {"role": "assistant", "content": "A neural network architecture built on self-attention."},
    ]
    s = _settings(corpus, ollama_url=server.url,
                  llm={"provider": "ollama", "model": "smollm2:135m", "num_ctx": 2048})
    # cast: returning None leaves the other prompts to the real model (`_Server.scripted` returns
    # it as "not scripted"), but `Reply` declares the function as returning str only.
    server.reply = cast(Reply, lambda msgs: (
        REWRITE if "Rewrite the user's last question" in msgs[0]["content"] else None))
    try:
        res = ask("and how is it trained?", s, AskOptions(history=history))
    finally:
        server.reply = None
    assert res.standalone_question == REWRITE
    (condensed,) = [t.detail for t in res.trace if t.stage == "condense"]
    assert condensed["standalone"] == REWRITE and "fallback" not in condensed, condensed
    searched = {t.detail["query"] for t in res.trace if t.stage in ("dense", "bm25")}
    assert searched == {REWRITE}, searched
    assert Path(res.hits[0].record.source).name == "transformers.md"


@pytest.mark.slow
def test_strategy_is_threaded_through(corpus: Path) -> None:
    # min_score 1.01 (support is at most 1): retrieval runs with the strategy, generation is skipped
    res = ask(QUESTION, _settings(corpus, answer={"min_score": 1.01}), AskOptions(strategy="multi-query"))
    assert res.strategy == "multi-query"
    # translate() ran to the end: its own entry (a raise leaves only a fallback message), its LLM
    # call made without an error, and the queries it wrote are the ones retrieval searched
    (tr,) = [t.detail for t in res.trace if t.stage == "translate"]
    assert tr["strategy"] == "multi-query" and isinstance(tr["fallback"], bool) and tr["queries"], tr
    (calls,) = [t.detail for t in res.trace if t.stage == "llm_calls"]
    assert calls["records"] and not any(c.get("error") for c in calls["records"]), calls
    (cands,) = [t.detail for t in res.trace if t.stage == "candidates"]
    assert [c["query"] for c in cands["queries"]] == [q["text"][:300] for q in tr["queries"]]
    plain = ask(QUESTION, _settings(corpus, answer={"min_score": 1.01}))
    assert plain.strategy == "none" and not any(t.stage == "translate" for t in plain.trace)


# ---------- the command, in process (app.cli.main, exactly as the console script runs it)


def _rag(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
         env: dict[str, str]) -> tuple[int, str, str]:
    from app.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["rag", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _env(index_dir: Path, **extra: str) -> dict[str, str]:
    return {"RAG_INDEX_DIR": str(index_dir), "RAG_LLM__MAX_TOKENS": "24", "RAG_LLM__TEMPERATURE": "0",
            "RAG_ANSWER__CONTEXT_CHUNKS": "3", "RAG_OLLAMA_URL": f"http://127.0.0.1:{free_port()}", **extra}


@pytest.mark.slow
def test_cli_json_has_the_documented_fields(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _rag(
        monkeypatch, capsys, "ask", QUESTION, "--json", "--trace", "-k", "2", env=_env(corpus)
    )
    assert code == 0
    d = json.loads(out)
    assert {"answer", "citations", "abstained", "backend", "model", "timings", "trace", "reason"} <= set(d)
    assert d["backend"] == "llamacpp" and "not reachable" in d["reason"]  # auto fell back, and says why
    assert d["abstained"] is False and d["answer"]
    assert all(isinstance(v, int | float) for v in d["timings"].values())
    records = _chunk_ids(corpus)
    for c in d["citations"]:
        assert {"source", "chunk_id", "start", "end", "text"} <= set(c) and c["chunk_id"] in records
        assert c["n"] <= 2  # -k 2: only two passages were in the prompt


@pytest.mark.slow
def test_cli_streams_the_answer_then_sources(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _rag(monkeypatch, capsys, "ask", QUESTION, "--trace", env=_env(corpus))
    assert code == 0 and out.strip()
    assert "Sources:" in out, out
    answer, sources = out.split("Sources:", 1)
    assert answer.strip() and "transformers.md" in sources, sources  # the answer's own source
    assert "llamacpp" in err and "trace" in err and "abstain_check" in err


def test_cli_empty_index_says_so_and_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _rag(monkeypatch, capsys, "ask", QUESTION, env=_env(tmp_path / "none"))
    assert code == 1 and "rag ingest" in out


def test_cli_ollama_down_is_one_line_with_the_fix(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _rag(monkeypatch, capsys, "ask", QUESTION, env=_env(corpus, RAG_LLM__PROVIDER="ollama"))
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("Error: Ollama is not reachable") and "`ollama serve`" in line


# ---------- the Ollama path end to end


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        yield srv


def test_cli_ollama_model_not_pulled(corpus: Path, server: OllamaTestServer, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    env = _env(corpus, RAG_LLM__PROVIDER="ollama", RAG_OLLAMA_URL=server.url, RAG_LLM__MODEL="llama3.2")
    code, _, err = _rag(monkeypatch, capsys, "ask", QUESTION, env=env)
    assert code == 1 and "`ollama pull llama3.2`" in err


@pytest.mark.slow
def test_cli_auto_answers_through_ollama_when_it_has_the_model(
    corpus: Path,
    server: OllamaTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = _env(corpus, RAG_OLLAMA_URL=server.url, RAG_LLM__MODEL="smollm2:135m", RAG_LLM__NUM_CTX="2048",
               RAG_LLM__KEEP_ALIVE="1m", RAG_ANSWER__MODE="generative")  # a 135m name is extractive in auto
    code, out, _ = _rag(monkeypatch, capsys, "ask", QUESTION, "--json", env=env)
    assert code == 0
    d = json.loads(out)
    assert d["backend"] == "ollama" and d["model"] == "smollm2:135m" and "answered" in d["reason"]
    assert d["answer"] and not d["abstained"]
    chat = [r for r in server.requests if r["path"] == "/api/chat"][-1]["body"]
    assert chat["stream"] is True and chat["options"]["num_ctx"] == 2048 and chat["keep_alive"] == "1m"
    prompt = chat["messages"][-1]["content"]
    assert "[1]" in prompt and QUESTION in prompt  # the numbered passages went to Ollama
    for c in d["citations"]:
        assert c["text"] in prompt


def test_doctor_reports_the_llm_backends(server: OllamaTestServer, tmp_path: Path) -> None:
    from app.doctor import run_checks

    up = {
        c["name"]: c for c in run_checks(load_settings(ollama_url=server.url, llm={"model": "smollm2:135m"}))
    }
    assert up["Ollama"]["state"] == "ok"
    assert up["LLM backend"]["detail"].startswith("ollama") and "answered" in up["LLM backend"]["detail"]
    assert up["embedded LLM"]["state"] == "ok" and ".gguf" in up["embedded LLM"]["detail"]
    s = load_settings(ollama_url=server.url, llm={"model": "llama3.2", "provider": "ollama"})
    pulled = {c["name"]: c for c in run_checks(s)}
    assert pulled["Ollama"]["state"] == "fail" and "ollama pull llama3.2" in pulled["Ollama"]["detail"]
    down = {c["name"]: c for c in run_checks(load_settings(ollama_url=f"http://127.0.0.1:{free_port()}",
                                                           llm={"gguf_path": str(tmp_path / "x.gguf")}))}
    assert down["Ollama"]["state"] == "warn" and "ollama serve" in down["Ollama"]["detail"]
    assert down["embedded LLM"]["state"] == "fail" and down["LLM backend"]["state"] == "fail"


def test_llm_is_chosen_once_per_question(corpus: Path) -> None:
    # An explicit backend is used as given (the UI passes its own), and reported.
    llm = LlamaCppLLM(_settings(corpus))
    res = ask("Who painted the Mona Lisa?", _settings(corpus), llm=llm)
    assert res.backend == "llamacpp" and res.reason == "llm.provider = llamacpp"


def test_cli_says_when_a_dropped_sentence_was_kept_after_a_search_found_its_passage(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A capable model (a scripted reply) states a fact from a document outside its one prompt
    passage: the answer keeps it, cited to that document, and the CLI says so under the answer."""
    with OllamaTestServer(models=["llama3.1:8b"]) as srv:
        srv.reply = ("Transformers are trained with gradient descent on large text corpora [1]. "
                     "Bulk fermentation of sourdough takes four to six hours at 24 degrees Celsius [1].")
        env = _env(corpus, RAG_OLLAMA_URL=srv.url, RAG_LLM__PROVIDER="ollama", RAG_LLM__MODEL="llama3.1:8b",
                   RAG_ANSWER__CONTEXT_CHUNKS="1")
        code, out, err = _rag(monkeypatch, capsys, "ask", QUESTION, env=env)
    assert code == 0
    answer, sources = out.split("Sources:", 1)
    assert "four to six hours" in answer and "sourdough.md" in sources and "transformers.md" in sources
    assert "1 kept, cited to a passage a search for it found" in err
