"""Multi-representation indexing: for each parent unit (a chunk, or a document section of
consecutive chunks), a short summary and a few questions the unit answers. They are indexed
as records of kind `summary` / `question` whose `parent_id` is a chunk, so
retrieval shows the parent's text when one of them matches.

Runs after the ingest commit. Units that already have representations are skipped;
representations whose unit no longer exists are deleted (a changed file's derived records
go with its chunks, since they share its source path). Raw model replies are cached by
the hash of their input, so re-ingesting a changed file or resuming an interrupted run
costs no LLM calls for units seen before.

Who writes them (`ingest.represent_summaries`): the LLM, several short units to a call
(`ingest.represent_batch`, ingest/represent_batch.py), or, with `extractive` (and `auto`
when the model is too small to summarise well), the unit's most central sentences
(ingest/extractive.py): no LLM call and no questions. Records and cache keys carry the
method, so switching replaces the other method's records. The cost is said first."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.index import Index
from core.lang import approx_tokens
from core.llm import LLM
from core.llmcall import CallStats, Job, digest
from core.settings import Settings
from core.types import Kind, Record, stable_id
from ingest import represent_batch
from ingest.cost import duration, note_seconds, seconds_per_call
from ingest.extractive import VERSION as EXTRACT_VERSION
from ingest.extractive import Extractor, too_short
from ingest.llm_text import (
    clean_summary,
    parse_questions,
    run_jobs,
    summary_method,
    truncate,
)

log = logging.getLogger(__name__)

PROMPT_VERSION = "repr-1"
BATCH = 16  # units per commit: an interrupted run loses at most this much embedding work

EXTRACTIVE_S_PER_UNIT = 0.15  # assumed seconds per unit of an extractive run (measured 0.16 on 2 cores)

Progress = Callable[[str, int], None]
Notice = Callable[[str], None]


@dataclass
class Unit:
    key: str
    kind: str  # chunk | section
    chunks: list[Record]

    def text(self, budget: int) -> str:
        body = "\n\n".join(c.text for c in self.chunks)
        return truncate(body, budget)


@dataclass
class RepresentReport:
    units: int = 0  # units that needed representations in this run
    llm_calls: int = 0
    cached: int = 0  # replies (or extractive summaries) taken from the cache
    records: int = 0  # summary / question records written
    unusable: int = 0  # replies that parsed to nothing (no record written)
    removed: int = 0  # orphaned representations deleted (or made by the other method)
    method: str = "llm"  # llm | extractive (ingest.represent_summaries resolved)
    why: str = ""
    questions: bool = True  # whether questions were written (only by the LLM)
    batched: int = 0  # unit replies read from a batched call
    alone: int = 0  # units a batched reply left without a usable item, asked alone
    short: int = 0  # extractive: units whose summary would be the unit itself (none written)
    estimate: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.records or self.removed)

    def summary(self) -> dict[str, Any]:
        return {"units": self.units, "records": self.records, "llm_calls": self.llm_calls,
                "cached": self.cached, "unusable": self.unusable, "removed": self.removed,
                "method": self.method, "why": self.why, "questions": self.questions,
                "batched": self.batched, "alone": self.alone, "short": self.short,
                "estimate": self.estimate, "seconds": round(self.seconds, 2)}

    def line(self) -> str:
        if not self.units and not self.removed:
            return "representations: up to date"
        if self.method == "extractive":
            return (f"representations: {self.units} units, {self.records} extractive summaries ({self.why}; "
                    f"no LLM calls, no questions), {self.cached} cached, {self.short} units too short to "
                    f"summarise, {self.removed} removed in {self.seconds:.1f}s")
        batch = f", {self.batched} replies from batched calls, {self.alone} asked alone" * bool(self.batched)
        return (f"representations: {self.units} units, {self.records} records written "
                f"({self.llm_calls} LLM calls{batch}, {self.cached} cached, {self.unusable} unusable "
                f"replies), {self.removed} removed in {self.seconds:.1f}s")


def units_of(chunks: list[Record], unit: str) -> list[Unit]:
    """Chunks as units, or sections: runs of consecutive chunks of one file under one title."""
    if unit == "chunk":
        return [Unit(c.id, "chunk", [c]) for c in chunks]
    groups: list[list[Record]] = []
    for c in chunks:
        if groups and groups[-1][-1].source == c.source and groups[-1][-1].title == c.title:
            groups[-1].append(c)
        else:
            groups.append([c])
    return [Unit(stable_id("section", g[0].source, g[0].title, *(c.id for c in g)), "section", g)
            for g in groups]


def _messages(kind: str, text: str, n: int) -> list[dict[str, str]]:
    if kind == "summary":
        ask = "Summarise the text above in one sentence."
    else:
        ask = f"Write {n} questions that the text above answers, one per line."
    return [{"role": "user", "content": f"{text}\n\n{ask}"}]


@dataclass
class _Pending:
    unit: Unit
    kind: Kind  # summary | question
    texts: list[str] = field(default_factory=list)


def _parse(p: _Pending, raw: str, n: int) -> list[str]:
    if p.kind == "summary":
        s = clean_summary(raw, max_chars=600)
        return [s] if s else []
    return parse_questions(raw, n)


@dataclass
class _Split:
    """One kind of one block of units: replies already cached, short units to ask together,
    units to ask alone."""

    kind: Kind
    hits: list[tuple[_Pending, str]] = field(default_factory=list)
    groups: list[list[tuple[Unit, str, str]]] = field(default_factory=list)  # (unit, text, key)
    singles: list[Job] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.groups) + len(self.singles)


def _kinds(settings: Settings) -> list[Kind]:
    return ["summary", "question"] if settings.ingest.represent_questions > 0 else ["summary"]


def _single(u: Unit, kind: Kind, text: str, key: str, settings: Settings) -> Job:
    s = settings.ingest
    return Job(key, _messages(kind, text, s.represent_questions), s.represent_max_tokens, _Pending(u, kind))


def _split(units: list[Unit], kind: Kind, settings: Settings, llm: LLM, index: Index) -> _Split:
    s = settings.ingest
    out = _Split(kind)
    short: list[tuple[Unit, str, str]] = []
    size = max(1, s.represent_batch)
    for u in units:
        text = u.text(s.represent_context_tokens)
        key = "repr:" + digest(PROMPT_VERSION, llm.model, kind, str(s.represent_questions),
                               str(s.represent_max_tokens), text)
        hit = index.docs.cache_get(key)
        if hit is not None:
            out.hits.append((_Pending(u, kind), hit))
        elif size > 1 and approx_tokens(text) <= s.represent_context_tokens // size:
            short.append((u, text, key))
        else:
            out.singles.append(_single(u, kind, text, key, settings))
    for i in range(0, len(short), size):
        g = short[i : i + size]
        if len(g) == 1:
            out.singles.append(_single(g[0][0], kind, g[0][1], g[0][2], settings))
        else:
            out.groups.append(g)
    return out


class _LLMRun:
    """Multi-representation with the LLM: per block and kind, cached replies, batched calls
    for short units (a unit a batched reply leaves out is asked alone), single calls."""

    def __init__(self, index: Index, settings: Settings, llm: LLM, rep: RepresentReport) -> None:
        self.index, self.settings, self.llm, self.rep = index, settings, llm, rep
        self.stats = CallStats()

    def block(self, units: list[Unit]) -> list[_Pending]:
        pend: list[_Pending] = []
        for kind in _kinds(self.settings):
            sp = _split(units, kind, self.settings, self.llm, self.index)
            for p, raw in sp.hits:
                self.rep.cached += 1
                pend.append(self._parsed(p, raw))
            pend.extend(self._batched(sp))
            pend.extend(self._singles(sp.singles))
        return pend

    def _parsed(self, p: _Pending, raw: str) -> _Pending:
        p.texts = _parse(p, raw, self.settings.ingest.represent_questions)
        if not p.texts:
            self.rep.unusable += 1
            log.info("unusable %s for unit %s: %r", p.kind, p.unit.key, raw[:120])
        return p

    def _batched(self, sp: _Split) -> list[_Pending]:
        s = self.settings.ingest
        n, docs = s.represent_questions, self.index.docs
        jobs = []
        for g in sp.groups:
            texts = [t for _, t, _ in g]
            key = "repr-batch:" + digest(PROMPT_VERSION, represent_batch.VERSION, self.llm.model, sp.kind,
                                         str(n), str(s.represent_max_tokens), *texts)
            msgs = represent_batch.messages(sp.kind, texts, n)
            jobs.append(Job(key, msgs, s.represent_max_tokens * len(g) + 16, g))
        out: list[_Pending] = []
        for job, raw, cached, calls in run_jobs(self.llm, jobs, docs, s.llm_concurrency, ok=lambda r: True,
                                                stats=self.stats):
            g = job.tag  # type: ignore[assignment]
            self.rep.llm_calls += calls
            self.rep.cached += int(cached)
            found = represent_batch.parse(sp.kind, raw, [t for _, t, _ in g], n)
            for (u, text, key), items in zip(g, found, strict=True):
                if items:  # kept per unit too: a later run with other neighbours finds it
                    docs.cache_put(key, "\n".join(items))
                    out.append(_Pending(u, sp.kind, items))
                    self.rep.batched += 1
                else:
                    sp.singles.append(_single(u, sp.kind, text, key, self.settings))
                    self.rep.alone += 1
            if not all(found):
                log.info("batched %s reply left %d of %d units out; asking them alone: %r", sp.kind,
                         sum(not f for f in found), len(g), raw[:200])
        return out

    def _singles(self, jobs: list[Job]) -> list[_Pending]:
        s = self.settings.ingest
        out = []
        for job, raw, cached, calls in run_jobs(self.llm, jobs, self.index.docs, s.llm_concurrency,
                                                ok=lambda raw: True, stats=self.stats):
            self.rep.cached += int(cached)
            self.rep.llm_calls += calls
            out.append(self._parsed(job.tag, raw))  # type: ignore[arg-type]
        return out


def _extractive(index: Index, settings: Settings, units: list[Unit], rep: RepresentReport,
                extractor: Extractor) -> list[_Pending]:
    """Each unit's most central sentences (cached by the hash of its text and the method)."""
    budget = settings.ingest.represent_max_tokens
    out = []
    for u in units:
        texts = [c.text for c in u.chunks]
        key = "repr:" + digest(PROMPT_VERSION, "extractive", EXTRACT_VERSION, extractor.name, str(budget),
                               *texts)
        text = index.docs.cache_get(key)
        if text is None:
            text = extractor.summary(texts, budget)
            index.docs.cache_put(key, text)
        else:
            rep.cached += 1
        out.append(_Pending(u, "summary", [text] if text else []))
    return out


def _records(index: Index, pend: list[_Pending], model: str, method: str) -> list[Record]:
    """Derived records; in section units each one's parent is the section chunk it is closest to."""
    out: list[Record] = []
    flat = [(p, i, t) for p in pend for i, t in enumerate(p.texts)]
    if not flat:
        return out
    parents: list[Record] = [p.unit.chunks[0] for p, _, _ in flat]
    multi = [j for j, (p, _, _) in enumerate(flat) if len(p.unit.chunks) > 1]
    if multi:
        vecs = index.embedder.embed([flat[j][2] for j in multi])
        ids = list({c.id for j in multi for c in flat[j][0].unit.chunks})
        chunk_vecs = index.vectors.get_embeddings(ids)
        for j, v in zip(multi, vecs, strict=True):
            cands = [c for c in flat[j][0].unit.chunks if c.id in chunk_vecs]
            if cands:
                parents[j] = max(cands, key=lambda c: float(np.dot(chunk_vecs[c.id], v)))
    for (p, i, text), parent in zip(flat, parents, strict=True):
        out.append(Record(
            id=stable_id("repr", p.unit.key, p.kind, str(i), text), text=text, source=parent.source,
            kind=p.kind, level=0, parent_id=parent.id, start=parent.start, end=parent.end, title=parent.title,
            page_start=parent.page_start, page_end=parent.page_end,
            extra={"unit": p.unit.key, "unit_kind": p.unit.kind, "model": model, "method": method},
        ))
    return out


def _remove_orphans(index: Index, units: list[Unit], chunk_ids: set[str], method: str,
                    ) -> tuple[int, set[str]]:
    """Delete representations whose unit or parent is gone, or that the other method made
    (records from before methods were recorded are the LLM's); return (removed, units done)."""
    keys = {u.key for u in units}
    orphans, done = [], set()
    for r in index.docs.iter_records(("summary", "question")):
        unit = r.extra.get("unit")
        if unit not in keys or r.parent_id not in chunk_ids or r.extra.get("method", "llm") != method:
            orphans.append(r.id)
        else:
            done.add(str(unit))
    if orphans:
        index.docs.delete_records(orphans)
        index.vectors.delete(orphans)
    return len(orphans), done


def _estimate(index: Index, settings: Settings, todo: list[Unit], rep: RepresentReport, llm: LLM | None,
              ) -> str:
    """What the run is expected to cost, as a line to print before it starts (rep.estimate too)."""
    s = settings.ingest
    head = f"representations: {len(todo)} units"
    if rep.method == "extractive" or llm is None:
        secs = EXTRACTIVE_S_PER_UNIT * len(todo)
        rep.estimate = {"llm_calls": 0, "seconds": round(secs, 1), "source": "assumed"}
        short = f", {rep.short} too short to summarise" if rep.short else ""
        return (f"{head}{short}: extractive summaries, {rep.why}: no LLM calls, no questions (only an LLM "
                f"writes them); ~{duration(secs)} (assumed)")
    calls = batched = 0
    for b in range(0, len(todo), BATCH):
        for kind in _kinds(settings):
            sp = _split(todo[b : b + BATCH], kind, settings, llm, index)
            calls += sp.calls
            batched += len(sp.groups)
    tokens = s.represent_max_tokens * (max(1, s.represent_batch) if batched else 1)
    per, src = seconds_per_call(index.docs, "represent", llm, tokens, s.llm_concurrency)
    rep.estimate = {"llm_calls": calls, "batched_calls": batched, "seconds_per_call": round(per, 2),
                    "seconds": round(calls * per, 1), "source": src}
    how = (f"{batched} of them with up to {s.represent_batch} units each (more calls if a batched reply is "
           "malformed)") if batched else "one per unit and kind"
    return (f"{head} for {llm.model} ({rep.why}): about {calls} LLM calls, {how}; ~{duration(calls * per)} "
            f"at {per:.1f} s per call ({src})")


def _write(index: Index, pend: list[_Pending], model: str, rep: RepresentReport) -> None:
    records = _records(index, pend, model, rep.method)
    if records:
        vecs = index.embedder.embed([r.index_text() for r in records])
        index.vectors.upsert(records, vecs)
        index.docs.put_records(records)
        rep.records += len(records)


def update_representations(
    index: Index, settings: Settings, progress: Progress | None = None, llm: LLM | None = None,
    notice: Notice | None = None, extractor: Extractor | None = None,
) -> RepresentReport:
    """Write summaries (and, by the LLM, questions) for every unit that has none yet from the
    current method; `notice` gets the cost estimate before the work starts."""
    t0 = time.perf_counter()
    rep = RepresentReport()
    s = settings.ingest
    rep.method, rep.why, llm = summary_method(s.represent_summaries, "ingest.represent_summaries",
                                              settings, llm)
    rep.questions = rep.method == "llm" and s.represent_questions > 0
    chunks = list(index.docs.iter_records(("chunk",)))
    units = units_of(chunks, s.represent_unit)
    rep.removed, done = _remove_orphans(index, units, {c.id for c in chunks}, rep.method)
    todo = [u for u in units if u.key not in done]
    if rep.method == "extractive":
        budget = s.represent_max_tokens
        keep = [u for u in todo if not too_short("\n\n".join(c.text for c in u.chunks), budget)]
        rep.short, todo = len(todo) - len(keep), keep
    rep.units = len(todo)
    if not todo:
        rep.seconds = time.perf_counter() - t0
        return rep
    line = _estimate(index, settings, todo, rep, llm)
    log.info(line)
    if notice:
        notice(line)
    run = _LLMRun(index, settings, llm, rep) if rep.method == "llm" and llm is not None else None
    extractor = extractor or Extractor(index.embedder)
    if progress:
        progress("represent_total", len(todo))
    for b in range(0, len(todo), BATCH):
        block = todo[b : b + BATCH]
        if run is not None:
            _write(index, run.block(block), run.llm.model, rep)
        else:
            _write(index, _extractive(index, settings, block, rep, extractor), "extractive", rep)
        if progress:
            progress("represent", len(block))
    if run is not None:
        note_seconds(index.docs, "represent", run.llm, run.stats)
    rep.seconds = time.perf_counter() - t0
    return rep
