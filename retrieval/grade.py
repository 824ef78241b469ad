"""Grading the retrieved passages, abstention, and corrective retrieval (CRAG-style).

Evidence is measured for the ORIGINAL (standalone) question only: LLM-written variants, HyDE
passages and step-back questions can lift similarities to passages that do not answer it.
Per passage, two cheap features:
- dense: cosine between the question's MiniLM vector and the passage's stored vector. MiniLM is
  English-only, so its weight shrinks with the question's CJK share (a Chinese question's
  cosines say little, see retrieval/rerank.py);
- coverage: the share of the question's terms (core.keyword.tokenize: stemmed English words,
  jieba words; question words such as 什么 / "how many" left out) that occur in the passage or
  its heading, each term weighted by its BM25 idf over the index, so the rare terms that say
  what the question is about count most.
support = w * dense + (1 - w) * coverage, w the rule's dense weight (scaled down by the
question's CJK share unless the text is Chinese too, `dense_weight`), times (1 - absent) where
the rule's absent_gate is on (absent: the idf-weighted share of the question's terms that no
record in the index holds: a question about a name the corpus never mentions). A Chinese
question that asks a number in a unit (多少岁, 几层, 多高, 哪一年: retrieval/quantity.py) is
supported by no Chinese passage that states no number in that unit (answer.quantity_check). A
passage passes when its support reaches the rule's min_score, and the question is answered when
one of the top answer.abstain_top passages passes. Below that, down to the rule's hedge_score,
it is answered but marked as weakly supported (`hedgeable`): questions asked in other words
than the passages' look like unanswerable ones to these features (README, Asking questions).
The rule depends on the kind of question (`question_kind`: same script as the corpus, Chinese
of Chinese, or crosslingual), because the same support means less where question and text
share fewer words (answer.abstain). The coarse stage's score is reported but not used: it is a
z-score within the pool, so it ranks passages but cannot say "none is relevant".

When none passes and answer.corrective is on, retrieval runs once more with a keyword-only
version of the question (and, with a capable LLM, a step-back rewrite: one LLM call); the
retry's passages are graded against the original question again, so a retry can only help by
finding passages that answer it. Then the caller abstains."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.index import Index
from core.keyword import tokenize
from core.lang import cjk_share
from core.llmcall import LLMCaller
from core.settings import AbstainRule, Settings
from core.text import sentence_spans
from core.tokens import QUESTION_WORDS
from core.types import Hit, TraceEntry
from retrieval.crosslingual import Units, covered, credit, mismatch, weighted_units
from retrieval.quantity import asked_units, states_quantity
from retrieval.state import QueryState, Search
from retrieval.translate import step_back

log = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Below this many records a term's absence is chance, not a sign the corpus never covers what
# the question asks (term_stats).
ABSENT_MIN_RECORDS = 50


@dataclass
class Evidence:
    """The original question's evidence over the top passages."""

    support: float  # the deciding passage's: the one furthest above (or least below) its rule's min_score
    dense: float  # best cosine (whatever its weight)
    coverage: float  # best query-term coverage
    dense_weight: float
    cjk: float
    kind: str = "same"
    min_score: float = 0.0
    coarse: float | None = None
    per_passage: list[dict[str, Any]] = field(default_factory=list)
    passing: list[str] = field(default_factory=list)  # ids of the passages that pass
    absent: float = 0.0  # idf-weighted share of the question's terms found nowhere in the index
    absent_gate: bool = False
    # The kind whose rule judged the deciding passage (`passage_kind`): min_score, dense_weight
    # and absent_gate above are that rule's, and support is that passage's.
    decided_by: str = "same"
    # The units the question asks a number of (retrieval/quantity.py; () when it asks none or
    # answer.quantity_check is off), and whether any top passage in its script states one
    # (True when none is asked, or no top passage is in its script: none was checked).
    units: tuple[str, ...] = ()
    quantity_stated: bool = True
    # The best passage's support minus its rule's hedge_score (>= 0: a weakly supported answer
    # may be given, `hedgeable`); None when no top passage's rule has a hedge floor.
    hedge_margin: float | None = None

    @property
    def margin(self) -> float:
        """How far the deciding passage's support is above its rule's min_score (below: < 0)."""
        return self.support - self.min_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "support": round(self.support, 4),
            "dense": round(self.dense, 4),
            "coverage": round(self.coverage, 4),
            "dense_weight": round(self.dense_weight, 3),
            "cjk_share": round(self.cjk, 3),
            "kind": self.kind,
            "min_score": self.min_score,
            "absent": round(self.absent, 4),
            "absent_gate": self.absent_gate,
            "decided_by": self.decided_by,
            **({"asks_units": list(self.units), "quantity_stated": self.quantity_stated}
               if self.units else {}),
            **({} if self.hedge_margin is None else {"hedge_margin": round(self.hedge_margin, 4)}),
            "coarse": self.coarse,
            "passing": len(self.passing),
            "passages": self.per_passage,
        }


def question_terms(question: str) -> list[str]:
    return sorted({t for t in tokenize(question) if t not in QUESTION_WORDS})


# A word that names something: letters with digits ("H100", "GPT-4", "BM25"), a capital after
# the first letter ("FlashAttention", "VRAM"), or a capitalised word that does not start the
# sentence ("Milvus", "Gemini").
_NAME = re.compile(r"[A-Za-z]*\d[\w.-]*[A-Za-z][\w.-]*|[A-Za-z]+\d[\w.-]*|[A-Za-z]+[A-Z][\w.-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?。！？]\s+)[\"'(]*$")


def name_terms(question: str) -> set[str]:
    """The terms of the question's English words that name something (_NAME, or capitalised
    inside a sentence): the ones whose absence from the whole index says the corpus does not
    cover the topic. A common English word may simply be phrased otherwise (or be English in a
    question of Chinese text)."""
    out: set[str] = set()
    for m in re.finditer(r"[A-Za-z][\w.'-]*", question):
        w = m.group(0).rstrip(".'-")
        named = _NAME.fullmatch(w) is not None
        if not named and w[:1].isupper() and not _SENTENCE_START.search(question[: m.start()]):
            named = True
        if named:
            out.update(tokenize(w))
    return out


def term_stats(
    index: Index, terms: list[str], names: set[str] | None = None, held: Container[str] = ()
) -> tuple[dict[str, float], float]:
    """(idf, absent). idf: each term's BM25 idf over the whole index (a term found nowhere gets
    the highest: a question whose rare terms no passage has is not answered by the common ones
    it shares). absent: the idf-weighted share of the terms no record holds (0 without a
    keyword index to count them in). With `names` (name_terms), a Latin-script term counts only
    when it is one of them; Chinese terms always count, a single character too: the unit of
    "多少斤" / "多少尺" / "多少户" is what an unanswerable Chinese question often asks for, and
    excusing characters the corpus uses only inside words (斤 in 斤两) measured worse (docs/MEASUREMENTS.md).
    `held`: terms the corpus holds in translation, which never count (`evidence` passes a
    Chinese question's words whose English translations the corpus uses, for the passages in
    the other script). Below ABSENT_MIN_RECORDS
    records nothing counts: that a handful of notes never use 用 or
    应该 as a word of their own ("有什么用", "绿茶应该怎么保存？") is chance."""
    kw = index.keyword
    try:
        dfs = kw.doc_freqs(terms)
    except Exception:  # no keyword index: plain coverage
        return {t: 1.0 for t in terms}, 0.0
    n = max(len(kw.ids or []), 1)
    idf = {t: float(np.log(1 + (n - df + 0.5) / (df + 0.5))) for t, df in dfs.items()}
    total = sum(idf.values())
    if n < ABSENT_MIN_RECORDS or not total:
        return idf, 0.0

    def counts(t: str) -> bool:
        return t not in held and (names is None or t in names or cjk_share(t) > 0)

    return idf, sum(idf[t] for t, df in dfs.items() if df == 0 and counts(t)) / total


def units_of(idf: dict[str, float], groups: Mapping[str, Sequence[str]] | None = None,
             extra_idf: dict[str, float] | None = None) -> Units:
    """Every question term a unit of its own; with `groups` (an English question's translations,
    retrieval/crosslingual.py), an English word and its Chinese words are one unit (`extra_idf`:
    the idf of those words), weighted by its best idf."""
    return weighted_units({**(extra_idf or {}), **idf}, groups)


def own_groups(groups: Mapping[str, Sequence[str]] | None, idf: Mapping[str, float]) -> dict[str, list[str]]:
    """The translations of the question's own terms only: "long" of "How long ..." is a question
    word (`question_terms` leaves it out), and its translation 长 must not count in its place."""
    return {k: list(ws) for k, ws in (groups or {}).items() if all(t in idf for t in k.split())}


def coverage(units: Units, hit: Hit) -> float:
    """The idf-weighted share of the question's terms that occur in the passage or its heading."""
    terms = set(tokenize(f"{hit.record.title} {hit.record.text}"))
    return covered(units, credit(terms.__contains__))


def cosines(index: Index, hits: list[Hit], query_vector: np.ndarray) -> list[float]:
    """The question's cosine with each hit's stored vector (a window's own text is embedded when
    its id has no stored vector)."""
    q = np.asarray(query_vector, dtype=np.float32)
    q = q / (np.linalg.norm(q) or 1.0)
    stored = index.vectors.get_embeddings([h.record.id for h in hits]) if hits else {}
    missing = [h for h in hits if h.record.id not in stored]
    if missing:
        vecs = index.embedder.embed([index.settings.embedding.text_of(h.record) for h in missing])
        stored = {**stored, **{h.record.id: v for h, v in zip(missing, vecs, strict=True)}}
    out = []
    for h in hits:
        v = np.asarray(stored[h.record.id], dtype=np.float32)
        out.append(float(np.dot(q, v) / (np.linalg.norm(v) or 1.0)))
    return out


@functools.lru_cache(maxsize=64)
def _sentences(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """A passage's sentences with their tokens, split and tokenised once per passage text:
    `sentence_coverage` and `quantity_cover` read the same top passages."""
    return tuple((text[a:b], frozenset(tokenize(text[a:b]))) for a, b in sentence_spans(text))


def sentence_coverage(units: Units, hit: Hit) -> float:
    """The best single sentence's idf-weighted coverage, a heading term counting half: an answer
    has the question's terms together in one sentence, an on-topic question the corpus does not
    answer usually finds them scattered."""
    head = set(tokenize(hit.record.title))
    best = 0.0
    for _, terms in _sentences(hit.record.text):
        best = max(best, covered(units, credit(terms.__contains__, head)))
    return best


def quantity_cover(units: Units, text: str, asked: tuple[str, ...]) -> float:
    """The best idf-weighted coverage of the question's terms by a sentence of `text` that
    states a number in one of the `asked` units (retrieval/quantity.py); -1 when none states
    one. The number that answers "哪一天宣布辞职" sits beside 辞职, not in a dateline."""
    best = -1.0
    for sent, terms in _sentences(text):
        if states_quantity(sent, asked):
            best = max(best, covered(units, credit(terms.__contains__)))
    return best


KINDS = ("same", "cjk", "crosslingual")


def question_kind(question: str, index: Index, settings: Settings) -> str:
    """"crosslingual" when the question's script differs from the corpus's
    (retrieval/crosslingual.py), "cjk" for a Chinese question of Chinese text, else "same"."""
    try:
        if mismatch(question, index, settings) is not None:
            return "crosslingual"
    except Exception:  # no keyword index to measure the corpus by: judge by the question alone
        pass
    return "cjk" if cjk_share(question) >= 0.5 else "same"


def rule(kind: str, settings: Settings) -> AbstainRule:
    """The rule for a kind of question: answer.abstain[kind], its dense weight and min_score
    replaced by answer.abstain_dense_weight / answer.min_score when those are set."""
    a = settings.answer
    r = a.abstain.get(kind) or a.abstain.get("same") or AbstainRule(min_score=0.5)
    w = r.dense_weight if a.abstain_dense_weight is None else a.abstain_dense_weight
    t = r.min_score if a.min_score is None else a.min_score
    # One threshold set for every kind is a plain answer-or-refuse line: no hedge floor under it.
    hedge = r.hedge_score if a.hedge and a.min_score is None and a.abstain_dense_weight is None else None
    return AbstainRule(min_score=t, dense_weight=w, absent_gate=r.absent_gate,
                       hedge_score=None if hedge is None else min(hedge, t))


def dense_weight(r: AbstainRule, kind: str, cjk: float) -> float:
    """The cosine's weight for a question: the rule's, scaled down by the question's CJK share
    unless the text is Chinese too (kind "cjk"). MiniLM's vocabulary holds Chinese characters, so
    a Chinese question's cosine to Chinese text still measures how close they are (with the
    absent gate it separated answerable Chinese questions on dev and test, README); to English
    text it measures nothing."""
    return r.dense_weight if kind == "cjk" else r.dense_weight * (1.0 - cjk)


def support(dense: float, coverage: float, absent: float, w: float, gate: bool,
            same_script: bool = False, quantity: bool | None = None) -> float:
    """One passage's support (module docstring); eval/answers.py replays it. A passage in the
    question's own script (`same_script`) that holds none of its terms, words or bigrams,
    supports nothing, whatever its cosine: MiniLM's cosine of a Chinese question to any Chinese
    text is 0.4-0.5, and "蒙娜丽莎是谁画的？" was answered from tea notes. Across scripts (a
    Chinese question of English text) terms cannot meet, and the cosine is all there is.
    `quantity` False: the question asks a number in a unit the passage never states one in
    ("赤兔马活了多少岁？" and a passage on 赤兔马 with no age); None: not checked."""
    if quantity is False or (same_script and coverage <= 0.0):
        return 0.0
    s = w * max(dense, 0.0) + (1 - w) * coverage
    return s * (1.0 - absent) if gate else s


def passage_kind(kind: str, same: bool) -> str:
    """The kind whose rule judges one passage: the question's, except that a passage in the
    other script (a Chinese text among English ones, for an English question) is judged as
    crosslingual, since only the question's translations can meet its words. The question's
    kind comes from the corpus as a whole, which in a mixed folder is mostly in one script."""
    return kind if same or kind == "crosslingual" else "crosslingual"


def same_script(question_cjk: float, text: str) -> bool:
    """Whether a passage is written in the question's script (both mostly CJK, or both not)."""
    return (question_cjk >= 0.5) == (cjk_share(text[:2000]) >= 0.5)


def evidence(
    question: str, hits: list[Hit], index: Index, query_vector: np.ndarray | None, settings: Settings,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> Evidence:
    """The original question's support over its top passages. `groups`: the Chinese words its
    BM25 query added for each English key (an English question of Chinese text): a passage
    that says 损失 covers "loss"."""
    a = settings.answer
    top = hits[: max(1, a.abstain_top)]
    cjk = cjk_share(question)
    kind = question_kind(question, index, settings)
    r = rule(kind, settings)
    w, min_score = dense_weight(r, kind, cjk), r.min_score
    if not top:
        return Evidence(0.0, 0.0, 0.0, w, cjk, kind, min_score, absent_gate=r.absent_gate, decided_by=kind)
    qv = query_vector if query_vector is not None else index.embedder.embed([question])[0]
    cos = cosines(index, top, qv)
    terms, names = question_terms(question), name_terms(question)
    asked = asked_units(question) if a.quantity_check else ()
    idf, absent = term_stats(index, terms, names)
    absent_across = absent  # the share for a passage in the other script (below)
    extra: dict[str, float] = {}
    groups = own_groups(groups, idf)
    if groups:
        words = sorted({t for ws in groups.values() for w in ws for t in tokenize(w)} - set(idf))
        extra, _ = term_stats(index, words)
        # For a passage in the other script, a Chinese term the corpus holds in translation is
        # not absent (the translations are words of the corpus): 咖啡 is nowhere in English
        # notes, "coffee" everywhere. A Chinese passage keeps the plain share: in a folder half
        # English, half Chinese, "孙坚的古锭刀有多重？" had 多重 excused by "multiple" in the
        # English half and was answered from the novel. Not for an English question's names
        # that the dictionary romanises ("Zhuge Liang" -> 诸葛亮): they kept the gate on
        # zh-prose, and excusing them answered five more English test questions of the novel,
        # none of them right.
        held = {p for k in groups for p in k.split() if cjk_share(p) > 0}
        if held:
            _, absent_across = term_stats(index, terms, names, held=held)
    units = units_of(idf, groups, extra)
    rows: list[dict[str, Any]] = []
    passing: list[str] = []
    # margin, support, kind, rule, dense weight, absent share of the deciding passage
    best: tuple[float, float, str, AbstainRule, float, float] | None = None
    covs: list[float] = []
    hedges: list[float] = []  # each passage's support minus its rule's hedge floor
    for h, c in zip(top, cos, strict=True):
        cov = coverage(units, h)
        sc = sentence_coverage(units, h)
        same = same_script(cjk, h.record.text)
        kp = passage_kind(kind, same)
        rp = r if kp == kind else rule(kp, settings)
        wp = dense_weight(rp, kp, cjk)
        ap = absent if same else absent_across
        # Only a passage in the question's script can state the number in the unit it asks
        # for (an English passage says "26 years old", not 二十六岁): across scripts, unchecked.
        near = quantity_cover(units, h.record.text, asked) if asked and same else None
        qty = None if near is None else near >= a.quantity_near
        s = support(c, cov, ap, wp, rp.absent_gate, same, qty)
        rows.append(
            {
                "id": h.record.id,
                "dense": round(c, 4),
                "coverage": round(cov, 4),
                "sentence_coverage": round(sc, 4),
                "same_script": same,
                "kind": kp,
                "absent": round(ap, 4),
                **({} if near is None else {"quantity": qty, "quantity_cover": round(near, 4)}),
                "support": round(s, 4),
            }
        )
        covs.append(cov)
        if rp.hedge_score is not None:
            hedges.append(s - rp.hedge_score)
        if best is None or s - rp.min_score > best[0]:
            best = (s - rp.min_score, s, kp, rp, wp, ap)
        if s >= rp.min_score:
            passing.append(h.record.id)
    assert best is not None
    _, top_support, decided, rd, wd, absent = best
    coarse = [h.scores["coarse"] for h in top if "coarse" in h.scores]
    return Evidence(
        top_support,
        max(cos),
        max(covs),
        wd,
        cjk,
        kind,
        rd.min_score,
        round(max(coarse), 4) if coarse else None,
        rows,
        passing,
        absent,
        rd.absent_gate,
        decided,
        asked,
        # stated by some passage in the question's script, or none was checked (none in it)
        any(p.get("quantity") is True for p in rows) or not any("quantity" in p for p in rows),
        max(hedges, default=None),
    )


def answerable(ev: Evidence, settings: Settings) -> bool:
    """The abstain decision: some top passage's support reaches its rule's min_score (the
    deciding passage is the one furthest above it)."""
    return ev.support >= ev.min_score


def hedgeable(ev: Evidence, settings: Settings) -> bool:
    """Below min_score, whether a weakly supported answer is given instead of a refusal: some
    top passage's support reaches its rule's hedge_score (answer.abstain; off with answer.hedge
    false or a single answer.min_score)."""
    return not answerable(ev, settings) and ev.hedge_margin is not None and ev.hedge_margin >= 0


def keyword_query(question: str) -> str:
    """The question's content words only ("How long should coffee steep?" -> "long coffee steep"):
    filler words pull dense search toward other questions."""
    words = []
    for w in _WORD.findall(question):
        toks = tokenize(w)
        if cjk_share(w) > 0.5:
            words.extend(toks)
        elif toks:
            words.append(w)
    return " ".join(words)


def _retry(state: QueryState, label: str, query: str, again: Search) -> tuple[list[Hit], Evidence] | None:
    """One more search with `query`, graded against the original question (a trace entry)."""
    t0 = time.perf_counter()
    try:
        res = again(query)
    except Exception as e:  # a failed retry leaves the abstention standing
        log.warning("corrective retry %s failed: %s", label, e)
        state.trace.append(
            TraceEntry(
                "corrective",
                (time.perf_counter() - t0) * 1000,
                {"step": label, "query": query, "error": f"{type(e).__name__}: {e}"},
            )
        )
        return None
    ev = evidence(state.question, res.hits, state.index, state.query_vector, state.settings,
                  state.keyword_groups)
    state.trace.append(
        TraceEntry(
            "corrective",
            (time.perf_counter() - t0) * 1000,
            {
                "step": label,
                "query": query,
                "hits": len(res.hits),
                **ev.to_dict(),
                "answerable": answerable(ev, state.settings),
            },
        )
    )
    return res.hits, ev


def corrective(
    state: QueryState, ev: Evidence, again: Search, capable: bool = False
) -> tuple[list[Hit], Evidence]:
    """Retry retrieval (`again`) when no passage passes: with the question's content words, then
    (a capable model only) with a step-back rewrite; the best-supported result (the original
    when no retry does better). Each step is a `corrective` trace entry."""
    settings, question, hits = state.settings, state.question, state.hits
    if answerable(ev, settings) or not settings.answer.corrective or not hits:
        return hits, ev
    best = (hits, ev)
    kq = keyword_query(question)
    if kq and kq.casefold() != question.casefold():
        got = _retry(state, "keywords", kq, again)
        if got and got[1].margin > best[1].margin:
            best = got
    if not answerable(best[1], settings) and capable and state.llm is not None:
        p = step_back(question, settings, LLMCaller(state.llm, None, 1, optional=True))
        if p.fallback:
            state.trace.append(TraceEntry("corrective", 0.0, {"step": "step-back", "fallback": p.notes}))
        else:
            got = _retry(state, "step-back", p.value, again)
            if got and got[1].margin > best[1].margin:
                best = got
    return best
