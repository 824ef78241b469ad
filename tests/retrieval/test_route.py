"""Routing on real indexes: logical routing picks the obviously right collection among two
clearly separated ones, semantic routing picks the answer template by embedding similarity,
filters stated in the question become Chroma metadata filters, and bad filters are dropped
with a note instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.index import Index
from core.llm import get_llm
from core.llmcall import LLMCaller
from core.models import get_embedder
from core.settings import CollectionSettings
from core.types import TraceEntry
from retrieval.pipeline import retrieve
from retrieval.route import check_where, filter_candidates, route, semantic_route
from retrieval.state import Plan
from tests.retrieval.routing_corpus import build, settings_for


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("routing"))


@pytest.mark.parametrize(
    "question, template",
    [
        ("What is the difference between espresso and French press coffee?", "comparison"),
        ("How do I set up a LangChain retriever?", "how-to"),
        ("Summarize the notes on neural network training.", "summary"),
        ("What is self-attention?", "definition"),
        ("How long does an espresso shot take?", "fact"),
        ("Why does a high learning rate make the loss diverge?", "explanation"),
    ],
)
def test_semantic_routing_picks_the_nearest_template(
    dirs: dict[str, Path], question: str, template: str
) -> None:
    s = settings_for(dirs)
    emb = get_embedder(s.embedding)
    chosen, scores = semantic_route(emb.embed_query(question), emb, s.route.min_template_score)
    assert chosen.name == template, scores
    assert set(scores) == {"definition", "how-to", "comparison", "summary", "explanation", "fact"}


def test_filter_candidates_come_from_the_question_and_the_index() -> None:
    paths = ["/d/espresso.md", "/d/brewing-guide.pdf", "/d/langchain-notes.md"]
    types, sources = filter_candidates("What do the PDF files say about water?", paths)
    assert types == {"pdf": ["pdf"]} and sources == {}
    types, sources = filter_candidates("From the notes about LangChain, what is a retriever?", paths)
    assert types == {} and sources == {"langchain": ["/d/langchain-notes.md"]}
    # a file name word without any mention of a document is not a stated filter
    assert filter_candidates("What is espresso?", paths) == ({}, {})
    # a type the index does not hold is offered with no extensions (dropped later, with a note)
    assert filter_candidates("in the Word documents", paths)[0] == {"word": []}


def test_check_where_drops_invalid_and_empty_filters(dirs: dict[str, Path]) -> None:
    index = Index(settings_for(dirs))
    assert check_where(index, {"ext": "pdf"}) == ({"ext": "pdf"}, None)
    where, note = check_where(index, {"ext": "docx"})
    assert where is None and note and "matches nothing" in note
    where, note = check_where(index, {"ext": {"$regex": "p.f"}})
    assert where is None and note and "refused" in note


def test_a_configured_collection_filter_that_is_invalid_is_dropped_not_raised(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    s.route.collections = [
        CollectionSettings(
            name="coffee", description="coffee", index_dir=dirs["coffee"], where={"ext": {"$bogus": 1}}
        )
    ]
    trace: list[TraceEntry] = []
    r = route(
        "How fine is an espresso grind?", "none", s, LLMCaller(get_llm(s)), get_embedder(s.embedding), trace
    )
    assert r.where is None and r.collection == "coffee"
    assert any("refused" in n for n in r.notes)
    assert "one collection configured: only the strategy is routed" in r.notes
    res = retrieve("How fine is an espresso grind?", r.settings, plan=Plan(where=r.where))
    assert res.hits


@pytest.mark.slow
@pytest.mark.parametrize(
    "question, expected",
    [
        ("What grind size should I use for espresso?", "coffee"),
        ("How long should I steep coffee in a French press?", "coffee"),
        ("How does self-attention work in a transformer?", "ml"),
        ("Why does a high learning rate make the training loss diverge?", "ml"),
    ],
)
def test_logical_routing_picks_the_obvious_collection(
    dirs: dict[str, Path], question: str, expected: str
) -> None:
    s = settings_for(dirs, collections=True)
    trace: list[TraceEntry] = []
    caller = LLMCaller(get_llm(s))
    r = route(question, "none", s, caller, get_embedder(s.embedding), trace)
    assert r.collection == expected, r.to_dict()
    assert r.settings.index_path == dirs[expected].resolve()
    assert [c.kind for c in caller.records] == ["route"]  # one structured call (no filter stated)
    entry = next(t for t in trace if t.stage == "route")
    assert set(entry.detail["scores"]["collections"]) == {"coffee", "ml"}
    # and the search goes to that collection's index
    res = retrieve(question, r.settings, k=2)
    assert all(dirs[expected].parent.name in h.record.source for h in res.hits)


@pytest.mark.slow
def test_auto_picks_a_strategy_from_the_allowed_ones(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    s.route.strategies = ["none", "fusion", "step-back"]
    trace: list[TraceEntry] = []
    r = route("What is espresso?", "auto", s, LLMCaller(get_llm(s)), get_embedder(s.embedding), trace)
    assert r.strategy in {"none", "fusion", "step-back"}
    assert any(n.startswith("strategy ") for n in r.notes)
    assert r.collection is None  # no collections configured: the main index


@pytest.mark.slow
def test_a_stated_file_type_becomes_a_metadata_filter(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    q = "What do the PDF files say about water temperature?"
    trace: list[TraceEntry] = []
    r = route(q, "none", s, LLMCaller(get_llm(s)), get_embedder(s.embedding), trace)
    assert r.where == {"ext": "pdf"}, r.notes
    res = retrieve(q, r.settings, k=5, plan=Plan(where=r.where))
    assert res.hits and all(h.record.source.endswith(".pdf") for h in res.hits)
    unfiltered = retrieve(q, r.settings, k=5)
    assert any(not h.record.source.endswith(".pdf") for h in unfiltered.hits)


@pytest.mark.slow
def test_a_named_document_becomes_a_source_filter(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs, main="ml")
    q = "From the notes about LangChain, what does a retriever return?"
    r = route(q, "none", s, LLMCaller(get_llm(s)), get_embedder(s.embedding), [])
    assert r.where is not None, r.notes
    wanted = str(Path(dirs["ml"]).parent / "docs" / "langchain-notes.md")
    assert r.where == {"source": {"$in": [str(Path(wanted).resolve())]}} or r.where == {
        "source": {"$in": [wanted]}
    }
    res = retrieve(q, r.settings, k=5, plan=Plan(where=r.where))
    assert res.hits and all(h.record.source.endswith("langchain-notes.md") for h in res.hits)


@pytest.mark.slow
def test_a_stated_filter_the_index_cannot_satisfy_is_dropped_and_noted(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs)
    q = "What do the Word documents say about the espresso shot?"
    r = route(q, "none", s, LLMCaller(get_llm(s)), get_embedder(s.embedding), [])
    assert r.where is None
    assert any(n.startswith("filter: ") for n in r.notes)
    assert retrieve(q, r.settings, plan=Plan(where=r.where)).hits


def test_a_file_name_word_used_as_a_topic_is_not_a_source_filter() -> None:
    paths = ["/d/espresso.md", "/d/langchain-notes.md"]
    assert filter_candidates("What do the documents say about the espresso shot?", paths) == ({}, {})
    assert filter_candidates("In the espresso notes, how long is a shot?", paths)[1] == {
        "espresso": ["/d/espresso.md"]
    }
    assert filter_candidates("what does the file espresso.md say", paths)[1] == {
        "espresso": ["/d/espresso.md"]
    }
