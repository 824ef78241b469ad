"""LangChain at the edge: our retrieval as a LangChain retriever, our answer as a runnable, so a
LangChain user can put either into their own chain. The adapter maps types only; the work is
`retrieval.pipeline.retrieve` and `retrieval.answer.ask`, as in `rag search` and `rag ask`.

    retriever = LocalRagRetriever(settings=load_settings(), k=4)
    docs = retriever.invoke("How fine should the grind be for espresso?")
    answer_chain(load_settings()).invoke("How fine ...?")["answer"]
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from core.index import Index
from core.settings import Settings
from core.types import Hit


def hit_document(hit: Hit) -> Document:
    """A hit as a LangChain Document: its text, and `Hit.to_dict()`'s fields (id, source, title,
    location, kind, char offsets, pages, final `score`, per-stage `scores`) as metadata, None left out."""
    meta = {k: v for k, v in hit.to_dict().items() if v is not None}
    text = meta.pop("text")
    return Document(page_content=text, metadata=meta, id=hit.record.id)


_MAKING = threading.Lock()


class _Shared:
    """One Index per adapter, loaded on first use (encoder, Chroma, BM25 load once), and one call
    at a time through it, as `rag serve` does: `.batch` runs calls on a thread pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self._index: Index | None = None

    def index(self) -> Index:  # called under self.lock
        if self._index is None:
            self._index = Index(self.settings)
        return self._index


class LocalRagRetriever(BaseRetriever):
    """Our hybrid search and reranking (`rag search`) as a LangChain retriever.

    `k`: hits returned (default `search.top_k`). `strategy`: a query translation strategy
    (`multi-query`, `fusion`, `step-back`, `hyde`, `decompose`, `translate`, `auto`; it calls the
    LLM) applied before searching, as `rag ask --strategy` does; None searches the query itself."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings = Field(repr=False)
    k: int | None = None
    strategy: str | None = None
    _shared: _Shared | None = PrivateAttr(default=None)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str | None) -> str | None:
        """An unknown name is refused when the retriever is made (ConfigError naming the choices)."""
        if v in (None, "", "none"):
            return None
        from retrieval.translate import check_strategy

        return check_strategy(v)

    def _resources(self) -> _Shared:
        with _MAKING:  # `.batch`'s first calls arrive together: one _Shared, so one lock and one Index
            if self._shared is None or self._shared.settings is not self.settings:
                self._shared = _Shared(self.settings)
            return self._shared

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        from retrieval.pipeline import retrieve, retrieve_state

        shared = self._resources()
        with shared.lock:
            index = shared.index()
            if self.strategy is None:  # `rag search`: no LLM call
                res = retrieve(query, self.settings, index=index, k=self.k)
            else:  # routing and query translation first, as `rag ask --strategy` runs them
                from core.llm import get_llm
                from retrieval.state import QueryState

                k = self.k or self.settings.search.top_k
                res = retrieve_state(QueryState(query, self.settings, index, k, llm=get_llm(self.settings),
                                                strategy=self.strategy))
        return [hit_document(h) for h in res.hits]


def answer_chain(
    settings: Settings, *, k: int | None = None, strategy: str | None = None
) -> Runnable[str | Mapping[str, Any], dict[str, Any]]:
    """`rag ask` as a runnable: a question (a string, or a mapping with `question` and optionally
    `history`, a list of {"role", "content"} messages) in, `AnswerResult.to_dict()` out (answer,
    citations, abstained, mode, support, backend, timings ...)."""
    shared = _Shared(settings)

    def run(question: str | Mapping[str, Any]) -> dict[str, Any]:
        from retrieval.answer import AskOptions, ask

        history = None
        if isinstance(question, Mapping):
            history = question.get("history")
            question = question.get("question")  # type: ignore[assignment]
        if not isinstance(question, str):
            raise TypeError(
                f"answer_chain takes a question string or a mapping with a 'question' string, "
                f"got {question!r:.80}; pass e.g. {{'question': 'How ...?'}}."
            )
        with shared.lock:
            opts = AskOptions(history=history, strategy=strategy, k=k)
            res = ask(question, settings, opts, index=shared.index())
        return res.to_dict()

    return RunnableLambda(run, name="localrag_answer")
