"""Multi-representation indexing: for each parent unit (a chunk, or a document section of
consecutive chunks), the LLM writes a short summary and a few questions the unit answers.
They are indexed as records of kind `summary` / `question` whose `parent_id` is a chunk,
so retrieval shows the parent's text when one of them matches.

Runs after the ingest commit. Units that already have representations are skipped;
representations whose unit no longer exists are deleted (a changed file's derived records
go with its chunks, since they share its source path). Raw model replies are cached by
the hash of their input, so re-ingesting a changed file or resuming an interrupted run
costs no LLM calls for units seen before."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.index import Index
from core.llm import LLM, get_llm
from core.settings import Settings
from core.types import Kind, Record, stable_id
from ingest.llm_text import Job, clean_summary, digest, parse_questions, run_jobs, truncate

log = logging.getLogger(__name__)

PROMPT_VERSION = "repr-1"
BATCH = 16  # units per commit: an interrupted run loses at most this much embedding work

Progress = Callable[[str, int], None]


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
    cached: int = 0  # replies taken from the cache
    records: int = 0  # summary / question records written
    unusable: int = 0  # replies that parsed to nothing (no record written)
    removed: int = 0  # orphaned representations deleted
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.records or self.removed)

    def summary(self) -> dict[str, Any]:
        return {"units": self.units, "records": self.records, "llm_calls": self.llm_calls,
                "cached": self.cached, "unusable": self.unusable, "removed": self.removed,
                "seconds": round(self.seconds, 2)}

    def line(self) -> str:
        if not self.units and not self.removed:
            return "representations: up to date"
        return (f"representations: {self.units} units, {self.records} records written "
                f"({self.llm_calls} LLM calls, {self.cached} cached, {self.unusable} unusable replies), "
                f"{self.removed} removed in {self.seconds:.1f}s")


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


def _jobs(units: list[Unit], settings: Settings, llm: LLM) -> list[Job]:
    s = settings.ingest
    jobs = []
    kinds: list[Kind] = ["summary", "question"] if s.represent_questions > 0 else ["summary"]
    for u in units:
        text = u.text(s.represent_context_tokens)
        for kind in kinds:
            key = "repr:" + digest(PROMPT_VERSION, llm.model, kind, str(s.represent_questions),
                                   str(s.represent_max_tokens), text)
            jobs.append(Job(key, _messages(kind, text, s.represent_questions), s.represent_max_tokens,
                            _Pending(u, kind)))
    return jobs


def _parse(p: _Pending, raw: str, n: int) -> list[str]:
    if p.kind == "summary":
        s = clean_summary(raw, max_chars=600)
        return [s] if s else []
    return parse_questions(raw, n)


def _records(index: Index, pend: list[_Pending], model: str) -> list[Record]:
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
            extra={"unit": p.unit.key, "unit_kind": p.unit.kind, "model": model},
        ))
    return out


def _remove_orphans(index: Index, units: list[Unit], chunk_ids: set[str]) -> tuple[int, set[str]]:
    """Delete representations whose unit or parent is gone; return (removed, units done)."""
    keys = {u.key for u in units}
    orphans, done = [], set()
    for r in index.docs.iter_records(("summary", "question")):
        unit = r.extra.get("unit")
        if unit not in keys or r.parent_id not in chunk_ids:
            orphans.append(r.id)
        else:
            done.add(str(unit))
    if orphans:
        index.docs.delete_records(orphans)
        index.vectors.delete(orphans)
    return len(orphans), done


def update_representations(
    index: Index, settings: Settings, progress: Progress | None = None, llm: LLM | None = None,
) -> RepresentReport:
    """Write summaries and questions for every unit that has none yet."""
    t0 = time.perf_counter()
    rep = RepresentReport()
    s = settings.ingest
    chunks = list(index.docs.iter_records(("chunk",)))
    units = units_of(chunks, s.represent_unit)
    rep.removed, done = _remove_orphans(index, units, {c.id for c in chunks})
    todo = [u for u in units if u.key not in done]
    rep.units = len(todo)
    if not todo:
        rep.seconds = time.perf_counter() - t0
        return rep
    llm = llm or get_llm(settings)
    if progress:
        progress("represent_total", len(todo))
    for b in range(0, len(todo), BATCH):
        batch = todo[b : b + BATCH]
        pend: list[_Pending] = []
        for job, raw, cached, calls in run_jobs(llm, _jobs(batch, settings, llm), index.docs,
                                                s.llm_concurrency, ok=lambda raw: True):
            p: _Pending = job.tag  # type: ignore[assignment]
            rep.cached += int(cached)
            rep.llm_calls += calls
            p.texts = _parse(p, raw, s.represent_questions)
            if not p.texts:
                rep.unusable += 1
                log.info("unusable %s for unit %s: %r", p.kind, p.unit.key, raw[:120])
            pend.append(p)
        records = _records(index, pend, llm.model)
        if records:
            vecs = index.embedder.embed([r.index_text() for r in records])
            index.vectors.upsert(records, vecs)
            index.docs.put_records(records)
            rep.records += len(records)
        if progress:
            progress("represent", len(batch))
    rep.seconds = time.perf_counter() - t0
    return rep
