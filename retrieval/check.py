"""The generative check: every sentence ("claim") of an LLM answer is checked against the
passage it cites before it is shown. A claim is supported by a passage when

- at least `answer.check_min_overlap` of its content words (core.keyword.tokenize) occur in
  the passage (heading included), or at least `answer.check_soft_overlap` do and its MiniLM
  embedding is within `answer.check_min_similarity` of one of the passage's sentences (only
  when both are English: MiniLM cannot read Chinese), and
- every number it states occurs in the passage (the typical invention is a changed number:
  "steep for 10 minutes" against "steep for four minutes" overlaps well but is wrong).

A claim that its cited passage does not support but another prompt passage does is kept and
re-cited to that one; a claim no passage supports is dropped, and so is a claim too short to
check (fewer than two content words, e.g. a bare "PWNED"), a question (an echo of the
prompt) and a repeat of a sentence already kept (small models loop). A dropped claim that was
checked (`ClaimStream.retryable`) may be searched for once more by the caller
(retrieval/respond.py) and kept, cited to a passage that search found (`ClaimStream.recover`).
The caller falls back to the extractive answer when nothing is left. `ClaimStream` applies the
check while the answer streams: a claim is shown once the next one has begun (its trailing [n]
markers are in)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.keyword import tokenize
from core.models import Embedder
from core.settings import Settings
from core.text import clause_goes_on, sentence_spans
from retrieval.compose import english
from retrieval.generate import CITATION_PREFIX, Passage, declined, parse_markers

MIN_TERMS = 2
# Why a claim was dropped without being checked against the passages (a search of its own could
# not make it an answer: `ClaimStream.retryable`)
TOO_SHORT = "too short to check"
A_QUESTION = "a question, not an answer"
A_REPEAT = "repeats an earlier sentence"
# A citation marker names a passage by number ("[2]", "[1, 3]", "[Source 2]"); other bracketed
# text ("[S] is the start symbol", "[Reinforcement Learning from Human Feedback]" quoted from a
# note) is part of the sentence, neither a marker nor the end of a claim.
_MARKER_BODY = rf"\[\s*{CITATION_PREFIX}\d[^\[\]]{{0,30}}\]"
# A run of markers ("[1][3]", " [1] [2]"), and one that opens a text with the space after it.
_MARKER_RUN = re.compile(rf"(?:\s*{_MARKER_BODY})+", re.I)
_LEAD_MARKERS = re.compile(rf"^{_MARKER_RUN.pattern}\s*", re.I)
_ANY_MARKER = re.compile(rf"\s*{_MARKER_BODY}", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# A marker followed by the start of another sentence ends a claim even without a full stop
# ("… level [2] The target …"); "According to [1], the …" and "[1] and it …" do not. Only a
# whole marker ends one: code quoted from a passage ("0 <= X[:, 0] <= 100") holds brackets that
# close after a digit too, and its claim was cut at "X[:, 0]" into a fragment too short to check.
_AFTER_MARKER = re.compile(
    rf"(?i:{_MARKER_BODY})(\s+)(?=[^\s,.;:!?)\]\[a-z]|\[(?!\s*(?i:{CITATION_PREFIX})\d))"
)


def _cited_parts(text: str, n_passages: int) -> list[tuple[str, list[int]]]:
    """A claim's text cut after each run of markers: each part with the passages its own
    markers name (a part after the last marker names none)."""
    parts: list[tuple[str, list[int]]] = []
    start = 0
    for m in _MARKER_RUN.finditer(text):
        body = text[start : m.start()].strip()
        if body:
            parts.append((body, parse_markers(m.group(0), n_passages)[0]))
        start = m.end()
    if text[start:].strip():
        parts.append((text[start:].strip(), []))
    return parts


def _split_after_markers(sentence: str) -> list[str]:
    """The sentence cut after each marker that a new sentence follows (_AFTER_MARKER), the
    whitespace between them dropped."""
    out, start = [], 0
    for m in _AFTER_MARKER.finditer(sentence):
        out.append(sentence[start : m.start(1)])
        start = m.end(1)
    return [*out, sentence[start:]]


@dataclass
class Claim:
    text: str  # as written, markers included
    cited: list[int]  # valid passage numbers its markers name
    body: str  # without markers

    @property
    def terms(self) -> set[str]:
        return set(tokenize(self.body))


@dataclass
class Verdict:
    claim: Claim
    kept: bool
    reason: str
    passage: int | None = None  # the passage that supports it
    overlap: float = 0.0
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "text": self.claim.text[:200],
            "kept": self.kept,
            "reason": self.reason,
            "passage": self.passage,
            "overlap": round(self.overlap, 3),
        }
        if self.similarity is not None:
            d["similarity"] = round(self.similarity, 3)
        return d


@dataclass
class CheckResult:
    verdicts: list[Verdict] = field(default_factory=list)
    declined: bool = False

    @property
    def kept(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.kept]

    @property
    def text(self) -> str:
        return " ".join(v.claim.text for v in self.kept)

    def detail(self) -> dict[str, Any]:
        return {
            "claims": len(self.verdicts),
            "kept": len(self.kept),
            "dropped": [v.to_dict() for v in self.verdicts if not v.kept],
            "recited": [v.to_dict() for v in self.kept if v.reason == "recited"],
            "declined": self.declined,
        }


def split_claims(text: str, n_passages: int) -> list[Claim]:
    """The answer's sentences, each with the [n] markers that follow it (a marker written after
    the full stop belongs to the sentence before). core/text.py ends a sentence at a semicolon,
    but the marker after "A；B [1]" cites both clauses (the extractive composer quotes them as
    one sentence): a clause that ends with one, uncited, joins the next when it goes on
    (core/text.clause_goes_on: on the same line, or a hard-wrapped line that opens in lowercase)."""
    raw: list[str] = []
    end = 0  # where the text of the claim before ended
    for a, b in sentence_spans(text):
        for seg in _split_after_markers(text[a:b]):
            at = text.find(seg, a) if seg else a
            gap, a, end = text[end:at], at + len(seg), at + len(seg)
            lead = _LEAD_MARKERS.match(seg)
            if lead and raw:
                raw[-1] += " " + lead.group(0).strip()
                seg = seg[lead.end() :]
            uncited = bool(raw) and not parse_markers(raw[-1], n_passages)[0]
            if seg.strip() and uncited and clause_goes_on(raw[-1], gap + seg[: len(seg) - len(seg.lstrip())],
                                                          seg.lstrip()):
                raw[-1] += (" " if raw[-1].endswith(";") else "") + seg.strip()
            elif seg.strip():
                raw.append(seg.strip())
            elif lead and not raw:
                raw.append(lead.group(0).strip())
    return [Claim(r, parse_markers(r, n_passages)[0], " ".join(_ANY_MARKER.sub("", r).split())) for r in raw]


class Checker:
    """Checks claims against one answer's prompt passages (passage sentence vectors cached)."""

    def __init__(self, passages: Sequence[Passage], embedder: Embedder | None, settings: Settings) -> None:
        self.passages = {p.n: p for p in passages}
        self.order = [p.n for p in passages]
        self.embedder = embedder
        self.a = settings.answer
        self.terms = {p.n: set(tokenize(f"{p.hit.record.title} {p.text}")) for p in passages}
        self.numbers = {p.n: set(_NUMBER.findall(p.text + " " + p.hit.record.title)) for p in passages}
        self._vecs: dict[int, np.ndarray] = {}

    def _passage_vecs(self, n: int) -> np.ndarray:
        if n not in self._vecs:
            text = self.passages[n].text
            sents = [text[a:b] for a, b in sentence_spans(text)] or [text]
            self._vecs[n] = self.embedder.embed(sents) if self.embedder else np.zeros((0, 1))
        return self._vecs[n]

    def _similarity(self, claim: Claim, n: int, cvec: np.ndarray | None) -> float | None:
        if cvec is None or not english(self.passages[n].text):
            return None
        vecs = self._passage_vecs(n)
        return float(np.max(vecs @ cvec)) if len(vecs) else None

    def support(self, claim: Claim, n: int, cvec: np.ndarray | None) -> tuple[bool, float, float | None, str]:
        if n not in self.passages:
            return False, 0.0, None, f"cites [{n}], which was not in the prompt"
        terms = claim.terms
        overlap = len(terms & self.terms[n]) / (len(terms) or 1)
        missing = [x for x in _NUMBER.findall(claim.body) if x not in self.numbers[n]]
        if missing:
            return False, overlap, None, f"number {missing[0]} not in passage [{n}]"
        if overlap >= self.a.check_min_overlap:
            return True, overlap, None, "overlap"
        sim = self._similarity(claim, n, cvec) if overlap >= self.a.check_soft_overlap else None
        if sim is not None and sim >= self.a.check_min_similarity:
            return True, overlap, sim, "similar"
        return False, overlap, sim, f"not supported by passage [{n}]"

    def together(self, claim: Claim) -> Verdict | None:
        """A claim read as one across citation markers ("X [1] y [3]": an extractive answer's
        sentence that ends without a stop, then one that opens in lower case) is supported when
        each part is supported by the passage its own marker names. A claim whose markers all
        stand at its end is not: it is checked whole, so a sentence that joins words of two
        passages into a statement neither makes still fails. None when it does not apply."""
        parts = _cited_parts(claim.text, max(self.order, default=0))
        if len(parts) < 2:
            return None
        overlaps = []
        for body, cited in parts:
            part = Claim(body, cited, " ".join(body.split()))  # _cited_parts left no marker in it
            if len(part.terms) < MIN_TERMS:
                return None
            found = [r for r in (self.support(part, n, None) for n in cited) if r[0]]
            if not found:
                return None
            overlaps.append(max(r[1] for r in found))
        return Verdict(claim, True, "each part by its own citation", parts[0][1][0], min(overlaps))

    def check(self, claim: Claim) -> Verdict:
        if len(claim.terms) < MIN_TERMS:
            return Verdict(claim, False, TOO_SHORT)
        cvec = None
        if self.embedder is not None and english(claim.body):
            cvec = self.embedder.embed([claim.body])[0]
        first: Verdict | None = None
        for n in claim.cited:
            ok, ov, sim, why = self.support(claim, n, cvec)
            if ok:
                return Verdict(claim, True, why, n, ov, sim)
            first = first or Verdict(claim, False, why, n, ov, sim)
        if together := self.together(claim):
            return together
        for n in self.order:  # relevance order: the most relevant supporting passage wins
            if n in claim.cited:
                continue
            ok, ov, sim, _ = self.support(claim, n, cvec)
            if ok:
                body = claim.body.rstrip()
                end = body[-1] if body and body[-1] in ".!?。！？" else ""
                text = f"{body[:-1] if end else body} [{n}]{end}"
                return Verdict(Claim(text, [n], claim.body), True, "recited", n, ov, sim)
        if first is not None:
            return first
        return Verdict(claim, False, "cites no passage, and no passage supports it")


def check_answer(
    text: str, passages: Sequence[Passage], embedder: Embedder | None, settings: Settings
) -> CheckResult:
    """Check a whole answer (the non-streaming form of `ClaimStream`)."""
    stream = ClaimStream(passages, embedder, settings)
    stream.feed(text)
    stream.finish()
    return stream.result


class ClaimStream:
    """Feed the answer's tokens; get back the text of the claims that passed, as they complete."""

    def __init__(self, passages: Sequence[Passage], embedder: Embedder | None, settings: Settings) -> None:
        self.checker = Checker(passages, embedder, settings)
        self.n_passages = max(self.checker.order, default=0)
        self.buf = ""
        self.done = 0
        self.result = CheckResult()
        self.seen: set[str] = set()

    def _emit(self, claims: list[Claim]) -> str:
        out = []
        for c in claims:
            if not self.result.verdicts and not self.result.declined and declined(c.body):
                self.result.declined = True
            if self.result.declined:
                continue
            key = " ".join(tokenize(c.body))
            if c.body.rstrip().endswith(("?", "？")):  # an echoed question answers nothing
                v = Verdict(c, False, A_QUESTION)
            elif key in self.seen:  # small models loop: "X [1]. X [1]. X [1]."
                v = Verdict(c, False, A_REPEAT)
            else:
                v = self.checker.check(c)
            if v.kept:
                self.seen.add(key)
                out.append(("" if not self.result.kept else " ") + v.claim.text)
            self.result.verdicts.append(v)
        return "".join(out)

    def feed(self, token: str) -> str:
        self.buf += token
        claims = split_claims(self.buf, self.n_passages)
        if len(claims) < 2:
            return ""
        last = claims[-1].text
        if last.startswith("[") or not re.search(r"[^\[\]\d\s,;\-–]", last):  # markers may still be coming
            return ""
        ready = claims[self.done : len(claims) - 1]
        self.done = len(claims) - 1
        return self._emit(ready)

    def finish(self) -> str:
        claims = split_claims(self.buf, self.n_passages)
        ready = claims[self.done :]
        self.done = len(claims)
        return self._emit(ready)

    def retryable(self) -> list[Verdict]:
        """The dropped claims that were checked and found unsupported (not too short, an echoed
        question or a repeat), in answer order: a search of their own may find their passage."""
        if self.result.declined:
            return []
        return [v for v in self.result.verdicts
                if not v.kept and v.reason not in (TOO_SHORT, A_QUESTION, A_REPEAT)]

    def recover(self, dropped: Verdict, found: Verdict) -> str:
        """Keep a dropped claim as `found` (supported by a passage searched for it): it moves to
        the end of the answer, where it is streamed after the claims already shown, so the
        streamed text and the checked answer stay the same. The text to stream."""
        lead = " " if self.result.kept else ""
        self.result.verdicts.remove(dropped)
        self.result.verdicts.append(found)
        self.seen.add(" ".join(tokenize(found.claim.body)))
        return lead + found.claim.text
