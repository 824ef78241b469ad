"""Our retrieval and answers inside LangChain (retrieval/langchain_adapter.py), on a real index
(MiniLM, Chroma, BM25) with planted facts: the retriever returns Documents with their source
metadata, it feeds a real LangChain chain (prompt, the shipped SmolLM2 GGUF through
langchain-community's ChatLlamaCpp, output parser), and `answer_chain` answers and batches."""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from core.errors import ConfigError
from core.types import Hit, Record
from retrieval.langchain_adapter import LocalRagRetriever, answer_chain, hit_document
from retrieval.state import QueryState, RetrievalResult
from tests.retrieval.answer_corpus import FACT_Q, TYRE_Q, build, settings_for


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("langchain"))


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{n}] ({d.metadata['location']}) {d.page_content}" for n, d in enumerate(docs, 1))


def test_retriever_returns_documents_with_source_metadata(corpus: Path) -> None:
    retriever = LocalRagRetriever(settings=settings_for(corpus), k=3)
    docs = retriever.invoke(FACT_Q)
    assert 0 < len(docs) <= 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert "every 37 hours" in top.page_content
    meta = top.metadata
    assert Path(meta["source"]).is_absolute() and Path(meta["source"]).name == "lighthouse.md"
    assert meta["location"] == "lighthouse.md" and "Varne lighthouse" in meta["title"]
    assert top.id == meta["id"] and meta["kind"] == "chunk"
    text = Path(meta["source"]).read_text(encoding="utf-8")
    assert "every 37 hours" in text[meta["start"] : meta["end"]]  # char offsets into the source
    assert {"dense", "bm25", "rrf", "sbert"} <= set(meta["scores"]) and isinstance(meta["score"], float)
    assert "page_start" not in meta and "text" not in meta  # None fields left out; text is page_content
    assert [d.metadata["score"] for d in docs] == sorted((d.metadata["score"] for d in docs), reverse=True)

    index = retriever._resources().index()  # loaded once, kept across calls and batches
    by_batch = retriever.batch([TYRE_Q, FACT_Q])
    assert retriever._resources().index() is index
    assert Path(by_batch[0][0].metadata["source"]).name == "bicycles.md"
    assert [d.id for d in by_batch[1]] == [d.id for d in docs]


def test_pages_and_offsets_map_to_metadata() -> None:
    rec = Record("c1", "Pump pressure is 9 bar.", "/docs/manual.pdf", start=10, end=33, title="Specs",
                 page_start=3, page_end=4)
    doc = hit_document(Hit(rec, 0.8, {"dense": 0.6, "bm25": 4.2}))
    assert doc.page_content == "Pump pressure is 9 bar." and doc.id == "c1"
    assert doc.metadata["location"] == "manual.pdf pp. 3-4"
    assert (doc.metadata["page_start"], doc.metadata["page_end"]) == (3, 4)
    assert (doc.metadata["start"], doc.metadata["end"], doc.metadata["score"]) == (10, 33, 0.8)
    assert doc.metadata["scores"] == {"dense": 0.6, "bm25": 4.2}


def test_an_unknown_strategy_is_refused_when_the_retriever_is_made(corpus: Path) -> None:
    with pytest.raises(ConfigError, match="multi-query"):
        LocalRagRetriever(settings=settings_for(corpus), strategy="telepathy")
    assert LocalRagRetriever(settings=settings_for(corpus), strategy="none").strategy is None


@pytest.mark.slow
def test_a_strategy_translates_the_query_with_the_llm_first(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval import pipeline

    real, results = pipeline.retrieve_state, []

    def spy(state: QueryState) -> RetrievalResult:  # keeps the result, whose trace the Documents lack
        results.append(real(state))
        return results[-1]

    monkeypatch.setattr(pipeline, "retrieve_state", spy)
    settings = settings_for(corpus, translate={"max_tokens": 32})
    docs = LocalRagRetriever(settings=settings, k=3, strategy="multi-query").invoke(FACT_Q)
    assert Path(docs[0].metadata["source"]).name == "lighthouse.md"
    (translated,) = [t for t in results[0].trace if t.stage == "translate"]
    assert translated.detail["strategy"] == "multi-query"


PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question from the context in a few words."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*langchain-community.*:DeprecationWarning")
def test_retriever_feeds_a_real_langchain_chain(corpus: Path) -> None:
    from langchain_community.chat_models import ChatLlamaCpp

    from core.llm import gguf_path

    settings = settings_for(corpus)
    model = ChatLlamaCpp(model_path=str(gguf_path(settings)), n_ctx=2048, n_threads=2, max_tokens=8,
                         temperature=0.0, seed=0, verbose=False)
    seen: list[PromptValue] = []

    def tap(p: PromptValue) -> PromptValue:
        seen.append(p)
        return p

    retriever = LocalRagRetriever(settings=settings, k=2)
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | RunnableLambda(tap)
        | model
        | StrOutputParser()
    )
    out = chain.invoke(FACT_Q)
    assert isinstance(out, str) and out.strip()
    prompt = seen[0].to_string()
    assert "(lighthouse.md) " in prompt and "winds the clockwork every 37 hours" in prompt
    assert prompt.rstrip().endswith(f"Question: {FACT_Q}")


def test_answer_chain_answers_and_batches(corpus: Path) -> None:
    chain = answer_chain(settings_for(corpus))
    out = chain.invoke(FACT_Q)
    assert not out["abstained"] and out["mode"] == "extractive" and "37 hours" in out["answer"]
    assert out["citations"] and all(Path(c["source"]).name == "lighthouse.md" for c in out["citations"])

    outs: list[dict[str, Any]] = chain.batch([{"question": TYRE_Q}, "Who painted the Mona Lisa?"])
    assert "6 bar" in outs[0]["answer"] and not outs[0]["abstained"]
    assert outs[1]["abstained"] and outs[1]["citations"] == []

    # composes like any runnable
    just_text = {"question": RunnablePassthrough()} | chain | itemgetter("answer")
    assert "37 hours" in just_text.invoke(FACT_Q)
    with pytest.raises(TypeError, match="'question' string"):
        chain.invoke({"query": FACT_Q})
