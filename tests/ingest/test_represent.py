"""Multi-representation indexing with the shipped SmolLM2 (tiny outputs): summaries and
questions point to their parent chunk, a hit on one returns the parent's text, re-ingest
duplicates nothing, a changed file re-uses cached replies, section units, and defensive
parsing of what the model writes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from core.index import Index
from core.settings import Settings, load_settings
from ingest.llm_text import clean_summary, extractive_summary, fit_budget, parse_questions, truncate
from ingest.pipeline import ingest
from ingest.represent import update_representations

ESPRESSO = (
    "# Espresso\n\n"
    "Espresso is brewed by forcing water at about nine bars of pressure through finely ground coffee "
    "packed into a portafilter basket.\n\n"
    "A double shot uses eighteen grams of coffee and yields about thirty-six grams of liquid in "
    "twenty-five to thirty seconds.\n\n"
    "# Milk\n\nSteam milk to sixty degrees Celsius for a flat white; hotter milk tastes burnt.\n"
)
KETTLE = "# Kettles\n\nA gooseneck kettle pours slowly, which keeps the coffee bed even during a pour-over.\n"


def _settings(index_dir: Path, **ingest: Any) -> Settings:
    s = load_settings(index_dir=index_dir)
    s.ingest.multi_representation = True
    s.ingest.represent_max_tokens = 40  # SmolLM2 on 2 CPU cores: keep generations tiny
    s.ingest.represent_questions = 2
    s.chunk.size = 40  # small chunks: the Espresso section spans two of them
    s.search.ltr = False
    # These tests are about the LLM's summaries and questions, one call per unit and kind
    # (auto: extractive for SmolLM2; batching: tests/ingest/test_extractive.py).
    s.ingest.represent_summaries = "llm"
    s.ingest.represent_batch = 1
    for k, v in ingest.items():
        setattr(s.ingest, k, v)
    return s


def check_derived(index: Index) -> None:
    chunks = {r.id: r for r in index.docs.iter_records(("chunk",))}
    derived = list(index.docs.iter_records(("summary", "question")))
    assert derived
    for r in derived:
        assert r.parent_id in chunks and r.source == chunks[r.parent_id].source and r.text.strip()
    ids = index.docs.all_ids()
    assert len(ids) == len(set(ids)) and sorted(index.vectors.all_ids()) == sorted(ids)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("represent")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "espresso.md").write_text(ESPRESSO)
    (corpus / "kettle.md").write_text(KETTLE)
    rep = ingest([corpus], _settings(root / "index"))
    return root, corpus, rep.summary()


@pytest.mark.slow
def test_representations_point_to_parent_chunks(built: tuple[Path, Path, dict[str, Any]]) -> None:
    root, _, summary = built
    rep = summary["represent"]
    index = Index(_settings(root / "index"))
    n_chunks = index.status()["chunks"]
    assert n_chunks == 4 and rep["units"] == n_chunks and rep["llm_calls"] == 2 * n_chunks
    check_derived(index)
    kinds = index.docs.counts_by_kind()
    assert kinds.get("summary", 0) >= 1 and kinds.get("question", 0) >= 1
    assert "representations:" in rep["line"]


@pytest.mark.slow
def test_hit_on_representation_returns_parent_text(built: tuple[Path, Path, dict[str, Any]]) -> None:
    from retrieval.pipeline import retrieve
    from retrieval.state import Plan

    root, _, _ = built
    s = _settings(root / "index")
    index = Index(s)
    chunks = {r.id: r for r in index.docs.iter_records(("chunk",))}
    for rep in list(index.docs.iter_records(("question", "summary")))[:3]:
        res = retrieve(rep.text, s, index=index, k=3, plan=Plan(mode="dense"))
        assert all(h.record.kind == "chunk" for h in res.hits)  # never the summary in place of the source
        top = res.hits[0]
        # the parent chunk itself (within its passage window), not the representation's text
        assert top.record.id == rep.parent_id and chunks[rep.parent_id].text in top.record.text
        assert top.matched == rep.id
        matched = [t for t in res.trace if t.stage == "representations"]
        assert matched and matched[0].detail["matched"][0]["kind"] == rep.kind


@pytest.mark.slow
def test_reingest_and_changed_file_reuse_cache_without_duplicates(
    built: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
) -> None:
    root, corpus, _ = built
    shutil.copytree(root / "index", tmp_path / "index")
    s = _settings(tmp_path / "index")
    index = Index(s)
    counts = index.docs.counts_by_kind()
    again = ingest([corpus], s, index=index)
    assert again.derived["represent"]["llm_calls"] == 0 and index.docs.counts_by_kind() == counts
    f = corpus / "kettle.md"
    try:
        f.write_text(KETTLE + "\n# Scales\n\nWeigh coffee and water on a scale reading tenths of a gram.\n")
        rep = ingest([corpus], s, index=index).derived["represent"]
        # The kettle chunk's replies come from the cache; only the new chunk asks the model.
        assert rep["cached"] == 2 and rep["llm_calls"] == 2, rep
        check_derived(index)
        assert index.status()["chunks"] == 5
        # Deleting the file (prune) takes its representations along.
        f.unlink()
        ingest([corpus], s, index=index, prune=True)
        check_derived(index)
        assert not [r for r in index.docs.iter_records(("summary", "question")) if r.source == str(f)]
    finally:
        f.write_text(KETTLE)


@pytest.mark.slow
def test_section_units_replace_chunk_units(built: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    root, corpus, _ = built
    shutil.copytree(root / "index", tmp_path / "index")
    s = _settings(tmp_path / "index", represent_unit="section", represent_questions=1)
    index = Index(s)
    rep = update_representations(index, s)
    chunks = list(index.docs.iter_records(("chunk",)))
    assert rep.units == 3 and rep.removed > 0  # Espresso (2 chunks), Milk, Kettles; old chunk units gone
    check_derived(index)
    esp = {c.id for c in chunks if c.title.endswith("Espresso")}
    assert len(esp) == 2
    derived = list(index.docs.iter_records(("summary", "question")))
    assert all(r.extra["unit_kind"] == "section" for r in derived)
    # The section's records point to one of its chunks (the closest), all under one unit key.
    assert len({r.extra["unit"] for r in derived if r.parent_id in esp}) == 1


@pytest.mark.slow
def test_unusable_replies_write_nothing_and_do_not_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "k.md").write_text(KETTLE)
    s = _settings(tmp_path / "index", represent_max_tokens=1)
    rep = ingest([corpus], s).derived["represent"]
    assert rep["unusable"] == 2 and rep["records"] == 0
    again = ingest([corpus], s).derived["represent"]
    assert again["llm_calls"] == 0  # the (unusable) replies are cached


def test_parsing_is_defensive() -> None:
    raw = ("1. What is espresso?\n2) How long does a shot take?\n- What is the text about?\nEspresso.\n"
           "3. What is espresso?")
    assert parse_questions(raw, 5) == ["What is espresso?", "How long does a shot take?"]
    assert parse_questions("Why? What is a portafilter? Which grind? Where?", 2) == ["What is a portafilter?",
                                                                                   "Which grind?"]
    assert parse_questions("", 3) == [] and parse_questions("no questions here", 3) == []
    assert parse_questions("绿茶的水温是多少？", 1) == ["绿茶的水温是多少？"]
    raw = "Summary: Espresso is strong. Espresso is strong. It uses nine bars of"
    assert clean_summary(raw) == "Espresso is strong."
    assert clean_summary("ok") is None and clean_summary("") is None
    assert clean_summary("A one-line summary without a full stop") == "A one-line summary without a full stop"
    parts = fit_budget(["word " * 400, "Short text.", "Another short one."], 60)
    assert parts[1:] == ["Short text.", "Another short one."] and len(parts[0]) < len("word " * 400)
    assert len(truncate("x" * 1000, 10)) == 40 and truncate("Fits.", 10) == "Fits."
    assert extractive_summary(["First. Second.", "Un. Deux."], 50) == "First. Un."


class InFlight:
    """The real backend, with the most calls it served at once recorded."""

    def __init__(self, llm: Any) -> None:
        import threading

        self.llm, self.now, self.most, self.lock = llm, 0, 0, threading.Lock()
        self.backend, self.model, self.reason = llm.backend, llm.model, llm.reason

    def complete(self, messages: Any, **kw: Any) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return str(self.llm.complete(messages, **kw))
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.slow
def test_calls_run_concurrently_where_the_backend_serves_them(tmp_path: Path) -> None:
    """Through the Ollama backend (a real HTTP server speaking its API, tests/ollama_server.py)
    the LLM calls overlap; llama.cpp in-process runs them one at a time."""
    from core.llm import get_llm
    from tests.ollama_server import OllamaTestServer

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "k.md").write_text(KETTLE)
    (corpus / "m.md").write_text("# Milk\n\nSteam milk to sixty degrees Celsius for a flat white.\n")
    s = _settings(tmp_path / "index", multi_representation=False, llm_concurrency=4)
    index = Index(s)
    ingest([corpus], s, index=index)
    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        s.llm.provider, s.llm.model, s.ollama_url, s.llm.num_ctx = "ollama", "smollm2:135m", srv.url, 1024
        llm = InFlight(get_llm(s))
        rep = update_representations(index, s, llm=llm)  # type: ignore[arg-type]
        chats = [r for r in srv.requests if r["path"] == "/api/chat"]
    assert rep.llm_calls == 4 == len(chats) and llm.most >= 2
    check_derived(index)
