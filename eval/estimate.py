"""What `rag eval` is expected to cost, said before the work starts: the ingest of each corpus
index not cached yet (characters to embed at the characters per second measured on the last
eval ingest on this machine, else an assumed rate), and the LLM calls of the configurations
that make them (questions x calls per question x seconds per call, measured on the last run
that made calls with the same model, else assumed). Measured figures live in a small JSON file
under the reports cache folder (`TIMINGS_FILE`), written after each eval ingest and run."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import RagError
from core.llm import LLM, get_llm
from core.settings import Settings
from eval.configs import EvalConfig, apply
from eval.datasets import Corpus, Dataset
from ingest.cost import NODES_PER_LEAF, duration

log = logging.getLogger(__name__)

TIMINGS_FILE = "timings.json"
SAY_ABOVE_S = 120.0  # print the estimate only when the whole run is expected to take longer
# Assumed until this machine has a figure of its own: on 2 CPU cores the eval ingest (load, chunk,
# embed with the shipped MiniLM, BM25) runs at about 20,000 source characters per second.
ASSUMED_CHARS_PER_S = 20_000.0
# Seconds per LLM call of a query strategy (up to 128 generated tokens): the embedded llama.cpp
# model on a CPU, an Ollama server.
ASSUMED_S_PER_CALL = {"llamacpp": 5.0, "ollama": 1.0}
ASSUMED_CALLS_PER_QUESTION = {"auto": 2.0}  # the route's choice, then the strategy; others: 1
MIN_SAMPLE_CHARS = 50_000  # smaller ingests are mostly model loading: their rate is not kept
MIN_SAMPLE_CALLS = 2
ASSUMED = "assumed; none measured on this machine yet"
MEASURED = "measured on the last run"


@dataclass(frozen=True)
class Part:
    """One costly part of the run: what it is, its expected seconds, and a line saying so."""

    kind: str  # "ingest" | "llm" | "ingest_llm"
    name: str  # the index (dataset) or configuration
    seconds: float
    line: str
    source: str  # MEASURED or ASSUMED (with why)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Estimate:
    parts: list[Part] = field(default_factory=list)
    llm: str = ""  # "backend|model" the LLM parts assume ("" when no configuration calls it)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)

    def worth_saying(self, above: float = SAY_ABOVE_S) -> bool:
        return self.seconds > above

    def lines(self) -> list[str]:
        """The lines to print before the run: one per part, and the total when there are several."""
        out = [f"estimate: {p.line}" for p in self.parts]
        if len(self.parts) > 1:
            out.append(f"estimate: ~{duration(self.seconds)} in all (an estimate; --limit N runs fewer "
                       "questions)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "say_above_seconds": SAY_ABOVE_S,
                "parts": [{**asdict(p), "seconds": round(p.seconds, 1)} for p in self.parts]}


# --- measured figures ---------------------------------------------------------------------


def _read(cache_dir: Path) -> dict[str, Any]:
    path = cache_dir / TIMINGS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable %s (%s); the estimate uses assumed figures", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def _write(cache_dir: Path, data: dict[str, Any]) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / TIMINGS_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": 1, **data}, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def note_ingest(cache_dir: Path, embedding: str, chars: int, seconds: float, chunks: int) -> bool:
    """Keep an eval ingest's rate for the next estimate (from MIN_SAMPLE_CHARS up); True if kept."""
    if chars < MIN_SAMPLE_CHARS or seconds <= 0:
        return False
    data = _read(cache_dir)
    data.setdefault("ingest", {})[embedding] = {
        "chars": chars, "seconds": round(seconds, 2), "chunks": chunks,
        "chars_per_second": round(chars / seconds, 1),
    }
    _write(cache_dir, data)
    return True


def note_llm(cache_dir: Path, llm: str, calls_per_question: dict[str, float], calls: int,
             seconds: float) -> bool:
    """Keep a run's LLM figures: calls per question of each configuration (cache hits included:
    the calls its strategy asks for) and, from MIN_SAMPLE_CALLS calls made, the wall-clock
    seconds per call of model `llm` ("backend|model"). True if anything was kept."""
    if not calls_per_question and calls < MIN_SAMPLE_CALLS:
        return False
    data = _read(cache_dir)
    data.setdefault("calls_per_question", {}).update({k: round(v, 3) for k, v in calls_per_question.items()})
    if calls >= MIN_SAMPLE_CALLS and seconds > 0:
        data.setdefault("llm", {})[llm] = {"calls": calls, "seconds_per_call": round(seconds / calls, 3)}
    _write(cache_dir, data)
    return True


def ingest_rate(cache_dir: Path, embedding: str) -> tuple[float, str]:
    """Source characters per second of an eval ingest with `embedding`, and where it comes from."""
    seen = _read(cache_dir).get("ingest", {}).get(embedding, {}).get("chars_per_second")
    return (float(seen), MEASURED) if seen else (ASSUMED_CHARS_PER_S, ASSUMED)


def seconds_per_call(cache_dir: Path, backend: str, model: str) -> tuple[float, str]:
    seen = _read(cache_dir).get("llm", {}).get(f"{backend}|{model}", {}).get("seconds_per_call")
    if seen:
        return float(seen), MEASURED
    return ASSUMED_S_PER_CALL.get(backend, ASSUMED_S_PER_CALL["llamacpp"]), ASSUMED


def calls_per_question(cache_dir: Path, config: str) -> tuple[float, str]:
    seen = _read(cache_dir).get("calls_per_question", {}).get(config)
    if seen is not None:
        return float(seen), MEASURED
    return ASSUMED_CALLS_PER_QUESTION.get(config, 1.0), ASSUMED


def chars_per_chunk(cache_dir: Path, embedding: str, chunk_size: int) -> float:
    """Source characters per chunk of the last measured ingest, else 4 per token of chunk.size."""
    seen = _read(cache_dir).get("ingest", {}).get(embedding, {})
    if seen.get("chunks"):
        return float(seen["chars"]) / float(seen["chunks"])
    return 4.0 * chunk_size


def corpus_chars(corpus: Corpus) -> int:
    """Source characters of a corpus: BEIR titles and texts, or the files' sizes in bytes."""
    if corpus.kind == "beir":
        return sum(len(title) + len(text) for title, text in corpus.docs.values())
    if corpus.kind == "folder":
        return sum(p.stat().st_size for p in corpus.files.values() if p.exists())
    return 0


# --- the parts (pure arithmetic) ----------------------------------------------------------


def ingest_part(name: str, documents: int, chars: int, rate: float, source: str) -> Part:
    secs = chars / rate
    line = (f"ingest of {name} ({documents:,} documents, {chars:,} characters to embed; its index is not "
            f"cached yet): ~{duration(secs)} at {rate:,.0f} characters/s ({source})")
    return Part("ingest", name, secs, line, source,
                {"documents": documents, "chars": chars, "chars_per_second": rate})


def llm_part(config: str, questions: int, calls: float, calls_source: str, per_call: float,
             per_call_source: str, model: str) -> Part:
    """questions x LLM calls per question x seconds per call."""
    secs = questions * calls * per_call
    source = MEASURED if MEASURED in (calls_source, per_call_source) else ASSUMED
    src = f"calls per question {_short(calls_source)}, seconds per call {_short(per_call_source)}"
    line = (f"{config}: {questions:,} questions x {calls:.1f} LLM calls x {per_call:.1f} s "
            f"({_model(model)}) = ~{duration(secs)}, fewer where translations are cached ({src})")
    return Part("llm", config, secs, line, source,
                {"questions": questions, "calls_per_question": calls, "seconds_per_call": per_call,
                 "llm": model})


def ingest_llm_part(config: str, layer: str, chunks: int, calls_per_chunk: float, per_call: float,
                    source: str, model: str) -> Part:
    """A derived layer (multi-representation, RAPTOR) that calls the LLM at ingest, per chunk."""
    calls = max(1, round(chunks * calls_per_chunk))
    secs = calls * per_call
    line = (f"{config}: about {chunks:,} chunks, about {calls:,} LLM calls for {layer} at ingest x "
            f"{per_call:.1f} s ({_model(model)}) = ~{duration(secs)} (the ingest says more once the "
            f"chunks are known; seconds per call {_short(source)})")
    return Part("ingest_llm", config, secs, line, source,
                {"chunks": chunks, "llm_calls": calls, "seconds_per_call": per_call, "llm": model})


def _model(name: str) -> str:
    return name.replace("|", " ")


def _short(source: str) -> str:
    return "measured" if source == MEASURED else "assumed"


def combine(parts: Iterable[Part]) -> Estimate:
    return Estimate([p for p in parts if p.seconds > 0])



# --- the plan of a run, and what it measured --------------------------------------------


def plan(ds: Dataset, settings: Settings, groups: dict[str, list[EvalConfig]],
         cached: Callable[[Settings], bool], limit: int | None, cache_dir: Path) -> Estimate:
    """The costly parts of evaluating `groups` (index-shaping overrides as JSON -> their
    configurations) on the first `limit` judged questions: each index not `cached` yet, and the
    LLM calls of the configurations that make them (none when no LLM is available: those
    configurations then fail fast, and say so)."""
    judged = sum(1 for q in ds.queries if ds.qrels.get(q))
    questions = min(judged, limit or judged)
    parts: list[Part] = []
    chars = corpus_chars(ds.corpus)
    llm: LLM | None = None
    name = ""
    for shaping, members in groups.items():
        base = apply(settings, json.loads(shaping))
        fresh = ds.corpus.kind != "index" and not cached(base)
        if fresh:
            rate, src = ingest_rate(cache_dir, base.embedding.model)
            parts.append(ingest_part(ds.name, len(ds.corpus.ids), chars, rate, src))
        if any(c.uses_llm for c in members) and not name:
            llm, name = _llm(base)
        if llm is None:
            continue
        per, per_src = seconds_per_call(cache_dir, llm.backend, name.split("|", 1)[1])
        for c in members:
            if c.uses_llm and not c.shaping():
                calls, calls_src = calls_per_question(cache_dir, c.name)
                parts.append(llm_part(c.name, questions, calls, calls_src, per, per_src, name))
            elif c.uses_llm and fresh:
                chunks = round(chars / chars_per_chunk(cache_dir, base.embedding.model, base.chunk.size))
                parts += _layers(c.name, base, llm, chunks, per, per_src, name)
    est = combine(parts)
    est.llm = name if llm else ""
    return est


def _llm(settings: Settings) -> tuple[LLM | None, str]:
    """The configured LLM, constructed only (no model is loaded), and "backend|model"; None, "-"
    when there is none."""
    try:
        llm = get_llm(settings)
        return llm, f"{llm.backend}|{llm.model}"
    except RagError as e:
        log.info("estimate: no LLM available (%s); no LLM calls estimated", e)
        return None, "-"


def _layers(config: str, s: Settings, llm: LLM | None, chunks: int, per: float, src: str, name: str,
            ) -> list[Part]:
    """The LLM calls multi-representation and RAPTOR make at ingest when their summaries are the
    LLM's (with the embedded model `auto` makes extractive ones: no call)."""
    from ingest.llm_text import summary_method

    out: list[Part] = []
    if s.ingest.multi_representation:
        method, _, _ = summary_method(s.ingest.represent_summaries, "ingest.represent_summaries", s, llm)
        if method == "llm":
            kinds = 2 if s.ingest.represent_questions > 0 else 1
            per_chunk = kinds / max(1, s.ingest.represent_batch)
            out.append(ingest_llm_part(config, "multi-representation", chunks, per_chunk, per, src, name))
    if s.ingest.raptor:
        method, _, _ = summary_method(s.ingest.raptor_summaries, "ingest.raptor_summaries", s, llm)
        if method == "llm":
            out.append(ingest_llm_part(config, "RAPTOR summaries", chunks, NODES_PER_LEAF, per, src, name))
    return out


class Run(Protocol):
    """What `note_run` reads of a configuration's results (eval.evaluate.ConfigResult)."""

    name: str
    latency_ms: dict[str, list[float]]
    llm_calls: list[int]
    llm_cache_hits: list[int]


def note_run(cache_dir: Path, llm: str, runs: Iterable[Run]) -> bool:
    """Keep the LLM figures of configurations that called it at query time: calls per question
    (cache hits included) and wall-clock seconds per call over the questions that made calls."""
    per_q: dict[str, float] = {}
    calls = 0
    ms = 0.0
    for r in runs:
        total = r.latency_ms.get("total", [])
        if not r.llm_calls or len(total) != len(r.llm_calls):
            continue
        asked = [c + h for c, h in zip(r.llm_calls, r.llm_cache_hits, strict=False)] or r.llm_calls
        if any(asked):
            per_q[r.name] = sum(asked) / len(asked)
        for c, t in zip(r.llm_calls, total, strict=True):
            if c:
                calls, ms = calls + c, ms + t
    return note_llm(cache_dir, llm, per_q, calls, ms / 1000) if llm else False


__all__ = [
    "Estimate", "Part", "calls_per_question", "chars_per_chunk", "combine", "corpus_chars",
    "ingest_llm_part", "ingest_part", "ingest_rate", "llm_part", "note_ingest", "note_llm", "note_run",
    "plan", "seconds_per_call",
]
