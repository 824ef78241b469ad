"""Answering a decomposed question: sub-questions are retrieved (concurrently: the searches are
independent) and answered in order, each prompt carrying the earlier answers; the final
answer is then composed from all of them and the passages they used.

`answer_steps` runs the sub-questions; `final_prompt` gives the question text and passages
for the final answer, which the caller generates (streamed) like any other answer."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.llm import LLM
from core.llmcall import LLMCaller
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval.generate import Generation, Writer
from retrieval.state import RetrievalResult
from retrieval.translate import Translation

log = logging.getLogger(__name__)
_MARKERS = re.compile(r"\[\s*((?:passages?\s*)?\d+(?:\s*[,;]\s*\d+)*)\s*\]", re.I)


@dataclass
class SubAnswer:
    question: str
    hits: list[Hit]
    answer: str
    citations: list[Any] = field(default_factory=list)
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "ms": round(self.ms, 1),
            "sources": [
                {"id": h.record.id, "location": h.record.location(), "title": h.record.title}
                for h in self.hits
            ],
        }


def _background(steps: list[SubAnswer]) -> str:
    return "\n".join(f"Q: {s.question}\nA: {s.answer}" for s in steps if s.answer)


def _with_background(question: str, steps: list[SubAnswer]) -> str:
    bg = _background(steps)
    return f"{question}\nAnswers to earlier sub-questions, for background:\n{bg}" if bg else question


def answer_steps(
    t: Translation,
    llm: LLM,
    settings: Settings,
    trace: list[TraceEntry],
    retrieve: Callable[[str], RetrievalResult],
) -> list[SubAnswer]:
    """Retrieve every sub-question (`retrieve`: the pipeline's search with the routed settings
    and filter, safe to call from several threads), then answer them in order (earlier answers
    feed later ones). A sub-question whose retrieval or generation fails gets an empty answer,
    never an error."""
    subs = t.sub_questions
    if not subs:
        return []
    caller = LLMCaller(llm, None, settings.translate.concurrency)

    def search(sub: str) -> tuple[list[Hit], list[TraceEntry]]:
        try:
            res = retrieve(sub)
            return res.hits, res.trace
        except Exception as e:  # keep the other sub-questions going
            log.warning("retrieval for sub-question %r failed: %s", sub, e)
            err = f"{type(e).__name__}: {e}"
            return [], [TraceEntry("sub_retrieve", 0.0, {"question": sub, "error": err})]

    t0 = time.perf_counter()
    found = caller.run_all([lambda s=s: search(s) for s in subs], llm_bound=False)  # type: ignore[misc]
    trace.append(
        TraceEntry("sub_retrieve", (time.perf_counter() - t0) * 1000, {"n": len(subs), "concurrent": True})
    )
    steps: list[SubAnswer] = []
    for sub, (hits, _) in zip(subs, found, strict=True):
        t1 = time.perf_counter()
        text, cits = "", []
        if hits:
            sub_trace: list[TraceEntry] = []
            try:
                writer = Writer(llm, settings, sub_trace, max_tokens=settings.translate.sub_answer_tokens)
                for part in writer.stream(_with_background(sub, steps), hits):
                    if isinstance(part, Generation):
                        text, cits = part.text, part.citations
            except Exception as e:  # a failed step leaves an empty answer; the final answer still comes
                log.warning("answering sub-question %r failed: %s", sub, e)
        step = SubAnswer(sub, hits, " ".join(text.split()), cits, (time.perf_counter() - t1) * 1000)
        steps.append(step)
        trace.append(TraceEntry("sub_answer", step.ms, step.to_dict()))
    return steps


def final_prompt(question: str, steps: list[SubAnswer], hits: list[Hit], k: int) -> tuple[str, list[Hit]]:
    """The final answer's question text (the question plus every sub-answer) and its passages:
    the question's own hits first, then each step's, deduplicated, at most `k` + one per step."""
    out: list[Hit] = []
    seen: set[str] = set()
    pools = [hits[:k]] + [s.hits[:2] for s in steps]
    for pool in pools:
        for h in pool:
            if h.record.id not in seen:
                seen.add(h.record.id)
                out.append(h)
    out = out[: k + len(steps)]
    bg = _background([SubAnswer(s.question, s.hits, renumber(s, out)) for s in steps])
    text = question
    if bg:
        text += f"\nSub-questions already answered:\n{bg}\nUse them and the passages."
    return text, out


def renumber(step: SubAnswer, final: list[Hit]) -> str:
    """A sub-answer's [n] markers point at the sub-question's own passages; in the final prompt
    they must name the same passage's number in the final list, or go (it is not there)."""
    pos = {h.record.id: i for i, h in enumerate(final, start=1)}
    by_n = {c.n: c.chunk_id for c in step.citations if getattr(c, "chunk_id", None)}
    by_n.update({i: h.record.id for i, h in enumerate(step.hits, start=1) if i not in by_n})

    def sub(m: re.Match[str]) -> str:
        nums = [pos[by_n[n]] for n in map(int, re.findall(r"\d+", m.group(1))) if by_n.get(n) in pos]
        return "[" + ", ".join(str(n) for n in sorted(set(nums))) + "]" if nums else ""

    return " ".join(_MARKERS.sub(sub, step.answer).split())
