"""The answer side of the query path (`retrieval/pipeline.py` calls these after the search
stages): `grade` judges whether the passages support an answer for the original question
(retrieval/grade.py, one corrective retry, else abstain), `answer` composes it from the passages
(extractive, retrieval/compose.py) or has the LLM write it, every sentence checked against the
passage it cites (retrieval/check.py), a dropped sentence searched for once as a query of its
own and kept when a passage that search finds holds all of it (`answer.claim_retries`); nothing
supported left -> extractive.

`answer.mode = auto` picks extractive for small models (the embedded 135M model invents facts)
and generative for capable ones. What the answer prompt gets from query translation (the routed
template's instruction, step-back labels, decomposed sub-answers) is built here too."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator

from core.llm import LLM, too_small
from core.settings import Settings
from core.types import Hit, TraceEntry
from retrieval import decompose
from retrieval import grade as grading
from retrieval.check import Checker, Claim, ClaimStream
from retrieval.compose import QuestionVector, compose
from retrieval.crosslingual import with_senses
from retrieval.generate import Generation, Passage, Writer, cite
from retrieval.quantity import describe
from retrieval.state import QueryState, Search, Timer
from retrieval.translate import Translation

NO_SUPPORT = (
    "I could not find anything in the indexed documents that supports an answer to this question "
    "(support {support:.2f} is below answer.abstain.{kind}.min_score {min:.2f}; "
    "best match similarity {best:.2f}, "
    "question terms covered {coverage:.0%})."
)
NO_QUANTITY = " The question asks for {what}, and no passage in its language states one."
NO_PASSAGES = "No passage fits the model's context, so there is nothing to answer from."
HEDGED = (
    "Weak support: the passages may not answer this directly (support {support:.2f} is below "
    "answer.abstain.{kind}.min_score {min:.2f}); the sentences above are the closest they come."
)
DECLINED = "I could not find the answer in the indexed documents."


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


def grade(state: QueryState, again: Search) -> QueryState:
    """The original question's evidence over the hits; when it is too weak, one corrective
    retry (`again` searches once more); still too weak: abstain (`state.abstain_reason`)."""
    assert state.llm is not None
    state.mode, why = choose_mode(state.settings, state.llm)
    state.trace.append(TraceEntry("answer_mode", 0.0, {"mode": state.mode, "reason": why}))
    s = state.settings
    state.hits = state.hits[: state.k]
    with Timer(state.trace, "abstain_check") as d:
        ev = grading.evidence(state.question, state.hits, state.index, state.query_vector, s,
                              state.keyword_groups)
        d.update(ev.to_dict(), hits=len(state.hits))
    if not grading.answerable(ev, s):
        state.hits, ev = grading.corrective(state, ev, again, capable=state.mode == "generative")
    state.evidence = ev
    if state.hits and grading.hedgeable(ev, s):
        # Weak support, not none: answered as any other (quoted, or written and checked sentence
        # by sentence), and marked, so the reader knows to check the sources.
        state.hedged = True
        state.note = HEDGED.format(support=ev.support, kind=ev.decided_by, min=ev.min_score)
        hedge = {"support": round(ev.support, 4), "min_score": ev.min_score, "hedge_margin": ev.hedge_margin}
        state.trace.append(TraceEntry("hedge", 0.0, hedge))
    elif not state.hits or not grading.answerable(ev, s):
        state.abstain_reason = "no_support"
        state.message = NO_SUPPORT.format(support=ev.support, kind=ev.decided_by, min=ev.min_score,
                                          best=ev.dense, coverage=ev.coverage)
        if not ev.quantity_stated:
            state.message += NO_QUANTITY.format(what=describe(ev.units))
    return state


def _sentence_terms(state: QueryState) -> tuple[str, dict[str, list[str]]]:
    """The question as the composer scores sentences against it: as BM25 searched it, and for an
    English question of Chinese text each key's other translations too (crosslingual.with_senses)."""
    n = state.settings.answer.sentence_senses
    if not state.keyword_groups or n <= 0:
        return state.keyword_query, state.keyword_groups
    searched = state.keyword_groups
    query, groups = with_senses(state.keyword_query, searched, state.index.keyword.translations(), n)
    added = {k: ws[len(searched[k]):] for k, ws in groups.items() if len(ws) > len(searched[k])}
    if added:
        state.trace.append(TraceEntry("sentence_senses", 0.0, {"added": added}))
    return query, groups


def answer(state: QueryState, again: Search, retry: Search | None = None) -> Iterator[str]:
    """The answer's text as it comes; `state.generation` holds the result: composed from the
    passages (extractive), or written by the LLM and checked (generative). `again` searches
    decomposed sub-questions, `retry` a sentence the check dropped (None: no such search)."""
    assert state.llm is not None
    if state.mode == "extractive":
        # Sentences are scored against the question as BM25 searched it: for an English question
        # of Chinese text that adds the glosses and dictionary translations, without which no
        # Chinese sentence shares a term with it (notes-mixed dev: the answer held the evidence
        # for 0.54 of the crosslingual questions instead of 0.30). Otherwise it is the question.
        query, groups = _sentence_terms(state)
        gen = compose(query, state.hits, state.settings, state.trace, _question_vector(state), groups=groups)
        if not gen.declined:
            yield gen.text
    else:
        prompt_q, prompt_hits = state.question, state.hits
        if state.translation is not None:  # routed template, step-back labels, decomposed sub-answers
            prompt_q, prompt_hits = answer_prompt(state, state.translation, again)
        gen = yield from _generate(state, prompt_q, prompt_hits, retry)
    state.generation = gen
    if gen.no_passages:
        state.abstain_reason, state.message = "no_passages", NO_PASSAGES
    elif gen.declined:  # the model declined, or (extractive) no sentence is worth quoting
        state.abstain_reason = "model_declined" if state.mode == "generative" else "no_support"
        state.message = gen.text or DECLINED
    if state.abstain_reason and state.message != gen.text:  # an abstention's message was not streamed
        yield state.message


def _generate(
    state: QueryState, prompt_q: str, hits: list[Hit], retry: Search | None = None
) -> Generator[str, None, Generation]:
    """The LLM's answer; with `answer.check`, only the sentences their passages support are
    yielded, as each completes; a dropped sentence is searched for once (`_retry_claims`, with
    `retry`); nothing supported left means the extractive answer."""
    assert state.llm is not None
    s, embedder = state.settings, state.index.embedder
    fitted: list[Passage] = []
    claims: ClaimStream | None = None
    gen: Generation | None = None
    writer = Writer(state.llm, s, state.trace, max_tokens=state.max_tokens)
    for part in writer.stream(prompt_q, hits, fitted):
        if isinstance(part, Generation):
            gen = part
        elif not s.answer.check:
            yield part
        else:
            claims = claims or ClaimStream(fitted, embedder, s)
            if out := claims.feed(part):
                yield out
    assert gen is not None
    if not s.answer.check or gen.no_passages or not gen.text:
        return gen
    t0 = time.perf_counter()
    claims = claims or ClaimStream(gen.passages, embedder, s)
    if out := claims.finish():
        yield out
    if retry is not None and s.answer.claim_retries > 0 and (out := _retry_claims(state, claims, gen, retry)):
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
        gen.citations, _ = cite(gen.text, gen.passages, s.answer.cite_min_overlap)
    else:  # nothing the passages support: the extractive answer over the same passages
        query, groups = _sentence_terms(state)
        ext = compose(query, [], s, state.trace, _question_vector(state), passages=gen.passages,
                      groups=groups)
        state.trace[-1].stage = "compose_fallback"  # the extractive answer standing in for the LLM's
        detail["fallback"] = "extractive" if not ext.declined else "declined"
        gen.text, gen.citations, gen.declined = ext.text, ext.citations, ext.declined
        if ext.text:
            yield ext.text
    detail["raw_chars"], detail["shipped_chars"] = len(raw), len(gen.text)
    state.trace.append(TraceEntry("check", (time.perf_counter() - t0) * 1000, detail))
    return gen


def _retry_claims(state: QueryState, claims: ClaimStream, gen: Generation, again: Search) -> str:
    """Corrective retrieval after generating: each sentence the check dropped (at most
    `answer.claim_retries`) is searched for as a query of its own, and when one of the first
    `answer.claim_retry_passages` passages that search adds holds every content word and number
    of it (the check at its strictest), the sentence is kept, cited to that passage, which joins
    the answer's passages (the next number).
    A capable model often states what a passage it was not shown says, or cites the wrong one
    of two; an invention finds no passage and stays dropped. No LLM call. A `claim_retry` trace
    entry says what was searched and kept; returns the text to stream."""
    a = state.settings.answer
    todo = claims.retryable()[: a.claim_retries]
    if not todo:
        return ""
    t0 = time.perf_counter()
    # A passage found this way was not in the prompt, so the check's allowance for paraphrase
    # (answer.check_min_overlap, or fewer words and a close embedding) does not apply: every
    # content word and number of the sentence must be in it. With the 135M model forced to write
    # (sci-en and notes-mixed dev, 40 answers, 47 dropped sentences searched), the one sentence
    # the looser check kept was a fragment, "Linerud - DataFrame containing the following
    # columns:", cited to another dataset's page that shares four of its five words.
    # No embedder for that check either: without one it has no similarity path, and the sentence
    # is not encoded again for each passage tried.
    strict = state.settings.model_copy(update={"answer": a.model_copy(update={"check_min_overlap": 1.0})})
    held = {p.hit.record.id for p in gen.passages}
    out: list[str] = []
    tried: list[dict[str, object]] = []
    for v in todo:
        body = v.claim.body
        entry: dict[str, object] = {"claim": body[:200], "dropped_because": v.reason, "kept": False}
        tried.append(entry)
        try:
            found = again(body).hits
        except Exception as e:  # a failed search leaves the sentence dropped, the answer standing
            entry["error"] = f"{type(e).__name__}: {e}"
            continue
        new = [h for h in found if h.record.id not in held][: a.claim_retry_passages]
        entry["new_passages"] = len(new)
        for h in new:
            p = Passage(max((q.n for q in gen.passages), default=0) + 1, h, h.record.text)
            # checked with no marker: a supporting passage re-cites it ("... [n].")
            verdict = Checker([p], None, strict).check(Claim(body, [], body))
            if verdict.kept:
                verdict.reason = "found by a search of its own"
                gen.passages.append(p)
                held.add(h.record.id)
                out.append(claims.recover(v, verdict))
                entry.update(kept=True, passage=p.n, source=h.record.source, reason=verdict.reason)
                break
    detail = {"claims": tried, "kept": sum(bool(e["kept"]) for e in tried)}
    state.trace.append(TraceEntry("claim_retry", (time.perf_counter() - t0) * 1000, detail))
    return "".join(out)


def _question_vector(state: QueryState) -> QuestionVector:
    return QuestionVector(state.index.embedder, state.query_vector)


# --- what the answer prompt gets from query translation ----------------------------------------

def _found_by(hit: Hit, role: str) -> float:
    return hit.scores.get(f"{role}_rank", float("inf"))


def prompt_question(t: Translation, question: str, hits: list[Hit]) -> tuple[str, list[Hit]]:
    """The question text for the answer prompt, and the hits in prompt order. Adds the routed
    template's instruction; for step-back, passages found by the question come first and
    those found by the step-back question after, and the prompt says which are which."""
    text = question
    if t.step_back:
        own = [h for h in hits if _found_by(h, "original") <= _found_by(h, "step_back")]
        bg = [h for h in hits if h not in own]
        hits = own + bg
        label = []
        if own:
            label.append(f"Passages {_span(1, len(own))} answer the question itself.")
        if bg:
            label.append(f"Passages {_span(len(own) + 1, len(hits))} are background for the broader question "
                         f"\"{t.step_back}\".")
        text += "\n" + " ".join(label)
    if t.template is not None:
        text += f"\n{t.template.instruction}"
    return text, hits


def _span(a: int, b: int) -> str:
    return f"[{a}]" if a == b else f"[{a}]-[{b}]"


def answer_prompt(state: QueryState, t: Translation, again: Search) -> tuple[str, list[Hit]]:
    """The question text and passages for the final answer: for `decompose`, after answering
    the sub-questions in order (`again` searches each); otherwise `prompt_question`."""
    assert state.llm is not None
    question, hits = state.question, state.hits
    if t.sub_questions:
        steps = decompose.answer_steps(t, state.llm, state.settings, state.trace, again)
        return decompose.final_prompt(prompt_question(t, question, [])[0], steps, hits, state.k)
    text, ordered = prompt_question(t, question, hits)
    if t.step_back:  # "Passages [a]-[b]" must name the passages that fit the context, not all hits
        kept = len(Writer(state.llm, state.settings, state.trace).fitting(text, ordered))
        if 0 < kept < len(ordered):
            text, ordered = prompt_question(t, question, ordered[:kept])
    return text, ordered
