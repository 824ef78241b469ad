"""The knowledge graph as a retriever (retrieval/graph.py): a two-hop question found through the
graph. The question names Harbor Lights (A); the answer chunk names only the Kessler Institute
(C) and its founder; A-B (Elena Varga) and B-C are stated in other chunks; distractors share the
question's words. With the graph the answer chunk is in the top k, without it it is not: once
with a graph read by co-occurrence (no LLM), once read by a capable model (the Ollama test
server scripts its replies through the real `ollama` client). Then `rag graph`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.index import Index
from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval.pipeline import retrieve
from retrieval.state import FIRST_STAGE
from tests.files import write_docs
from tests.ollama_server import OllamaTestServer

QUESTION = "Who founded the institute where the author of Harbor Lights trained?"
K = 3
DOCS = {
    "novel.md": "# Harbor Lights\n\nHarbor Lights is a novel written by Elena Varga.\n",
    "varga.md": "# Elena Varga\n\nElena Varga trained as a biologist at the Kessler Institute on Sylt.\n",
    "kessler.md": "# Sylt station\n\nOtto Brandt paid for the Kessler Institute's first building in 1921.\n",
    "d1.md": "# Harbors\n\nHarbor lights guide ships at night; the port authority trained pilots to read the "
             "lights of each harbor.\n",
    "d2.md": "# Writing school\n\nAn institute founded by an author trained young writers: who founded it, "
             "and where the author trained, is told in its history.\n",
    "d3.md": "# Port history\n\nThe harbor lights were installed by the harbor board, founded in 1850 by "
             "merchants who trained as sailors.\n",
    "d4.md": "# Authors\n\nThe author of a novel about harbor lights founded a small institute where "
             "writers trained.\n",
}


def _answer(s: Settings, graph: bool, first_stage: bool) -> list[str]:
    s = s.model_copy(deep=True)
    s.search.graph = graph
    skip = FIRST_STAGE | {"gloss"} if first_stage else frozenset()
    return [Path(h.record.source).name for h in retrieve(QUESTION, s, Index(s), K, skip=skip).hits]


def _settings(index_dir: Path, **over: Any) -> Settings:
    s = load_settings(index_dir=index_dir, **over)
    s.ingest.graph = True
    s.search.ltr = s.search.ltr_self_train = False
    s.search.window_tokens = 0
    return s


@pytest.fixture(scope="module")
def cooc(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("graph")
    s = _settings(root / "index")
    s.ingest.graph_extraction = "cooccurrence"
    ingest([write_docs(root / "docs", DOCS)], s)
    return s


def test_two_hop_question_found_through_cooccurrence_graph(cooc: Settings) -> None:
    assert "kessler.md" not in _answer(cooc, graph=False, first_stage=True)
    assert "kessler.md" in _answer(cooc, graph=True, first_stage=True)
    # the reranking stages judge likeness to the question and push it out again ...
    assert "kessler.md" not in _answer(cooc, graph=True, first_stage=False)
    # ... unless the graph's list is fused back in after them
    cooc2 = cooc.model_copy(deep=True)
    cooc2.search.graph_rerank_weight = 1.0
    assert "kessler.md" in _answer(cooc2, graph=True, first_stage=False)
    assert "kessler.md" not in _answer(cooc2, graph=False, first_stage=False)


def test_graph_trace_and_features(cooc: Settings) -> None:
    res = retrieve(QUESTION, cooc, Index(cooc), K, skip=FIRST_STAGE)
    entry = next(t.detail for t in res.trace if t.stage == "graph")
    assert [m["entity"] for m in entry["matched"]] == ["Harbor Lights"] and entry["hops"] == 2
    hit = next(h for h in res.hits if h.record.source.endswith("kessler.md"))
    assert hit.scores["graph_distance"] == 2.0 and hit.scores["graph_shared"] >= 1.0
    none = retrieve("grind size for espresso", cooc, Index(cooc), K, skip=FIRST_STAGE)
    assert next(t.detail for t in none.trace if t.stage == "graph")["matched"] == []
    assert all("graph_distance" not in h.scores for h in none.hits)


def _scripted(messages: list[dict[str, Any]]) -> str:
    """A capable model's extraction per chunk; garbage for one distractor."""
    text = messages[-1]["content"]

    def facts(ents: list[str], rels: list[tuple[str, str, str]]) -> str:
        return json.dumps({"entities": [{"name": e} for e in ents],
                           "relations": [{"source": a, "relation": r, "target": b} for a, r, b in rels]})

    if "novel written by" in text:
        return facts(["Harbor Lights", "Elena Varga"], [("Harbor Lights", "written by", "Elena Varga")])
    if "trained as a biologist" in text:
        return facts(["Elena Varga", "Kessler Institute"],
                     [("Elena Varga", "trained at", "Kessler Institute")])
    if "Otto Brandt" in text:
        return facts(["Otto Brandt", "Kessler Institute"], [("Otto Brandt", "founded", "Kessler Institute")])
    if "port authority" in text:
        return "Sure! The entities are: harbor, pilots."  # no JSON: nothing for this chunk
    return facts([], [])


def test_two_hop_question_found_through_llm_graph(tmp_path: Path) -> None:
    with OllamaTestServer(models=["llama3.2:latest"], reply=_scripted) as srv:
        s = _settings(tmp_path / "index", ollama_url=srv.url, llm={"provider": "ollama", "model": "llama3.2"})
        rep = ingest([write_docs(tmp_path / "docs", DOCS)], s).derived["graph"]
        again = ingest([tmp_path / "docs"], s).derived["graph"]
        chats = [r for r in srv.requests if r["path"] == "/api/chat"]
    assert rep["method"] == "llm" and rep["llm_calls"] == len(DOCS) == len(chats)
    assert rep["unusable"] == 1 and again["chunks"] == 0 and again["llm_calls"] == 0
    assert chats[0]["body"]["format"]["required"] == ["entities", "relations"]
    assert "kessler.md" not in _answer(s, graph=False, first_stage=True)
    assert "kessler.md" in _answer(s, graph=True, first_stage=True)


def _rag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ}, cwd=os.getcwd())


def test_rag_graph_shows_an_entity(cooc: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_INDEX_DIR", str(cooc.index_dir))
    r = _rag("graph", "elena varga")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Elena Varga") and "1 hop (" in r.stdout and "Kessler Institute" in r.stdout
    assert "varga.md: # Elena Varga Elena Varga trained as a biologist" in r.stdout
    view = json.loads(_rag("graph", "Harbor Lights", "--hops", "2", "--json").stdout)
    assert {n["name"]: n["distance"] for n in view["neighbours"]}["Kessler Institute"] == 2
    missing = _rag("graph", "Elena Vargas")
    assert missing.returncode == 1 and "No entity named 'Elena Vargas'" in missing.stdout
    assert "Elena Varga" in missing.stdout  # a close name is suggested


def test_rag_graph_without_a_graph(tmp_path: Path) -> None:
    r = _rag("graph", "anything")
    assert r.returncode == 1 and "rag ingest --graph PATH" in r.stdout
