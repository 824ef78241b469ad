"""Query translation: what to search for, given the question and a strategy.

    none         the question itself
    multi-query  the LLM writes `translate.n_queries` rewordings in one JSON-constrained
                 call; the results of all are merged as a union (deduplicated by chunk id,
                 ordered by the best per-query score)
    fusion       the same queries, merged by reciprocal rank fusion (RAG-Fusion)
    step-back    the LLM writes a more general question; both are searched and the answer
                 prompt labels which passages answer which
    hyde         the LLM writes a short passage that would answer the question; its vector
                 (averaged with the question's when `translate.hyde_average`) searches the
                 dense index, the question itself searches BM25
    decompose    the LLM splits the question into sub-questions; `retrieval.decompose`
                 answers them in order and composes the final answer
    translate    cross-lingual questions (English over Chinese notes, or the reverse,
                 `retrieval.crosslingual.mismatch`): the LLM translates the question into the
                 corpus's language; the translation (first: the reranking stages score with
                 it) and the question are searched and merged by RRF. Scripts that match need
                 no translation (no LLM call). The pipeline runs it by itself when the
                 scripts differ and the LLM is capable (`translate.auto_language`)
    auto         the router (`retrieval.route`) picks one of the above

The pipeline's `route_and_translate` stage (retrieval/pipeline.py) routes the question
(retrieval/route.py) and calls `start`, `run_translation` and `finish` here, which fill a
`Translation`: the queries (`retrieval.state.Query`, each with a role), how to merge their
results, where to search (the routed collection and metadata filter) and what the answer
prompt needs (template, step-back question, sub-questions; built in retrieval/respond.py).
Every LLM output is parsed defensively; on failure the question itself is searched and the
fallback is recorded in the trace. The candidates each query retrieved appear in the
pipeline's `candidates` trace entry, with per-query ranks kept as features.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.index import Index
from core.lang import cjk_share
from core.llm import Message
from core.llmcall import LLMCaller
from core.models import Embedder
from core.settings import Settings
from core.types import TraceEntry
from retrieval.crosslingual import mismatch
from retrieval.parse import Parsed, first_question, parse_list, parse_text, related
from retrieval.route import STRATEGIES, PromptTemplate, Route
from retrieval.state import Plan, Query, Timer

log = logging.getLogger(__name__)

# `translate` is chosen by the question's and the corpus's scripts, not by the router.
CHOICES = (*STRATEGIES, "translate", "auto")
LANG_NAMES = {"zh": "简体中文 (Simplified Chinese)", "en": "English"}


@dataclass
class Translation:
    """What query translation produced for one question."""

    question: str
    strategy: str  # as run: `auto` resolved to what the router chose
    queries: list[Query]
    settings: Settings  # where to search: the routed collection's index
    merge: str = "rrf"  # how the queries' results combine: rrf | union
    where: dict[str, Any] | None = None  # metadata filter (stated in the question / the collection)
    route: Route | None = None
    step_back: str | None = None
    hyde_passage: str | None = None
    sub_questions: list[str] = field(default_factory=list)
    llm_calls: int = 0  # calls made (cache hits excluded)
    cache_hits: int = 0
    fallback: bool = False  # the LLM output was unusable: the question itself is searched
    notes: list[str] = field(default_factory=list)
    target_lang: str | None = None  # translate: the corpus's language ("zh" | "en"); None: scripts match

    @property
    def template(self) -> PromptTemplate | None:
        return self.route.template if self.route else None

    def plan(self) -> Plan:
        """What `retrieval.pipeline.retrieve` searches (with `self.settings`)."""
        return Plan(self.queries, self.where, self.merge)

    def plan_of(self, query: str) -> Plan:
        """One more query (a sub-question, a retry) searched within the routed filter."""
        return Plan([Query(query)], self.where)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "merge": self.merge, "where": self.where,
            "queries": [{"role": q.role, "text": q.text} for q in self.queries],
            "step_back": self.step_back, "hyde_passage": self.hyde_passage,
            "sub_questions": self.sub_questions,
            "llm_calls": self.llm_calls, "cache_hits": self.cache_hits, "fallback": self.fallback,
            "notes": self.notes, "route": self.route.to_dict() if self.route else None,
            "target_lang": self.target_lang,
        }


def check_strategy(strategy: str) -> str:
    s = (strategy or "none").strip().lower().replace("_", "-")
    s = {"rag-fusion": "fusion", "stepback": "step-back", "multiquery": "multi-query"}.get(s, s)
    if s not in CHOICES:
        raise ConfigError(f"Unknown strategy '{strategy}'; choose one of: {', '.join(CHOICES)} "
                          "(--strategy or answer.strategy).")
    return s


def cache_store(settings: Settings, index: Index | None) -> Any:
    """Where LLM replies are cached (the index's key/value table), or None (`translate.cache` off)."""
    if not settings.translate.cache:
        return None
    index = index or Index(settings)
    return index.docs if index.exists() else None


# --- the LLM calls, one per strategy ------------------------------------------------------

Shot = tuple[str, str]  # (user, assistant): a worked example, given as earlier chat turns

_MQ_SHOTS: tuple[tuple[str, list[str]], ...] = (
    ("How do I bake bread?",
     ["steps for baking bread", "bread baking method", "how to make a loaf of bread"]),
    ("When was the Eiffel Tower built?",
     ["Eiffel Tower construction date", "year the Eiffel Tower was completed",
      "history of building the Eiffel Tower"]),
)
_SB_SHOTS: tuple[Shot, ...] = (
    ("Which tent suits a winter trip to Norway?", "What makes a tent suitable for cold weather?"),
    ("Did Ann work at IBM in 1990?", "What is Ann's work history?"),
)
_DEC_SHOTS: tuple[tuple[str, list[str]], ...] = (
    ("Is the Eiffel Tower taller than Big Ben?", ["How tall is the Eiffel Tower?", "How tall is Big Ben?"]),
    ("Which river flows through the capital of Austria?",
     ["What is the capital of Austria?", "Which river flows through Vienna?"]),
)


@dataclass(frozen=True)
class Ask:
    """One kind of query-translation call: its system prompt, the JSON schema the reply must
    follow (None: plain text), a token limit (None: `translate.max_tokens`), worked examples."""

    kind: str  # route, multi-query, step-back, hyde, decompose, translate
    system: str
    schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    shots: tuple[Shot, ...] = ()


def _ask(caller: LLMCaller, ask: Ask, user: str, settings: Settings) -> str:
    """One call: system prompt, worked examples as earlier turns (a 135M model follows those far
    better than instructions), then the question."""
    msgs: list[Message] = [{"role": "system", "content": ask.system}]
    for u, a in ask.shots:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    msgs.append({"role": "user", "content": user})
    t = settings.translate
    return caller.complete(ask.kind, msgs, ask.max_tokens or t.max_tokens, ask.schema, t.temperature)


def _json_shots(key: str, shots: tuple[tuple[str, list[str]], ...], n: int) -> tuple[Shot, ...]:
    return tuple((q, json.dumps({key: items[:n]})) for q, items in shots)


def _string_list_schema(key: str, n_min: int, n_max: int) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: {
        "type": "array", "minItems": n_min, "maxItems": n_max,
        "items": {"type": "string", "minLength": 3, "maxLength": 200}}}}


def variants(question: str, settings: Settings, caller: LLMCaller) -> Parsed:
    """`translate.n_queries` differently worded search queries (one call)."""
    n = max(1, settings.translate.n_queries)
    ask = Ask("multi-query",
              f"You rewrite a question as {n} different search queries with the same meaning: other words, "
              "synonyms, more specific terms. Reply with JSON.",
              _string_list_schema("queries", n, n), shots=_json_shots("queries", _MQ_SHOTS, n))
    raw = _ask(caller, ask, question, settings)
    return parse_list(raw, ("queries", "query", "questions"), n, [], exclude=(question,), related_to=question)


def step_back(question: str, settings: Settings, caller: LLMCaller) -> Parsed:
    """A more general question about the concept behind the question (plain text)."""
    ask = Ask("step-back",
              "You turn a specific question into a broader, more general step-back question about the "
              "topic or principle behind it. Reply with the question only.",
              max_tokens=48, shots=_SB_SHOTS)
    raw = _ask(caller, ask, question, settings)
    p = parse_text(raw, "", min_chars=8, max_chars=300, keys=("question", "step_back"))
    if not p.fallback:
        p.value = first_question(p.value)
        if _same(p.value, question):
            return Parsed("", True, p.notes + ["same as the question; fell back"])
        if not related(p.value, question):
            return Parsed("", True, p.notes + [f"unrelated to the question ({p.value!r}); fell back"])
    return p


def _same(a: str, b: str) -> bool:
    return " ".join(re.findall(r"\w+", a.casefold())) == " ".join(re.findall(r"\w+", b.casefold()))


def hyde(question: str, settings: Settings, caller: LLMCaller) -> Parsed:
    ask = Ask("hyde",
              "Write a short passage (two or three sentences) that answers the question, as it might appear "
              "in a reference document. Write only the passage.",
              max_tokens=min(settings.translate.max_tokens, 96))
    raw = _ask(caller, ask, question, settings)
    p = parse_text(raw, "", min_chars=20, max_chars=800, keys=("passage", "answer", "text"))
    if not p.fallback and not related(p.value, question):
        return Parsed("", True, p.notes + ["passage unrelated to the question; fell back"])
    return p


def sub_questions(question: str, settings: Settings, caller: LLMCaller) -> Parsed:
    m = max(1, settings.translate.max_sub_questions)
    ask = Ask("decompose",
              f"You split a question into at most {m} simpler sub-questions that can be answered one after "
              "another; later ones may use earlier answers. Reply with JSON.",
              _string_list_schema("questions", 1, m), shots=_json_shots("questions", _DEC_SHOTS, m))
    raw = _ask(caller, ask, question, settings)
    return parse_list(raw, ("questions", "sub_questions", "subquestions"), m, [], exclude=(question,),
                      related_to=question)


_TR_LABEL = re.compile(
    r"^\s*(?:(?:english|chinese|simplified chinese)?\s*translation|译文|翻译|中文|英文)\s*[:：]\s*", re.I)


def translation(question: str, target: str, settings: Settings, caller: LLMCaller) -> Parsed:
    """The question in the `target` language ("zh" | "en"), plain text (one call). Checked: the
    reply must be written in the target script (CJK share >= 0.3 for Chinese, < 0.1 for English)
    and must not be the question itself."""
    lang = LANG_NAMES.get(target, "English")
    ask = Ask("translate",
              f"You translate a search question into {lang}. Keep technical terms and names accurate. "
              "Reply with the translation only: no explanation, no quotes, no answer to the question.")
    raw = _ask(caller, ask, question, settings)
    s = (raw or "").strip()
    if not s.startswith(("{", "[", "```")):  # the first line; a label before it removed
        s = next((ln for ln in s.splitlines() if ln.strip()), "")
        s = _TR_LABEL.sub("", s)
    p = parse_text(s, "", min_chars=2, max_chars=400, keys=("translation", "question", "text"))
    if p.fallback:
        return p
    share = cjk_share(p.value)
    if target == "zh" and share < 0.3:
        why = f"not Chinese (CJK share {share:.2f} < 0.3: {p.value!r:.80}); fell back"
        return Parsed("", True, p.notes + [why])
    if target != "zh" and share >= 0.1:
        why = f"not English (CJK share {share:.2f} >= 0.1: {p.value!r:.80}); fell back"
        return Parsed("", True, p.notes + [why])
    if _same(p.value, question):
        return Parsed("", True, p.notes + ["same as the question; fell back"])
    return p


def hyde_vector(question: str, passage: str, embedder: Embedder, average: bool) -> np.ndarray:
    vp, vq = embedder.embed([passage, question])
    v = (vp + vq) / 2 if average else vp
    return np.asarray(v / (np.linalg.norm(v) or 1.0), dtype=np.float32)


# --- assembling the queries ---------------------------------------------------------------

def _build(t: Translation, settings: Settings, caller: LLMCaller, embedder: Embedder) -> None:
    """Fill `t.queries` (and the strategy's extras) for `t.strategy`; fall back to the question."""
    q, s = t.question, t.strategy
    t.queries = [Query(q)]
    if s == "none":
        return
    p: Parsed
    if s in ("multi-query", "fusion"):
        p = variants(q, settings, caller)
        t.queries += [Query(v, "variant") for v in p.value]
        t.merge = "union" if s == "multi-query" else "rrf"
    elif s == "step-back":
        p = step_back(q, settings, caller)
        if not p.fallback:
            t.step_back = p.value
            t.queries.append(Query(p.value, "step_back"))
    elif s == "hyde":
        p = hyde(q, settings, caller)
        if not p.fallback:
            t.hyde_passage = p.value
            vec = hyde_vector(q, p.value, embedder, settings.translate.hyde_average)
            t.queries = [Query(q, dense=False), Query(p.value, "hyde", vector=vec)]
    elif s == "decompose":
        p = sub_questions(q, settings, caller)
        t.sub_questions = list(p.value)
        t.queries += [Query(v, "sub") for v in p.value]
    elif s == "translate":
        t.merge = "rrf"
        if t.target_lang is None:
            t.notes.append("translate: scripts match; nothing to translate")
            return
        p = translation(q, t.target_lang, settings, caller)
        if not p.fallback:
            # The translation goes first: the reranking stages, the query vector the answer is
            # graded with and the tree walk read `queries[0]` (its text, also as the BM25 query),
            # and only the corpus's language can be compared with the corpus.
            t.queries = [Query(p.value, "translated", keyword_text=p.value), Query(q)]
    else:  # pragma: no cover - check_strategy guards
        raise ConfigError(f"Unknown strategy '{s}'.")
    t.notes += [f"{s}: {n}" for n in p.notes]
    if p.fallback:
        t.fallback = True
        t.notes.append(f"{s}: LLM output unusable; searching the question itself")


def start(question: str, strategy: str, settings: Settings, index: Index | None) -> Translation:
    """An empty Translation for `strategy` (checked); for `translate`, the corpus's language."""
    t = Translation(question, check_strategy(strategy), [Query(question)], settings)
    if t.strategy == "translate":
        t.target_lang = target_language(question, settings, index, t.notes)
    return t


def run_translation(
    t: Translation, settings: Settings, caller: LLMCaller, embedder: Embedder, trace: list[TraceEntry]
) -> None:
    """Write `t`'s queries with its strategy (one LLM call at most); a trace entry."""
    with Timer(trace, "translate") as d:
        _build(t, settings, caller, embedder)
        d.update(strategy=t.strategy, queries=[{"role": x.role, "text": x.text} for x in t.queries],
                 merge=t.merge, fallback=t.fallback, notes=list(t.notes))


def finish(t: Translation, caller: LLMCaller, trace: list[TraceEntry]) -> None:
    """Take the route's settings and filter; the `llm_calls` trace entry (calls, cache hits,
    whether independent calls overlapped)."""
    if t.route is not None:
        t.settings, t.where = t.route.settings, t.route.where
    recs = caller.records
    t.llm_calls, t.cache_hits = caller.calls, sum(1 for r in recs if r.cached)
    made = [r for r in recs if not r.cached]
    overlapped = any(a.start < b.end and b.start < a.end for i, a in enumerate(made) for b in made[i + 1 :])
    trace.append(TraceEntry("llm_calls", sum(r.ms for r in recs),
                            {"calls": t.llm_calls, "cache_hits": t.cache_hits, "concurrent": overlapped,
                             "records": [r.to_dict() for r in recs]}))


def target_language(question: str, settings: Settings, index: Index | None, notes: list[str]) -> str | None:
    """The corpus's language when the question is written in the other script, else None
    (also when the index cannot say: the note tells why)."""
    try:
        mm = mismatch(question, index or Index(settings), settings)
    except Exception as e:  # no keyword index yet, or an unreadable one: nothing to translate into
        notes.append(f"translate: corpus language unknown ({type(e).__name__}: {str(e)[:120]})")
        return None
    return mm.corpus_lang if mm else None
