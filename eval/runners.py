"""Running one query of an evaluation configuration (`eval/configs.py`) through the query
path (`retrieval/pipeline.py`): the configuration's settings, the stages it leaves out, and,
for the query-translation configurations, the LLM-side stages (routing and translation with
`answer.strategy`, the way `rag ask` runs them), with the LLM calls actually made (cache hits
are not calls) counted into a trace entry by `core.llmcall.CountingLLM`."""

from __future__ import annotations

from core.index import Index
from core.llm import get_llm
from core.llmcall import CountingLLM
from core.settings import Settings
from core.types import TraceEntry
from eval.configs import EvalConfig
from retrieval.pipeline import retrieve, retrieve_state
from retrieval.state import QueryState, RetrievalResult

LLM_COUNT_STAGE = "llm_count"  # a trace entry holding the exact number of LLM calls of the query


def run_query(cfg: EvalConfig, question: str, settings: Settings, index: Index, k: int) -> RetrievalResult:
    """`question` through the pipeline `cfg` composes (`settings` already carry its overrides)."""
    if not cfg.translate:
        return retrieve(question, settings, index, k, skip=cfg.skip)
    llm = CountingLLM(get_llm(settings))
    strategy = settings.answer.strategy
    state = QueryState(question, settings, index, k, skip=cfg.skip, llm=llm, strategy=strategy)
    res = retrieve_state(state)
    res.trace.append(TraceEntry(LLM_COUNT_STAGE, 0.0, {"llm_calls": llm.calls}))
    return res
