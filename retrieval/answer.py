"""The ask path, top to bottom: pick the LLM -> rewrite a follow-up into a standalone
question -> query translation (when a strategy is set) -> retrieve -> abstain when there is
no support (empty index, best dense similarity below `answer.min_score`) -> generate with
numbered passages -> citations.

Two forms share one implementation: `ask_stream` yields the answer's tokens and then one
`AnswerResult` (the CLI and the Streamlit UI print tokens as they come); `ask` returns the
`AnswerResult` alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import RagError
from core.index import Index
from core.llm import LLM, Message, get_llm
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval.conversation import condense
from retrieval.generate import Citation, Generation, stream_answer
from retrieval.pipeline import RetrievalResult, Timer, retrieve

log = logging.getLogger(__name__)

EMPTY_INDEX = (
    "The index at {path} holds no documents yet, so there is nothing to answer from; run `rag ingest PATH`."
)
NO_SUPPORT = (
    "I could not find anything in the indexed documents that supports an answer to this question "
    "(best match similarity {best:.2f} is below answer.min_score {min:.2f})."
)
DECLINED = "I could not find the answer in the indexed documents."


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
    abstain_reason: str | None = None  # empty_index | no_support | model_declined
    best_similarity: float | None = None
    hits: list[Hit] = field(default_factory=list)  # what retrieval returned (the prompt's passages first)

    def to_dict(self, trace: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "question": self.question, "standalone_question": self.standalone_question,
            "answer": self.answer, "citations": [c.to_dict() for c in self.citations],
            "abstained": self.abstained, "abstain_reason": self.abstain_reason,
            "backend": self.backend, "model": self.model, "reason": self.reason, "strategy": self.strategy,
            "best_similarity": self.best_similarity, "timings": self.timings,
        }
        if trace:
            d["trace"] = [{"stage": t.stage, "ms": round(t.ms, 2), "detail": t.detail} for t in self.trace]
        return d


def _translate(
    question: str, strategy: str, settings: Settings, llm: LLM, trace: list[TraceEntry],
) -> Any | None:
    """A `retrieval.translate.Translation` (queries, merge, routed index and filter, prompt
    extras), when the module exists; None means search the question itself. Unparseable
    results fall back and are recorded."""
    if strategy in ("", "none"):
        return None
    try:
        from retrieval import translate as tr
    except ImportError:
        trace.append(TraceEntry("translate", 0.0,
                                {"strategy": strategy, "fallback": "retrieval.translate missing"}))
        return None
    t0 = time.perf_counter()
    try:
        out: Any = tr.translate(question, strategy, settings, llm, trace)
    except RagError:  # a bad strategy name is the user's to fix
        raise
    except Exception as e:
        log.warning("query translation failed (%s); searching the question itself", e)
        trace.append(TraceEntry("translate", (time.perf_counter() - t0) * 1000,
                                {"strategy": strategy, "fallback": f"{type(e).__name__}: {e}"}))
        return None
    if getattr(out, "queries", None):
        return out
    trace.append(TraceEntry("translate", 0.0,
                            {"strategy": strategy, "fallback": f"unusable result {out!r:.80}"}))
    return None


def best_similarity(index: Index, res: RetrievalResult, question: str) -> float:
    """The highest dense (cosine) similarity between the question and a retrieved hit; hits
    found by BM25 alone are scored from their stored vectors."""
    sims = [h.scores["dense"] for h in res.hits if "dense" in h.scores]
    missing = [h.record.id for h in res.hits if "dense" not in h.scores]
    if missing:
        qv = res.query_vector if res.query_vector is not None else index.embedder.embed([question])[0]
        q = np.asarray(qv, dtype=np.float32)
        for v in index.vectors.get_embeddings(missing).values():
            denom = float(np.linalg.norm(q) * np.linalg.norm(v)) or 1.0
            sims.append(float(np.dot(q, v)) / denom)
    return max(sims, default=0.0)


def _timings(trace: list[TraceEntry], extra: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in trace:
        out[t.stage] = round(out.get(t.stage, 0.0) + t.ms, 2)
    out.update({k: round(v, 2) for k, v in extra.items()})
    return out


def ask_stream(
    question: str, settings: Settings, *, history: list[Message] | None = None, strategy: str | None = None,
    k: int | None = None, index: Index | None = None, llm: LLM | None = None, max_tokens: int | None = None,
) -> Iterator[str | AnswerResult]:
    """Yield the answer's text as it is generated, then one `AnswerResult`."""
    t0 = time.perf_counter()
    trace: list[TraceEntry] = []
    strategy = strategy or settings.answer.strategy or "none"
    with Timer(trace, "llm_select") as d:
        llm = llm or get_llm(settings)
        d.update(backend=llm.backend, reason=llm.reason)
    index = index or Index(settings)

    def result(answer: str, **kw: Any) -> AnswerResult:
        total = (time.perf_counter() - t0) * 1000
        return AnswerResult(question=question, answer=answer, backend=llm.backend, model=llm.model,
                            reason=llm.reason, trace=trace, strategy=strategy or "none",
                            timings=_timings(trace, {"total": total, **kw.pop("extra", {})}), **kw)

    index.check_compatible()
    if not index.exists() or index.vectors.count() == 0:
        msg = EMPTY_INDEX.format(path=index.path)
        yield msg
        yield result(msg, citations=[], abstained=True, abstain_reason="empty_index",
                     standalone_question=question)
        return
    standalone = condense(question, history, llm, settings, trace)
    tr = _translate(standalone, strategy, settings, llm, trace)
    if tr is not None:  # the router may pick another collection's index, and `auto` a strategy
        strategy = tr.strategy
        index = index if tr.settings is settings else Index(tr.settings)
    t_r = time.perf_counter()
    res = retrieve(standalone, tr.settings if tr else settings, index=index,
                   k=k or settings.answer.context_chunks, **(tr.retrieve_kwargs() if tr else {}))
    trace.extend(res.trace)
    retrieve_ms = (time.perf_counter() - t_r) * 1000
    with Timer(trace, "abstain_check") as d:
        best = best_similarity(index, res, standalone) if res.hits else 0.0
        d.update(best_similarity=round(best, 4), min_score=settings.answer.min_score, hits=len(res.hits))
    common = {"standalone_question": standalone, "best_similarity": best, "hits": res.hits}
    if not res.hits or best < settings.answer.min_score:
        msg = NO_SUPPORT.format(best=best, min=settings.answer.min_score)
        yield msg
        yield result(msg, citations=[], abstained=True, abstain_reason="no_support",
                     extra={"retrieve": retrieve_ms}, **common)
        return
    gen: Generation | None = None
    prompt_q, prompt_hits = standalone, res.hits
    if tr is not None:  # template instruction, labelled step-back contexts, decomposed sub-answers
        from retrieval.translate import answer_prompt

        prompt_q, prompt_hits = answer_prompt(tr, standalone, res.hits, llm, settings, trace,
                                              k or settings.answer.context_chunks)
    for part in stream_answer(prompt_q, prompt_hits, llm, settings, trace, max_tokens=max_tokens):
        if isinstance(part, Generation):
            gen = part
        else:
            yield part
    assert gen is not None  # stream_answer always ends with its Generation
    extra = {"retrieve": retrieve_ms, "first_token": gen.first_token_ms or 0.0}
    if gen.declined:
        yield result(gen.text or DECLINED, citations=[], abstained=True, abstain_reason="model_declined",
                     extra=extra, **common)
        return
    yield result(gen.text, citations=gen.citations, abstained=False, extra=extra, **common)


def ask(question: str, settings: Settings, **kw: Any) -> AnswerResult:
    """The blocking form of `ask_stream`."""
    for part in ask_stream(question, settings, **kw):
        if isinstance(part, AnswerResult):
            return part
    raise RuntimeError("ask_stream ended without a result")  # pragma: no cover
