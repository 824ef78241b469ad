"""Query runners that evaluation configurations name (`EvalConfig.runner`), each called as
`fn(question, settings, index=index, k=k) -> RetrievalResult`.

`translated` runs query translation (the strategy in `settings.answer.strategy`) and then
retrieval with the queries it wrote, the way `rag ask` does, and counts the LLM calls
actually made (cache hits are not calls) into a trace entry, with `core.llmcall.CountingLLM`."""

from __future__ import annotations

from core.index import Index
from core.llm import get_llm
from core.llmcall import CountingLLM
from core.settings import Settings
from core.types import TraceEntry
from retrieval.pipeline import RetrievalResult, retrieve

LLM_COUNT_STAGE = "llm_count"  # a trace entry holding the exact number of LLM calls of the query


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
