"""Routing, before query translation:

- logical: structured output picks a collection (each has a name and a description in
  `route.collections`) and, for `--strategy auto`, a strategy. A small model's pick is one
  vote: a collection's score is cosine(question, description) + `route.llm_weight` when the
  LLM chose it, so a 135M model biased to the first option cannot send a question about
  coffee to the machine-learning notes;
- semantic: the question's embedding is compared with example questions of each answer
  prompt template (definition, how-to, comparison, summary, explanation, fact); the nearest template's
  instruction goes into the answer prompt;
- query construction: a file type or document the question names ("in the PDF files",
  "from notes about LangChain") becomes a Chroma `where` filter through structured output.
  The schema only offers values the index holds and the question states; anything else,
  and a filter that matches nothing or that Chroma refuses, is dropped and noted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.index import Index
from core.llm import Message
from core.llmcall import LLMCaller
from core.models import Embedder
from core.settings import CollectionSettings, Settings
from core.types import TraceEntry
from retrieval.parse import extract_json, parse_choice
from retrieval.state import Timer

log = logging.getLogger(__name__)

STRATEGIES = ("none", "multi-query", "fusion", "decompose", "step-back", "hyde")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    instruction: str  # goes into the answer prompt
    examples: tuple[str, ...]  # what questions of this kind look like (embedded once)
    strategy: str  # what `auto` falls back to for this kind of question


TEMPLATES: tuple[PromptTemplate, ...] = (
    PromptTemplate("definition", "The question asks what something is. Start with a one-sentence definition "
                   "taken from the context, then add the most useful detail.",
                   ("What is X?", "What does the term X mean?", "Define X.", "What is meant by X?",
                    "What is a X used for?"), "step-back"),
    PromptTemplate("how-to", "The question asks how to do something. Answer with short numbered steps "
                   "taken from the context.",
                   ("How do I do X?", "How to set up X?", "What are the steps to make X?", "How can I fix X?",
                    "Explain how to use X step by step."), "multi-query"),
    PromptTemplate("comparison", "The question compares things. Describe each side from the context, then "
                   "state the key differences and similarities.",
                   ("What is the difference between X and Y?", "Compare X and Y.",
                    "X versus Y: which is better?",
                    "How does X differ from Y?", "Is X better than Y?"), "decompose"),
    PromptTemplate("summary", "The question asks for an overview. Summarise the main points of the context "
                   "in a few sentences.",
                   ("Summarize X.", "Give me an overview of X.", "What are the main points of X?",
                    "What is this document about?", "Briefly describe the key ideas of X."), "fusion"),
    PromptTemplate("explanation", "The question asks why or how something works. Explain the cause or the "
                   "mechanism from the context, step by step.",
                   ("Why does X happen?", "Explain X.", "What causes X?", "How does X work?",
                    "Why is X important?"), "step-back"),
    PromptTemplate("fact", "Answer the question directly and briefly from the context.",
                   ("When did X happen?", "How many X are there?", "Who made X?", "Which X is used for Y?",
                    "How long does X take?", "How much X should I use?", "What temperature should X be?",
                    "How big should X be?", "Where is X?"), "none"),
)
DEFAULT_TEMPLATE = "fact"
_VECS: dict[tuple[str, str], np.ndarray] = {}  # (embedder, text) -> vector, per process


@dataclass
class Route:
    settings: Settings  # what to search: the chosen collection's index
    strategy: str
    collection: str | None = None
    template: PromptTemplate | None = None
    where: dict[str, Any] | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # collections, templates
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "index_dir": str(self.settings.index_path),
                "strategy": self.strategy,
                "template": self.template.name if self.template else None, "where": self.where,
                "scores": {k: {n: round(v, 4) for n, v in s.items()} for k, s in self.scores.items()},
                "notes": self.notes}


def _vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    todo = [t for t in dict.fromkeys(texts) if (embedder.name, t) not in _VECS]
    if todo:
        for t, v in zip(todo, embedder.embed(todo), strict=True):
            _VECS[(embedder.name, t)] = v
    return np.stack([_VECS[(embedder.name, t)] for t in texts])


def semantic_route(
    qvec: np.ndarray, embedder: Embedder, min_score: float,
) -> tuple[PromptTemplate, dict[str, float]]:
    """The template whose example questions come nearest the question (max cosine)."""
    scores: dict[str, float] = {}
    for t in TEMPLATES:
        scores[t.name] = float((_vectors(embedder, list(t.examples)) @ qvec).max())
    best = max(scores, key=lambda n: scores[n])
    if scores[best] < min_score:
        best = DEFAULT_TEMPLATE
    return next(t for t in TEMPLATES if t.name == best), scores


def collection_settings(settings: Settings, c: CollectionSettings) -> Settings:
    return settings.model_copy(update={"index_dir": Path(c.index_dir)}) if c.index_dir else settings


_ROUTE_PROMPT = (
    "You route a question to the right place. Reply with JSON only.\n{parts}\n"
    "Pick what fits the question best."
)
_STRATEGY_HELP = (
    "Strategies: none (a simple direct question), multi-query (vague wording; search several "
    "rewordings), fusion (broad question; fuse rewordings), decompose (several parts or a "
    "comparison), step-back (needs background first), hyde (short or keyword-like question)."
)


def _choose(question: str, strategy: str, settings: Settings, caller: LLMCaller) -> dict[str, Any]:
    """One structured call choosing the collection (2+ configured) and/or the strategy (auto)."""
    cols = settings.route.collections
    props: dict[str, Any] = {}
    parts: list[str] = []
    if len(cols) >= 2:
        props["collection"] = {"type": "string", "enum": [c.name for c in cols]}
        parts.append("Collections:\n" + "\n".join(f"- {c.name}: {c.description}" for c in cols))
    if strategy == "auto":
        props["strategy"] = {"type": "string", "enum": list(settings.route.strategies)}
        parts.append(_STRATEGY_HELP)
    if not props:
        return {}
    schema = {"type": "object", "properties": props, "required": list(props)}
    raw = caller.complete(
        "route", [{"role": "system", "content": _ROUTE_PROMPT.format(parts="\n".join(parts))},
                  {"role": "user", "content": question}], max_tokens=48, json_schema=schema,
    )
    return {"raw": raw, "fields": list(props)}


def _pick_collection(qvec: np.ndarray, embedder: Embedder, settings: Settings, raw: str,
                     route: Route) -> CollectionSettings | None:
    cols = settings.route.collections
    if not cols:
        return None
    if len(cols) == 1:
        route.notes.append("one collection configured: only the strategy is routed")
        return cols[0]
    names = [c.name for c in cols]
    voted = parse_choice(raw, "collection", names, None)
    route.notes += [f"collection: {n}" for n in voted.notes]
    sims = _vectors(embedder, [f"{c.name}: {c.description}" for c in cols]) @ qvec
    scores = {c.name: float(s) + (settings.route.llm_weight if c.name == voted.value else 0.0)
              for c, s in zip(cols, sims, strict=True)}
    route.scores["collections"] = scores
    route.scores["collection_similarity"] = {c.name: float(s) for c, s in zip(cols, sims, strict=True)}
    best = max(names, key=lambda n: scores[n])
    why = f"LLM chose {voted.value!r}" if voted.value else "LLM gave no valid collection"
    bonus = settings.route.llm_weight
    route.notes.append(f"collection {best!r}: highest score ({why}, +{bonus} for its pick)")
    return cols[names.index(best)]


# --- query construction: stated filters -> Chroma where ------------------------------------------
_FILE_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # label: (phrases in the question, extensions in the index)
    "pdf": (("pdf", "pdfs"), ("pdf",)),
    "markdown": (("markdown", "md"), ("md", "markdown")),
    "html": (("html", "htm", "web page", "web pages", "webpage", "webpages"), ("html", "htm")),
    "text": (("txt", "text file", "text files", "plain text"), ("txt", "text")),
    "word": (("docx", "word document", "word documents", "word file", "word files"), ("docx",)),
    "rst": (("rst", "restructuredtext"), ("rst",)),
}
_DOC_WORDS = {"file", "files", "document", "documents", "doc", "docs", "note", "notes", "pdf", "pdfs", "page",
              "pages", "paper", "papers", "article", "articles", "guide", "guides", "manual", "report",
              "reports", "chapter", "section", "readme", "source", "sources"}
_STOP = {"the", "and", "for", "from", "about", "with", "what", "which", "how", "does", "that", "this", "into"}
_FILTER_PROMPT = """You turn restrictions stated in a question into JSON. Fields:
file_type: the file type the question restricts the search to, or null.
source: a document name the question restricts the search to, or null.
Use null when the question states no restriction.
Examples:
Q: What do the PDF files say about tax? -> {"file_type": "pdf", "source": null}
Q: In the notes about budget, what is the limit? -> {"file_type": null, "source": "budget"}
Q: What is a mortgage? -> {"file_type": null, "source": null}"""


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.casefold())


def _names_document(words: list[str], i: int) -> bool:
    """Word `i` names a document: right before a document word ("the LangChain notes") or
    within two words after one ("notes about LangChain", "the file called budget")."""
    before = words[i + 1] in _DOC_WORDS if i + 1 < len(words) else False
    return before or any(w in _DOC_WORDS for w in words[max(0, i - 3) : i])


def filter_candidates(question: str, paths: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """What the question could be restricting to: file types it names (label -> the index's
    extensions), and words of file names it uses to name a document (word -> paths); a file
    name word used as a topic ("what do the PDFs say about espresso") is not one."""
    words = _words(question)
    q = " " + " ".join(words) + " "
    exts = {Path(p).suffix.lower().lstrip(".") for p in paths}
    types = {}
    for label, (phrases, label_exts) in _FILE_TYPES.items():
        present = sorted(exts.intersection(label_exts))
        if any(f" {ph} " in q for ph in phrases):
            types[label] = present  # may be empty: named but absent -> dropped later, with a note
    sources: dict[str, list[str]] = {}
    for i, w in enumerate(words):
        if len(w) < 3 or w in _DOC_WORDS or w in _STOP or not _names_document(words, i):
            continue
        hits = [p for p in paths if w in _words(Path(p).stem) or f"{w} " in f"{Path(p).name.casefold()} "]
        if hits:
            sources[w] = hits
    return types, sources


def _nullable_enum(values: list[str]) -> dict[str, Any]:
    if not values:
        return {"type": "null"}
    return {"anyOf": [{"type": "string", "enum": values}, {"type": "null"}]}


def build_filter(
    question: str, paths: list[str], caller: LLMCaller,
) -> tuple[dict[str, Any] | None, list[str]]:
    """A Chroma `where` for the restrictions the question states, or None; plus notes."""
    types, sources = filter_candidates(question, paths)
    if not types and not sources:
        return None, ["no file type or document named: no filter call"]
    schema = {"type": "object", "properties": {"file_type": _nullable_enum(sorted(types)),
                                               "source": _nullable_enum(sorted(sources))},
              "required": ["file_type", "source"]}
    msgs: list[Message] = [{"role": "system", "content": _FILTER_PROMPT},
                           {"role": "user", "content": f"Q: {question}"}]
    raw = caller.complete("filter", msgs, max_tokens=40, json_schema=schema)
    value, notes = extract_json(raw)
    if not isinstance(value, dict):
        return None, notes + ["filter output unusable: no filter"]
    parts: list[dict[str, Any]] = []
    ft, src = value.get("file_type"), value.get("source")
    if isinstance(ft, str) and ft.casefold() in types:
        exts = types[ft.casefold()]
        if exts:
            parts.append({"ext": exts[0]} if len(exts) == 1 else {"ext": {"$in": exts}})
        else:
            notes.append(f"dropped file_type={ft!r}: the index holds no such files")
    elif ft not in (None, "", "null"):
        notes.append(f"dropped file_type={ft!r}: not a file type the question names")
    if isinstance(src, str) and src.casefold() in sources:
        parts.append({"source": {"$in": sources[src.casefold()]}})
    elif src not in (None, "", "null"):
        notes.append(f"dropped source={src!r}: not a document the question names")
    return and_where(*parts), notes


def and_where(*parts: dict[str, Any] | None) -> dict[str, Any] | None:
    ps = [p for p in parts if p]
    return None if not ps else ps[0] if len(ps) == 1 else {"$and": ps}


def check_where(index: Index, where: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """Keep a filter only if Chroma accepts it and it matches at least one record."""
    if not where:
        return None, None
    try:
        matched = index.vectors.any_match(where)
    except Exception as e:  # Chroma refuses malformed filters with various exception types
        return None, f"dropped filter {where}: Chroma refused it ({type(e).__name__}: {str(e)[:120]})"
    if not matched:
        return None, f"dropped filter {where}: it matches nothing in {index.path}"
    return where, None


def route(question: str, strategy: str, settings: Settings, caller: LLMCaller, embedder: Embedder,
          trace: list[TraceEntry]) -> Route:
    """Collection, strategy, answer template and metadata filter for one question."""
    with Timer(trace, "route") as d:
        r = Route(settings, strategy)
        rs = settings.route
        qvec = embedder.embed_query(question)
        if rs.semantic:
            r.template, r.scores["templates"] = semantic_route(qvec, embedder, rs.min_template_score)
        paths: list[str] = []
        if rs.filters:  # files of every candidate index: the filter call need not wait for the choice
            for s in [collection_settings(settings, c) for c in rs.collections] or [settings]:
                idx = Index(s)
                if idx.exists():
                    paths += list(idx.docs.files())
        both: list[Any] = caller.run_all([
            lambda: _choose(question, strategy, settings, caller),
            lambda: build_filter(question, paths, caller) if rs.filters else (None, ["filters off"]),
        ])
        choice: dict[str, Any] = both[0]
        fwhere: dict[str, Any] | None = both[1][0]
        fnotes: list[str] = both[1][1]
        col = _pick_collection(qvec, embedder, settings, choice.get("raw", ""), r)
        if col is not None:
            r.collection, r.settings = col.name, collection_settings(settings, col)
        if strategy == "auto":
            fallback = r.template.strategy if r.template else "none"
            if fallback not in rs.strategies:
                fallback = rs.strategies[0] if rs.strategies else "none"
            picked = parse_choice(choice.get("raw", ""), "strategy", list(rs.strategies), fallback)
            r.strategy = picked.value
            how = "fallback from the template" if picked.fallback else "chosen by the LLM"
            r.notes += [f"strategy {r.strategy!r} {how}"] + [f"strategy: {n}" for n in picked.notes]
        r.notes += [f"filter: {n}" for n in fnotes]
        index = Index(r.settings)
        if fwhere and index.exists():  # the constructed filter may name files of another collection
            fwhere, note = check_where(index, fwhere)
            r.notes += [note] if note else []
        where = and_where(col.where if col else None, fwhere)
        if where and index.exists():
            where, note = check_where(index, where)
            if note:
                r.notes.append(note)
                where, note2 = check_where(index, fwhere)  # the collection's own filter was the bad part
                r.notes += [note2] if note2 else []
        r.where = where
        d.update(r.to_dict())
    return r
