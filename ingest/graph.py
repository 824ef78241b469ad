"""The knowledge graph layer of the index (`ingest.graph`, `rag ingest --graph`): per chunk, the
entities it names and the relations it states, kept in `graph.sqlite` (core/graph.py).

Who reads them (`ingest.graph_extraction`): the LLM, one chunk a call, asked for JSON
({"entities": [{"name", "type", "aliases"}], "relations": [{"source", "relation", "target"}]})
and parsed defensively (a reply that is no such JSON gives the chunk no facts, counted and
logged; a name the chunk does not contain is dropped as invented); or, with `cooccurrence` (and
`auto` when `core.llm.too_small` says the model cannot be trusted with it), names, terms and
Chinese nouns related by sharing a sentence (ingest/graph_terms.py), no LLM call.

Incremental like the other derived layers: a chunk is read once per method (its `done` tag
names the method, prompt version and model), replies are cached by the hash of the chunk's
text and the prompt version, facts of chunks no longer indexed are removed (even when
`ingest.graph` is off, so an old graph never points at text that is gone). The cost is said
first."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.graph import GRAPH_FILE, ChunkFacts, EntityFact, GraphStore, RelationFact, norm_key
from core.index import Index
from core.jsontext import extract_json
from core.llm import LLM
from core.llmcall import CallStats, Job, digest, run_jobs
from core.settings import Settings
from core.types import Record
from ingest import graph_terms
from ingest.cost import duration, note_seconds, seconds_per_call
from ingest.llm_text import summary_method, truncate

log = logging.getLogger(__name__)

PROMPT_VERSION = "graph-1"
BLOCK = 32  # chunks per commit: an interrupted run loses at most this much work (replies stay cached)
CONTEXT_TOKENS = 1500  # chunk text shown to the model
COOC_S_PER_CHUNK = 0.01  # assumed seconds per chunk of the co-occurrence extractor (2 CPU cores)
MAX_ENTITIES, MAX_RELATIONS, MAX_NAME = 40, 60, 80  # per chunk: more is a runaway reply

Progress = Callable[[str, int], None]
Notice = Callable[[str], None]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "type": {"type": "string"},
            "aliases": {"type": "array", "items": {"type": "string"}}}, "required": ["name"]}},
        "relations": {"type": "array", "items": {"type": "object", "properties": {
            "source": {"type": "string"}, "relation": {"type": "string"}, "target": {"type": "string"}},
            "required": ["source", "relation", "target"]}},
    },
    "required": ["entities", "relations"],
}

_SYSTEM = (
    "You extract a knowledge graph from a text. Reply with JSON only, in this form: "
    '{"entities": [{"name": "...", "type": "person|organisation|place|work|product|term|other", '
    '"aliases": ["..."]}], "relations": [{"source": "...", "relation": "...", "target": "..."}]}. '
    "Entities: the people, organisations, places, works, products and technical terms the text names, "
    "each name written exactly as in the text and in its language; aliases: other names the text "
    "uses for the same entity (an abbreviation, a translation given in brackets). Relations: what "
    "the text states between two of those entities, as a short verb phrase (\"founded\", \"wrote\", "
    "\"is part of\"). Nothing the text does not say."
)


@dataclass
class GraphReport:
    chunks: int = 0  # chunks read in this run
    method: str = "cooccurrence"  # llm | cooccurrence (ingest.graph_extraction resolved)
    why: str = ""
    llm_calls: int = 0
    cached: int = 0
    unusable: int = 0  # replies that were no usable JSON (the chunk got no facts)
    dropped: int = 0  # names a reply gave that its chunk does not contain
    removed: int = 0  # chunks whose facts went with them
    totals: dict[str, int] = field(default_factory=dict)  # the graph after the run
    estimate: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    off: bool = False  # ingest.graph off: only the facts of removed chunks went

    def summary(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "method": self.method, "why": self.why, "llm_calls": self.llm_calls,
                "cached": self.cached, "unusable": self.unusable, "dropped": self.dropped,
                "removed": self.removed, "totals": self.totals, "estimate": self.estimate,
                "seconds": round(self.seconds, 2)}

    def line(self) -> str:
        if self.off:
            return (f"graph: facts of {self.removed} removed chunks deleted (ingest.graph is off: new chunks "
                    "are not read; `rag ingest --graph` reads them)")
        t = self.totals
        size = f"{t.get('entities', 0)} entities, {t.get('relations', 0)} relations"
        if not self.chunks and not self.removed:
            return f"graph: up to date ({size})"
        how = (f"{self.llm_calls} LLM calls, {self.cached} cached, {self.unusable} unusable replies, "
               f"{self.dropped} names not in their chunk dropped" if self.method == "llm"
               else f"co-occurrence ({self.why}; no LLM calls)")
        return (f"graph: {self.chunks} chunks read ({how}), {self.removed} removed; {size} "
                f"in {self.seconds:.1f}s")


def extraction_method(settings: Settings, llm: LLM | None) -> tuple[str, str, LLM | None]:
    """(method, why, llm) for `ingest.graph_extraction`: `auto` reads with the LLM only when it
    is capable and reachable, by the one rule the summaries follow (llm_text.summary_method),
    and by co-occurrence otherwise."""
    choice = settings.ingest.graph_extraction
    method, why, llm = summary_method("extractive" if choice == "cooccurrence" else choice,
                                      "ingest.graph_extraction", settings, llm)
    if method == "extractive":
        return "cooccurrence", why.replace("extractive", "cooccurrence").replace(
            "summarise well", "read entities reliably"), llm
    return "llm", why.replace("summarises", "reads entities"), llm


def _strings(v: Any) -> list[str]:
    items = v if isinstance(v, list) else [v]
    return [" ".join(x.split())[:MAX_NAME] for x in items if isinstance(x, str) and x.strip()]


def parse_facts(raw: str, text: str) -> tuple[ChunkFacts | None, int]:
    """(facts, names dropped) from an extraction reply; None when it is no usable JSON object.
    A name counts only when the chunk contains it (or one of its aliases): a small or confused
    model's invented or prompt-copied names are dropped; a relation needs both its ends."""
    value, _ = extract_json(raw)
    if not isinstance(value, dict):
        return None, 0
    ents, rels = value.get("entities"), value.get("relations")
    if not isinstance(ents, list) and not isinstance(rels, list):
        return None, 0
    hay = norm_key(text)
    facts, dropped, known = ChunkFacts(), 0, set[str]()
    for e in (ents if isinstance(ents, list) else [])[:MAX_ENTITIES]:
        if isinstance(e, str):
            e = {"name": e}
        if not isinstance(e, dict) or not _strings(e.get("name")):
            dropped += 1
            continue
        names = _strings(e.get("name"))[:1] + _strings(e.get("aliases"))[:8]
        if not any(norm_key(n) and norm_key(n) in hay for n in names):
            dropped += 1
            continue
        etype = (_strings(e.get("type")) or [""])[0][:30].lower()
        facts.entities.append(EntityFact(names[0], etype, names[1:]))
        known.update(norm_key(n) for n in names)
    for r in (rels if isinstance(rels, list) else [])[:MAX_RELATIONS]:
        if not isinstance(r, dict):
            dropped += 1
            continue
        src, rel, dst = (_strings(r.get(k)) for k in ("source", "relation", "target"))
        ends = [x[0] if x else "" for x in (src, dst)]
        if not rel or not all(norm_key(x) and (norm_key(x) in known or norm_key(x) in hay) for x in ends):
            dropped += 1
            continue
        facts.relations.append(RelationFact(ends[0], rel[0][:120], ends[1]))
    return facts, dropped


def _messages(chunk: Record) -> list[dict[str, str]]:
    body = truncate(chunk.index_text(), CONTEXT_TOKENS)
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": body}]


class _LLMRead:
    """Extraction by the LLM through core/llmcall.py (cache, thread pool, error rule)."""

    def __init__(self, index: Index, settings: Settings, llm: LLM, rep: GraphReport) -> None:
        self.index, self.settings, self.llm, self.rep = index, settings, llm, rep
        self.stats = CallStats()

    def key(self, chunk: Record) -> str:
        return "graph:" + digest(PROMPT_VERSION, self.llm.model, str(self.settings.ingest.graph_max_tokens),
                                 chunk.index_text())

    def block(self, chunks: list[Record]) -> dict[str, ChunkFacts]:
        s = self.settings.ingest
        jobs = [Job(self.key(c), _messages(c), s.graph_max_tokens, c, kind="graph", json_schema=SCHEMA)
                for c in chunks]
        out: dict[str, ChunkFacts] = {}
        for job, rec in run_jobs(self.llm, jobs, self.index.docs, s.llm_concurrency, stats=self.stats):
            chunk: Record = job.tag  # type: ignore[assignment]
            self.rep.cached += int(rec.cached)
            self.rep.llm_calls += rec.calls
            facts, dropped = parse_facts(rec.raw, chunk.index_text())
            self.rep.dropped += dropped
            if facts is None:
                self.rep.unusable += 1
                log.info("unusable graph extraction for chunk %s: %r", chunk.id, rec.raw[:200])
                facts = ChunkFacts()
            out[chunk.id] = facts
        return out


def _cooccurrence(chunks: list[Record]) -> dict[str, ChunkFacts]:
    return {c.id: graph_terms.extract(c.text, c.title) for c in chunks}


def _estimate(index: Index, settings: Settings, n: int, rep: GraphReport, llm: LLM | None) -> str:
    head = f"graph: {n} chunks to read"
    if rep.method == "cooccurrence" or llm is None:
        secs = COOC_S_PER_CHUNK * n
        rep.estimate = {"llm_calls": 0, "seconds": round(secs, 1), "source": "assumed"}
        return f"{head} by co-occurrence ({rep.why}): no LLM calls; ~{duration(secs)} (assumed)"
    s = settings.ingest
    per, src = seconds_per_call(index.docs, "graph", llm, s.graph_max_tokens, s.llm_concurrency)
    rep.estimate = {"llm_calls": n, "seconds_per_call": round(per, 2), "seconds": round(n * per, 1),
                    "source": src}
    return (f"{head} for {llm.model} ({rep.why}): up to {n} LLM calls (fewer where cached), "
            f"~{duration(n * per)} at {per:.1f} s per call ({src})")


def update_graph(index: Index, settings: Settings, progress: Progress | None = None, llm: LLM | None = None,
                 notice: Notice | None = None) -> GraphReport:
    """Read the chunks the graph lacks (or read by another method), drop the facts of chunks
    gone; `notice` gets the cost estimate before the work starts."""
    t0 = time.perf_counter()
    rep = GraphReport()
    store = GraphStore(index.path / GRAPH_FILE)
    try:
        chunks = list(index.docs.iter_records(("chunk",)))
        ids = {c.id for c in chunks}
        done = store.done()
        rep.removed = store.remove([c for c in done if c not in ids])
        if not settings.ingest.graph:
            rep.off = True
            return rep
        rep.method, rep.why, llm = extraction_method(settings, llm)
        reader = _LLMRead(index, settings, llm, rep) if rep.method == "llm" and llm is not None else None
        tag = f"llm:{PROMPT_VERSION}:{llm.model}" if reader and llm else f"cooccurrence:{graph_terms.VERSION}"
        todo = [c for c in chunks if done.get(c.id) != tag]
        rep.chunks = len(todo)
        if todo:
            line = _estimate(index, settings, len(todo), rep, llm if reader else None)
            log.info(line)
            if notice:
                notice(line)
            if progress:
                progress("graph_total", len(todo))
        for b in range(0, len(todo), BLOCK):
            block = todo[b:b + BLOCK]
            facts = reader.block(block) if reader else _cooccurrence(block)
            store.replace(facts, tag)
            if progress:
                progress("graph", len(block))
        if reader is not None:
            note_seconds(index.docs, "graph", reader.llm, reader.stats)
        rep.totals = store.counts()
        return rep
    finally:
        store.close()
        rep.seconds = time.perf_counter() - t0
