"""The ask path, top to bottom: pick the LLM -> rewrite a follow-up into a standalone
question -> query translation (when a strategy is set) -> retrieve -> grade the passages for
the original question (retrieval/grade.py; corrective retry, else abstain: empty index, or
no passage's support reaches `answer.min_score`) -> answer: extractive (retrieval/compose.py)
or generative with numbered passages, every sentence checked against the passage it cites
(retrieval/check.py; nothing supported left -> extractive) -> citations.

`answer.mode = auto` picks extractive for small models (the embedded 135M model invents facts)
and generative for capable ones; `--trace` says which and why.

Two forms share one implementation: `ask_stream` yields the answer's tokens and then one
`AnswerResult` (the CLI and the Streamlit UI print tokens as they come); `ask` returns the
`AnswerResult` alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import RagError
from core.index import Index
from core.llm import LLM, Message, get_llm, too_small
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval import grade
from retrieval.check import ClaimStream
from retrieval.compose import compose
from retrieval.conversation import condense
from retrieval.generate import Citation, Generation, Passage, cite, stream_answer
from retrieval.pipeline import RetrievalResult, Timer, retrieve

log = logging.getLogger(__name__)

EMPTY_INDEX = (
    "The index at {path} holds no documents yet, so there is nothing to answer from; run `rag ingest PATH`."
)
NO_SUPPORT = (
    "I could not find anything in the indexed documents that supports an answer to this question "
    "(support {support:.2f} is below answer.min_score {min:.2f}; best match similarity {best:.2f}, "
    "question terms covered {coverage:.0%})."
)
NO_PASSAGES = "No passage fits the model's context, so there is nothing to answer from."
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
    abstain_reason: str | None = None  # empty_index | no_support | no_passages | model_declined
    mode: str = ""  # extractive | generative, as run
    support: float | None = None  # the original question's best passage support (retrieval/grade.py)
    best_similarity: float | None = None
    hits: list[Hit] = field(default_factory=list)  # what retrieval returned (the prompt's passages first)

    def to_dict(self, trace: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
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


def _translate(
    question: str,
    strategy: str,
    settings: Settings,
    llm: LLM,
    trace: list[TraceEntry],
    index: Index | None = None,
) -> Any | None:
    """A `retrieval.translate.Translation` (queries, merge, routed index and filter, prompt
    extras), when the module exists; None means search the question itself. Unparseable
    results fall back and are recorded. With no strategy, a question written in the other
    script than the corpus (`retrieval.crosslingual.mismatch`) is translated into the corpus's
    language (strategy `translate`) when `translate.auto_language` is on and the LLM is capable."""
    if strategy in ("", "none"):
        strategy = _auto_language(question, settings, llm, trace, index)
        if strategy == "none":
            return None
    try:
        from retrieval import translate as tr
    except ImportError:
        trace.append(
            TraceEntry("translate", 0.0, {"strategy": strategy, "fallback": "retrieval.translate missing"})
        )
        return None
    t0 = time.perf_counter()
    try:
        out: Any = tr.translate(question, strategy, settings, llm, trace, index=index)
    except RagError:  # a bad strategy name is the user's to fix
        raise
    except Exception as e:
        log.warning("query translation failed (%s); searching the question itself", e)
        trace.append(
            TraceEntry(
                "translate",
                (time.perf_counter() - t0) * 1000,
                {"strategy": strategy, "fallback": f"{type(e).__name__}: {e}"},
            )
        )
        return None
    if getattr(out, "queries", None):
        return out
    trace.append(
        TraceEntry("translate", 0.0, {"strategy": strategy, "fallback": f"unusable result {out!r:.80}"})
    )
    return None


def _auto_language(
    question: str, settings: Settings, llm: LLM, trace: list[TraceEntry], index: Index | None
) -> str:
    """`translate` when the question's script differs from the corpus's and the LLM can
    translate (the model `choose_mode` lets write answers); else `none`. A small model's
    translation is not trusted: the keyword glosses (retrieval/crosslingual.py) are all it gets."""
    if not settings.translate.auto_language:
        return "none"
    try:
        from retrieval.crosslingual import mismatch

        mm = mismatch(question, index or Index(settings), settings)
    except Exception as e:  # no keyword index, an unreadable one: search the question itself
        log.warning("language check failed (%s); searching the question itself", e)
        trace.append(
            TraceEntry(
                "translate",
                0.0,
                {"strategy": "translate", "skipped": f"language check failed: {type(e).__name__}: {e}"},
            )
        )
        return "none"
    if mm is None:
        return "none"
    mode, why = choose_mode(settings, llm)
    if mode != "generative":
        trace.append(
            TraceEntry(
                "translate",
                0.0,
                {
                    "strategy": "translate",
                    "mismatch": mm.__dict__,
                    "skipped": f"the model is too small to translate; keyword glosses only ({why})",
                },
            )
        )
        return "none"
    return "translate"


def choose_mode(settings: Settings, llm: LLM) -> tuple[str, str]:
    """The answer mode to run and why: `auto` is extractive for the embedded model and any model
    whose name says it is small, generative otherwise."""
    mode = settings.answer.mode
    if mode != "auto":
        return mode, f"answer.mode = {mode}"
    small = too_small(settings, llm)
    if small:
        return "extractive", f"auto: {small} is too small to write faithful answers"
    return "generative", f"auto: {llm.backend} model {llm.model} writes the answer; every sentence is checked"


def _timings(trace: list[TraceEntry], extra: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in trace:
        out[t.stage] = round(out.get(t.stage, 0.0) + t.ms, 2)
    out.update({k: round(v, 2) for k, v in extra.items()})
    return out


def ask_stream(
    question: str,
    settings: Settings,
    *,
    history: list[Message] | None = None,
    strategy: str | None = None,
    k: int | None = None,
    index: Index | None = None,
    llm: LLM | None = None,
    max_tokens: int | None = None,
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
        return AnswerResult(
            question=question,
            answer=answer,
            backend=llm.backend,
            model=llm.model,
            reason=llm.reason,
            trace=trace,
            strategy=strategy or "none",
            timings=_timings(trace, {"total": total, **kw.pop("extra", {})}),
            **kw,
        )

    index.check_compatible()
    if not index.exists() or index.vectors.count() == 0:
        msg = EMPTY_INDEX.format(path=index.path)
        yield msg
        yield result(
            msg, citations=[], abstained=True, abstain_reason="empty_index", standalone_question=question
        )
        return
    standalone = condense(question, history, llm, settings, trace)
    tr = _translate(standalone, strategy, settings, llm, trace, index)
    if tr is not None:  # the router may pick another collection's index, and `auto` a strategy
        strategy = tr.strategy
        index = index if tr.settings is settings else Index(tr.settings)
    t_r = time.perf_counter()
    res = retrieve(
        standalone,
        tr.settings if tr else settings,
        index=index,
        k=k or settings.answer.context_chunks,
        **(tr.retrieve_kwargs() if tr else {}),
    )
    trace.extend(res.trace)
    retrieve_ms = (time.perf_counter() - t_r) * 1000
    k_ctx = k or settings.answer.context_chunks
    qvec = res.query_vector
    mode, why = choose_mode(settings, llm)
    trace.append(TraceEntry("answer_mode", 0.0, {"mode": mode, "reason": why}))
    hits, ev = _grade(standalone, res, settings, index, k_ctx, trace, llm, mode)
    common = {
        "standalone_question": standalone,
        "best_similarity": ev.dense,
        "support": ev.support,
        "hits": hits,
    }
    if not hits or not grade.answerable(ev, settings):
        msg = NO_SUPPORT.format(
            support=ev.support, min=settings.answer.min_score, best=ev.dense, coverage=ev.coverage
        )
        yield msg
        yield result(
            msg,
            citations=[],
            abstained=True,
            abstain_reason="no_support",
            mode=mode,
            extra={"retrieve": retrieve_ms},
            **common,
        )
        return
    gen: Generation | None = None
    for part in _answer(mode, standalone, hits, tr, llm, settings, trace, index, qvec, k_ctx, max_tokens):
        if isinstance(part, Generation):
            gen = part
        else:
            yield part
    assert gen is not None  # _answer always ends with its Generation
    extra = {"retrieve": retrieve_ms, "first_token": gen.first_token_ms or gen.ms}
    reason = "no_passages" if gen.no_passages else None
    if gen.declined:  # the model declined, or (extractive) no sentence is worth quoting
        reason = "model_declined" if mode == "generative" else "no_support"
    text = NO_PASSAGES if gen.no_passages else (gen.text or DECLINED) if gen.declined else gen.text
    if text != gen.text:  # an abstention's message was not streamed
        yield text
    yield result(
        text,
        citations=[] if reason else gen.citations,
        abstained=reason is not None,
        abstain_reason=reason,
        mode=mode,
        extra=extra,
        **common,
    )


def _grade(
    question: str,
    res: RetrievalResult,
    settings: Settings,
    index: Index,
    k: int,
    trace: list[TraceEntry],
    llm: LLM,
    mode: str,
) -> tuple[list[Hit], grade.Evidence]:
    """The original question's evidence over the hits; when it is too weak, one corrective retry."""
    with Timer(trace, "abstain_check") as d:
        ev = grade.evidence(question, res.hits, index, res.query_vector, settings)
        d.update(ev.to_dict(), min_score=settings.answer.min_score, hits=len(res.hits))
    if grade.answerable(ev, settings):
        return res.hits, ev
    return grade.corrective(
        question, res.hits, ev, settings, index, k, res.query_vector, trace, llm, capable=mode == "generative"
    )


def _answer(
    mode: str,
    question: str,
    hits: list[Hit],
    tr: Any,
    llm: LLM,
    settings: Settings,
    trace: list[TraceEntry],
    index: Index,
    qvec: Any,
    k: int,
    max_tokens: int | None,
) -> Iterator[str | Generation]:
    """The answer's text as it comes, then its `Generation`: composed from the passages
    (extractive), or written by the LLM and checked (generative)."""
    if mode == "extractive":
        gen = compose(question, hits, settings, trace, index.embedder, qvec)
        if not gen.declined:
            yield gen.text
        yield gen
        return
    prompt_q, prompt_hits = question, hits
    if tr is not None:  # template instruction, labelled step-back contexts, decomposed sub-answers
        from retrieval.translate import answer_prompt

        prompt_q, prompt_hits = answer_prompt(tr, question, hits, llm, settings, trace, k)
    yield from _generate(question, prompt_q, prompt_hits, llm, settings, trace, index, qvec, max_tokens)


def _generate(
    question: str,
    prompt_q: str,
    hits: list[Hit],
    llm: LLM,
    settings: Settings,
    trace: list[TraceEntry],
    index: Index,
    qvec: Any,
    max_tokens: int | None,
) -> Iterator[str | Generation]:
    """The LLM's answer; with `answer.check`, only the sentences their passages support are
    yielded, as each completes, and nothing supported left means the extractive answer."""
    fitted: list[Passage] = []
    claims: ClaimStream | None = None
    gen: Generation | None = None
    for part in stream_answer(prompt_q, hits, llm, settings, trace, max_tokens=max_tokens, fitted=fitted):
        if isinstance(part, Generation):
            gen = part
        elif not settings.answer.check:
            yield part
        else:
            claims = claims or ClaimStream(fitted, index.embedder, settings)
            if out := claims.feed(part):
                yield out
    assert gen is not None
    if not settings.answer.check or gen.no_passages or not gen.text:
        yield gen
        return
    t0 = time.perf_counter()
    claims = claims or ClaimStream(gen.passages, index.embedder, settings)
    if out := claims.finish():
        yield out
    res = claims.result
    detail = res.detail()
    raw = gen.text
    gen.declined = res.declined  # judged on the first sentence, not on a decline buried later
    if res.declined:
        gen.text = DECLINED
        yield DECLINED
    elif res.kept:
        gen.text = res.text
        gen.citations, _ = cite(gen.text, gen.passages, settings.answer.cite_min_overlap)
    else:  # nothing the passages support: the extractive answer over the same passages
        ext = compose(
            question,
            [],
            settings,
            trace,
            index.embedder,
            qvec,
            passages=gen.passages,
            stage="compose_fallback",
        )
        detail["fallback"] = "extractive" if not ext.declined else "declined"
        gen.text, gen.citations, gen.declined = ext.text, ext.citations, ext.declined
        if ext.text:
            yield ext.text
    detail["raw_chars"], detail["shipped_chars"] = len(raw), len(gen.text)
    trace.append(TraceEntry("check", (time.perf_counter() - t0) * 1000, detail))
    yield gen


def ask(question: str, settings: Settings, **kw: Any) -> AnswerResult:
    """The blocking form of `ask_stream`."""
    for part in ask_stream(question, settings, **kw):
        if isinstance(part, AnswerResult):
            return part
    raise RuntimeError("ask_stream ended without a result")  # pragma: no cover
