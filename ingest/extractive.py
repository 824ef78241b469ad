"""Extractive summaries: the sentences most central to a text or to a cluster of texts,
picked with the embedder the index already has loaded, so they cost no LLM call.

Each candidate sentence (core.text.sentence_spans: headings, table rows, code fences and
fragments of fewer than MIN_WORDS words left out) is embedded once per process; the
summary takes, by maximal marginal relevance, the sentences closest to the centroid (the
children's vectors where the caller has them, else the mean of the sentence vectors) and
least like those already taken, skips near-duplicates, stops at the token budget, and
returns them in reading order. Scores are rounded before comparing, so the last-bit
differences between embedding batches cannot change the pick: the same texts give the same
summary."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from core.lang import approx_tokens, cjk_count
from core.models import TextEncoder
from core.text import sentence_spans
from ingest.llm_text import truncate

VERSION = "central-1"  # part of every cache key: a change to the selection re-summarises
MMR_LAMBDA = 0.7  # weight of closeness to the centroid against likeness to sentences already taken
DUPLICATE = 0.92  # a sentence at least this close to one already taken is left out
MIN_WORDS = 4  # shorter fragments ("Coffee 3", "See below.") are not summary sentences
MIN_CUT = 16  # tokens a sentence cut to fit a tiny budget keeps (a word fragment summarises nothing)
_SKIP = re.compile(r"^\s*(?:#|\||```|~~~|!\[|<)")  # headings, table rows, code fences, images, markup


def words(text: str) -> int:
    """Words in mixed text: whitespace-separated runs, plus one per two CJK characters."""
    return len(text.split()) + cjk_count(text) // 2


def candidates(texts: Sequence[str]) -> list[tuple[int, int, str]]:
    """(text number, sentence number, sentence) for every sentence that could summarise,
    each distinct sentence once (the first place it occurs)."""
    out: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for i, t in enumerate(texts):
        for j, (a, b) in enumerate(sentence_spans(t)):
            s = " ".join(t[a:b].split())
            key = re.sub(r"\W+", " ", s.lower()).strip()
            if not key or key in seen or _SKIP.match(s) or words(s) < MIN_WORDS:
                continue
            seen.add(key)
            out.append((i, j, s))
    return out


def too_short(text: str, budget: int) -> bool:
    """Whether an extractive summary of `text` would be `text` itself (it fits the budget, or
    has fewer than two sentences that could summarise it): nothing new to index."""
    return approx_tokens(text) <= budget or len(candidates([text])) < 2


class Extractor:
    """Extractive summaries with one embedder; sentence vectors are kept for the process,
    so a sentence met again (a higher RAPTOR level, multi-representation then RAPTOR) is
    not embedded again."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.vecs: dict[str, np.ndarray] = {}
        self.embedded = 0  # sentences embedded so far

    @property
    def name(self) -> str:
        return str(self.encoder.name)

    def vectors(self, sents: list[str]) -> np.ndarray:
        todo = [s for s in dict.fromkeys(sents) if s not in self.vecs]
        if todo:
            for s, v in zip(todo, self.encoder.embed(todo), strict=True):
                self.vecs[s] = np.asarray(v, dtype=np.float32)
            self.embedded += len(todo)
        return np.stack([self.vecs[s] for s in sents])

    def summary(self, texts: Sequence[str], budget: int, centroid: np.ndarray | None = None) -> str:
        """The most central sentences of `texts` within `budget` approximate tokens, in reading
        order; "" when the texts have no sentence to offer."""
        cands = candidates(texts)
        if not cands:
            return ""
        sents = [s for _, _, s in cands]
        v = self.vectors(sents)
        c = v.mean(axis=0) if centroid is None else np.asarray(centroid, dtype=np.float32)
        c = c / (np.linalg.norm(c) + 1e-12)
        rel = np.round(v @ c, 4)
        sim = np.round(v @ v.T, 4)
        picked = pick(rel, sim, [approx_tokens(s) for s in sents], budget)
        if not picked:  # even the most central sentence is over the budget: cut it
            return truncate(sents[int(np.argmax(rel))], max(budget, MIN_CUT))
        return " ".join(sents[i] for i in sorted(picked, key=lambda i: cands[i][:2]))


def pick(rel: np.ndarray, sim: np.ndarray, tokens: list[int], budget: int) -> list[int]:
    """Maximal marginal relevance within a token budget: indexes in the order taken. Ties go
    to the earlier sentence; near-duplicates of a taken sentence and sentences that no longer
    fit are passed over."""
    n = len(rel)
    left = list(range(n))
    most_like = np.full(n, -1.0)  # each sentence's highest similarity to a taken one
    out: list[int] = []
    used = 0
    while left:
        score = [MMR_LAMBDA * rel[i] - (1 - MMR_LAMBDA) * max(most_like[i], 0.0) for i in left]
        best = left[int(np.argmax(np.round(score, 4)))]  # argmax: the first of equal scores
        left.remove(best)
        if most_like[best] >= DUPLICATE or used + tokens[best] > budget:
            continue
        out.append(best)
        used += tokens[best]
        most_like = np.maximum(most_like, sim[best])
    return out
