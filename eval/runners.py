"""Query runners that evaluation configurations name (`EvalConfig.runner`), each called as
`fn(question, settings, index=index, k=k) -> RetrievalResult`.

`translated` runs query translation (the strategy in `settings.answer.strategy`) and then
retrieval with the queries it wrote, the way `rag ask` does, and counts the LLM calls
actually made (cache hits are not calls) into a trace entry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.index import Index
from core.llm import LLM, Message, get_llm
from core.settings import Settings
from core.types import TraceEntry
from retrieval.pipeline import RetrievalResult, retrieve

LLM_COUNT_STAGE = "llm_count"  # a trace entry holding the exact number of LLM calls of the query


@dataclass
class CountingLLM:
    """The configured LLM, counting `complete` and `stream` calls."""

    inner: LLM
    calls: int = 0
    backend: str = field(init=False)
    model: str = field(init=False)
    reason: str = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.backend, self.model, self.reason = self.inner.backend, self.inner.model, self.inner.reason

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def complete(
        self,
        messages: list[Message],
        max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None,
        temperature: float | None = None,
    ) -> str:
        self._count()
        return self.inner.complete(
            messages, max_tokens=max_tokens, json_schema=json_schema, temperature=temperature
        )

    def stream(
        self, messages: list[Message], max_tokens: int | None = None, temperature: float | None = None
    ) -> Iterator[str]:
        self._count()
        return self.inner.stream(messages, max_tokens=max_tokens, temperature=temperature)

    def context_window(self) -> int:
        return self.inner.context_window()

    def __getattr__(self, name: str) -> Any:  # anything else a backend offers (token counting, ...)
        return getattr(self.inner, name)


def translated(question: str, settings: Settings, index: Index, k: int) -> RetrievalResult:
    """Query translation with `settings.answer.strategy` (routing included), then retrieval
    with the queries, filter and merge rule it chose, on the evaluation index."""
    from retrieval import translate as tr

    llm = CountingLLM(get_llm(settings))
    trace: list[TraceEntry] = []
    t = tr.translate(question, settings.answer.strategy, settings, llm, trace, index=index)
    res = retrieve(question, settings, index=index, k=k, **t.retrieve_kwargs())
    res.trace = trace + res.trace + [TraceEntry(LLM_COUNT_STAGE, 0.0, {"llm_calls": llm.calls})]
    return res
