"""Asking a question: `ask_stream` picks the LLM, runs the whole query path
(`retrieval.pipeline.run`: condense -> route/translate -> search ... -> grade -> answer ->
check) and yields the answer's text as it comes, then one `AnswerResult`; `ask` returns the
`AnswerResult` alone. The CLI and the Streamlit UI print tokens as they come."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.index import Index
from core.llm import LLM, Message, get_llm
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval import pipeline
from retrieval.generate import Citation, Passage, citation
from retrieval.state import QueryState, Timer, timings

# Passages listed beside a refusal for lack of support: what came closest, for the user to read
# (the sample's "Should I keep my coffee beans in the fridge?" is refused, and its "Beans and
# freshness" section is the first of them). Never part of the answer.
CLOSEST = 3

EMPTY_INDEX = (
    "The index at {path} holds no documents yet, so there is nothing to answer from; run `rag ingest PATH`."
)


@dataclass
class AnswerResult:
    question: str
    answer: str
    citations: list[Citation]
    abstained: bool
    backend: str
    model: str
    reason: str  # why this backend
    timings: dict[str, float]  # milliseconds per stage
    trace: list[TraceEntry] = field(default_factory=list)
    standalone_question: str = ""
    strategy: str = "none"
    abstain_reason: str | None = None  # empty_index | no_support | no_passages | model_declined
    mode: str = ""  # extractive | generative, as run
    support: float | None = None  # the original question's best passage support (retrieval/grade.py)
    best_similarity: float | None = None
    hits: list[Hit] = field(default_factory=list)  # what retrieval returned (the prompt's passages first)
    # Answered on weak support (between the rule's hedge_score and min_score, retrieval/grade.py):
    # quoted from the passages, and `note` says the passages may not answer it directly.
    hedged: bool = False
    note: str = ""

    def closest(self) -> list[Citation]:
        """After a refusal for lack of support (`no_support`), the CLOSEST passages retrieval
        found, numbered from 1 (`via` "closest"); none otherwise."""
        if not (self.abstained and self.abstain_reason == "no_support"):
            return []
        top = self.hits[:CLOSEST]
        return [citation(Passage(n, h, h.record.text), "closest") for n, h in enumerate(top, 1)]

    def to_dict(self, trace: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "closest": [c.to_dict() for c in self.closest()],
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "hedged": self.hedged,
            "note": self.note,
            "backend": self.backend,
            "model": self.model,
            "reason": self.reason,
            "strategy": self.strategy,
            "best_similarity": self.best_similarity,
            "support": self.support,
            "mode": self.mode,
            "timings": self.timings,
        }
        if trace:
            d["trace"] = [{"stage": t.stage, "ms": round(t.ms, 2), "detail": t.detail} for t in self.trace]
        return d


@dataclass
class AskOptions:
    """How to answer one question: the chat so far (a follow-up is rewritten into a standalone
    question), the query strategy (default `answer.strategy`), how many passages to answer from
    (default `answer.context_chunks`) and the answer's token budget (default `llm.max_tokens`)."""

    history: list[Message] | None = None
    strategy: str | None = None
    k: int | None = None
    max_tokens: int | None = None


def ask_stream(
    question: str,
    settings: Settings,
    options: AskOptions | None = None,
    *,
    index: Index | None = None,
    llm: LLM | None = None,
) -> Iterator[str | AnswerResult]:
    """Yield the answer's text as it is generated, then one `AnswerResult`. `index` / `llm`:
    ones the caller already holds (the UI, `rag serve`), else the configured ones."""
    o = options or AskOptions()
    t0 = time.perf_counter()
    trace: list[TraceEntry] = []
    with Timer(trace, "llm_select") as d:
        llm = llm or get_llm(settings)
        d.update(backend=llm.backend, reason=llm.reason)
    index = index or Index(settings)
    k = settings.answer.context_chunks if o.k is None else o.k
    state = QueryState(question, settings, index, k, trace=trace, answer=True, llm=llm, history=o.history,
                       max_tokens=o.max_tokens, strategy=o.strategy or settings.answer.strategy or "none")
    index.check_compatible()
    if not index.exists() or index.vectors.count() == 0:
        state.message, state.abstain_reason = EMPTY_INDEX.format(path=index.path), "empty_index"
        yield state.message
    else:
        yield from pipeline.run(state)
    yield _result(state, question, (time.perf_counter() - t0) * 1000)


def _result(state: QueryState, question: str, total_ms: float) -> AnswerResult:
    """The `AnswerResult` of a finished run of the query path."""
    assert state.llm is not None
    gen, ev = state.generation, state.evidence
    extra = {"total": total_ms}
    if state.mode:
        extra["retrieve"] = state.retrieve_ms
    if gen is not None:
        extra["first_token"] = gen.first_token_ms or gen.ms
    abstained = state.abstain_reason is not None
    hedged = state.hedged and not abstained  # a weak answer the composer then declined is a refusal
    return AnswerResult(
        question=question,
        answer=state.message if abstained else gen.text,
        citations=[] if abstained or gen is None else gen.citations,
        abstained=abstained,
        backend=state.llm.backend,
        model=state.llm.model,
        reason=state.llm.reason,
        timings={**timings(state.trace), **{k: round(v, 2) for k, v in extra.items()}},
        trace=state.trace,
        standalone_question=state.question,
        strategy=state.strategy,
        abstain_reason=state.abstain_reason,
        mode=state.mode,
        support=ev.support if ev is not None else None,
        best_similarity=ev.dense if ev is not None else None,
        hits=state.hits,
        hedged=hedged,
        note=state.note if hedged else "",
    )


def ask(
    question: str, settings: Settings, options: AskOptions | None = None, *,
    index: Index | None = None, llm: LLM | None = None,
) -> AnswerResult:
    """The blocking form of `ask_stream`."""
    for part in ask_stream(question, settings, options, index=index, llm=llm):
        if isinstance(part, AnswerResult):
            return part
    raise RuntimeError("ask_stream ended without a result")  # pragma: no cover
