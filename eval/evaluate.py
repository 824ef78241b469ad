"""Offline retrieval evaluation, top to bottom:
dataset -> validate -> ingest the corpus into its own cached index (keyed by corpus
content and the settings that shape an index; the user's index is never touched) ->
for each configuration, run every query through the retrieval pipeline -> aggregate
chunk hits to documents by best rank (or score chunk ids directly) -> ranx metrics,
paired tests, latency per stage, LLM calls per query; and, for queries that carry evidence
strings, passage-level metrics from the text of the hits themselves."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import IndexError_, RagError
from core.index import INDEX_FORMAT, Index
from core.settings import Settings
from core.types import Hit, TraceEntry
from eval import configs as cfgs
from eval import estimate as est
from eval import runners
from eval.datasets import Dataset, Issues, Qrels, validate
from eval.metrics import (
    PRIMARY,
    RunDict,
    answer_rank,
    best_rank,
    paired_tests,
    passage_scores,
    percentiles,
    score,
    squash,
)
from eval.runners import LLM_COUNT_STAGE

log = logging.getLogger(__name__)

IngestProgress = Callable[[str, int], None]
QueryProgress = Callable[[str, int, int], None]  # (configuration, done, total)
EstimateHook = Callable[[est.Estimate], None]  # gets the run's cost estimate before the work starts


@dataclass
class ConfigResult:
    name: str
    description: str
    run: RunDict = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)  # stage -> per query; "total" too
    llm_calls: list[int] = field(default_factory=list)
    llm_cache_hits: list[int] = field(default_factory=list)  # translations served from the cache
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # query id -> rank of the first hit whose text holds the evidence (None: no hit does);
    # only queries with evidence appear.
    passage_ranks: dict[str, int | None] = field(default_factory=dict)

    def latency(self) -> dict[str, dict[str, float]]:
        return {stage: percentiles(v) for stage, v in self.latency_ms.items()}


@dataclass
class EvalResult:
    name: str
    dataset: str
    level: str
    queries: dict[str, str]
    qrels: Qrels
    configs: list[ConfigResult]
    metrics: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]]
    tests: dict[str, dict[str, dict[str, float]]]
    issues: Issues
    index: dict[str, Any]
    depth: int
    seconds: float = 0.0
    baseline: str = ""
    evidence_queries: int = 0  # scored queries with evidence: the denominator of passage metrics
    split: str = ""
    estimate: dict[str, Any] = field(default_factory=dict)  # what the run was expected to cost


@dataclass
class EvalIndex:
    index: Index
    by_source: dict[str, str] | None  # source path -> document id; None: score chunk ids
    info: dict[str, Any]

    def doc_of_source(self, source: str) -> str | None:
        return None if self.by_source is None else self.by_source.get(source)

    def doc_of(self, hit: Hit) -> str | None:
        return hit.record.id if self.by_source is None else self.by_source.get(hit.record.source)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:40] or "dataset"


def index_key(ds: Dataset, settings: Settings) -> str:
    shape = {
        "corpus": ds.corpus.digest(),
        "format": INDEX_FORMAT,
        "chunk": settings.chunk.model_dump(),
        "embedding": settings.embedding.model,
        "embedding_titles": settings.embedding.titles,
        "ingest": settings.ingest.model_dump(),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _materialise(ds: Dataset, folder: Path) -> dict[str, str]:
    """Write BEIR documents as Markdown files (title as heading) for the ingest pipeline;
    returns file path -> document id."""
    mapping: dict[str, str] = {}
    for n, (doc_id, (title, text)) in enumerate(sorted(ds.corpus.docs.items())):
        p = folder / f"{n // 1000:04d}" / f"{n:07d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        body = f"# {title}\n\n{text}\n" if title.strip() else f"{text}\n"
        if not p.exists() or p.read_text(encoding="utf-8") != body:
            p.write_text(body, encoding="utf-8")
        mapping[str(p.resolve())] = doc_id
    return mapping


def corpus_index(
    ds: Dataset, settings: Settings, cache_dir: Path, progress: IngestProgress | None = None
) -> EvalIndex:
    """The dataset's own index, built once per corpus content and index-shaping settings."""
    if ds.corpus.kind == "index":  # synthetic sets: the current index, read only
        index = Index(settings)
        if not index.exists():
            raise IndexError_(
                f"No index at {index.path}; run `rag ingest PATH` first (or set RAG_INDEX_DIR)."
            )
        return EvalIndex(index, None, {"path": str(index.path), "reused": True, "own": False})
    key, root, s = _own(ds, settings, cache_dir)
    index = Index(s)
    marker = root / "complete.json"
    if ds.corpus.kind == "beir":
        mapping = _materialise(ds, root / "docs")
    else:
        mapping = {str(p): doc_id for doc_id, p in ds.corpus.files.items()}
    info: dict[str, Any] = {"path": str(index.path), "key": key, "own": True}
    if marker.exists() and json.loads(marker.read_text()).get("key") == key and index.exists():
        info.update(json.loads(marker.read_text()), reused=True, path=str(index.path))
        if ds.corpus.kind == "beir" and (built := _built_from(index, root / "docs")) is not None:
            # A cache folder moved or copied: its index names the files where they were
            # written, and every hit would map to no document (nDCG 0.000 without a word).
            docs = (root / "docs").resolve()
            mapping.update({str(built / Path(p).relative_to(docs)): d for p, d in list(mapping.items())})
            info["built_from"] = str(built)
    else:
        from ingest.pipeline import ingest

        report = ingest([Path(p) for p in mapping], s, prune=True, progress=progress, index=index)
        failed = [f"{Path(f.path).name}: {f.error}" for f in report.failed]
        chunks = index.docs.counts_by_kind().get("chunk", 0)
        if not (s.ingest.multi_representation or s.ingest.raptor):  # the plain ingest's rate, for estimates
            est.note_ingest(cache_dir, s.embedding.model, est.corpus_chars(ds.corpus), report.seconds, chunks)
        info.update(
            {
                "key": key,
                "documents": len(mapping),
                "chunks": chunks,
                "ingest_seconds": round(report.seconds, 2),
                "failed": failed[:20],
                "failed_count": len(failed),
                "reused": False,
            }
        )
        marker.write_text(json.dumps({k: v for k, v in info.items() if k != "reused"}, indent=2))
        # A fresh Index: the one that ingested holds a KeywordIndex whose `build` left
        # `ids` set and the bm25s model unloaded, and its `search` then returns nothing.
        index = Index(s)
    # As `rag ingest` does: the index trains its own ranker from its corpus (when due), so
    # the default configuration measures what a user gets; never the user's index's ranker.
    from eval.self_train import self_train

    info["ranker"] = self_train(index, s).to_dict()
    return EvalIndex(index, mapping, info)


def _built_from(index: Index, docs: Path) -> Path | None:
    """The folder of materialised documents a cached index was ingested from, when it is not
    `docs`: the files are `docs/NNNN/NNNNNNN.md` (`_materialise`), so a chunk's source names it."""
    rec = next(index.docs.iter_records(("chunk",)), None)
    if rec is None or len(Path(rec.source).parents) < 2:
        return None
    built = Path(rec.source).parents[1]
    return None if built == docs.resolve() else built


def _own(ds: Dataset, settings: Settings, cache_dir: Path) -> tuple[str, Path, Settings]:
    """The key, folder and settings of a dataset's own index."""
    key = index_key(ds, settings)
    root = (cache_dir / f"{_slug(ds.name)}-{key}").resolve()
    s = cfgs.apply(settings, {"index_dir": str(root / "index"), "chroma_url": None, "collection": "eval"})
    return key, root, s


def is_cached(ds: Dataset, settings: Settings, cache_dir: Path) -> bool:
    """Whether the dataset's own index for these settings is built (so no ingest is due)."""
    key, root, s = _own(ds, settings, cache_dir)
    marker = root / "complete.json"
    return marker.exists() and json.loads(marker.read_text()).get("key") == key and Index(s).exists()


def _warm_up(index: Index, settings: Settings) -> None:
    """Load the embedder, Chroma and BM25 before timing anything."""
    from retrieval.pipeline import retrieve

    try:
        retrieve(
            "warm up",
            cfgs.apply(settings, {"search": {"mode": "hybrid", "coarse": False, "ltr": False}}),
            index=index,
            k=1,
        )
    except RagError as e:
        log.warning("warm-up query failed: %s", e)


def run_config(
    cfg: cfgs.EvalConfig,
    ds: Dataset,
    settings: Settings,
    target: EvalIndex,
    qids: list[str],
    depth: int,
    progress: QueryProgress | None = None,
) -> ConfigResult:
    s = cfgs.apply(
        settings,
        cfgs.merge(
            cfg.overrides, {"search": {"candidates": max(settings.search.candidates, depth), "top_k": depth}}
        ),
    )
    out = ConfigResult(cfg.name, cfg.description)
    doc_of: Callable[[Hit], str | None] = (lambda h: h.record.id) if ds.level == "chunk" else target.doc_of
    events: Counter[tuple[str, str]] = Counter()
    for n, qid in enumerate(qids, 1):
        t0 = time.perf_counter()
        try:
            res = runners.run_query(cfg, ds.queries[qid], s, target.index, depth)
        except Exception as e:  # one failing query (or a stage's bug) must not end the run
            if not isinstance(e, RagError):
                log.exception("configuration %s failed on query %s", cfg.name, qid)
            out.errors.append(f"{qid}: {type(e).__name__}: {e}")
            out.run[qid] = {}
            _passage(out, ds, qid, [])  # a failed query found no answer: a miss, not a gap
            if progress:
                progress(cfg.name, n, len(qids))
            continue
        total = (time.perf_counter() - t0) * 1000
        out.run[qid] = best_rank(doc_of(h) for h in res.hits)
        _passage(out, ds, qid, res.hits)
        for stage, ms in res.timings().items():
            if stage != LLM_COUNT_STAGE:
                out.latency_ms.setdefault(stage, []).append(ms)
        out.latency_ms.setdefault("total", []).append(round(total, 2))
        out.llm_calls.append(_llm_calls(res.trace))
        out.llm_cache_hits.append(
            sum(int(t.detail.get("cache_hits", 0) or 0) for t in res.trace if t.stage == "llm_calls")
        )
        _count_events(res.trace, events)
        if progress:
            progress(cfg.name, n, len(qids))
    for (stage, why), count in events.items():
        out.notes.append(f"{stage}: {why} ({count} of {len(qids)} queries)")
    if out.errors:
        out.notes.append(
            f"{len(out.errors)} of {len(qids)} queries failed (scored as empty); first: {out.errors[0]}"
        )
    if cfg.uses_llm and out.llm_calls and not any(out.llm_calls) and any(out.llm_cache_hits):
        out.notes.append(
            "every LLM output came from the translation cache (an earlier run or configuration asked the "
            "same); latency excludes generation"
        )
    elif cfg.uses_llm and out.llm_calls and not any(out.llm_calls):
        out.notes.append(
            "no LLM calls were recorded in the trace (stages report them as `llm_calls` in their "
            "trace detail); the strategy may not have run"
        )
    return out


def _passage(out: ConfigResult, ds: Dataset, qid: str, hits: list[Hit]) -> None:
    """Rank of the first hit whose own text holds the query's evidence (queries with evidence only)."""
    if qid in ds.evidence:
        out.passage_ranks[qid] = answer_rank((h.record.text for h in hits), ds.evidence[qid])


def _count_events(trace: list[TraceEntry], events: Counter[tuple[str, str]]) -> None:
    """Stages that were skipped, and translations that fell back to the question itself."""
    for t in trace:
        if isinstance(t.detail.get("skipped"), str):
            events[(t.stage, "skipped, " + t.detail["skipped"])] += 1
        elif t.stage == "translate" and t.detail.get("fallback"):
            events[(t.stage, "LLM output unusable, searched the question itself")] += 1


def _llm_calls(trace: list[TraceEntry]) -> int:
    """The runner's exact count when it gave one, else what the stages reported."""
    for t in trace:
        if t.stage == LLM_COUNT_STAGE:
            return int(t.detail.get("llm_calls", 0))
    return sum(int(t.detail.get("llm_calls", 0) or 0) for t in trace)


def evaluate(
    ds: Dataset,
    settings: Settings,
    config_names: list[str] | None = None,
    name: str | None = None,
    depth: int = 100,
    limit: int | None = None,
    cache_dir: Path = Path("reports/.cache"),
    ingest_progress: IngestProgress | None = None,
    query_progress: QueryProgress | None = None,
    on_estimate: EstimateHook | None = None,
) -> EvalResult:
    """`on_estimate` gets what the run is expected to cost (est.Estimate) before the work starts."""
    t0 = time.perf_counter()
    if ds.corpus.kind == "index":  # the user's index is read, never written (no translation cache)
        settings = cfgs.apply(settings, {"translate": {"cache": False}})
    chosen = _choose(ds, settings, config_names)
    groups: dict[str, list[cfgs.EvalConfig]] = {}
    for c in chosen:
        groups.setdefault(json.dumps(c.shaping(), sort_keys=True), []).append(c)
    expected = est.plan(ds, settings, groups, lambda s: is_cached(ds, s, cache_dir), limit, cache_dir)
    if on_estimate:
        on_estimate(expected)
    results: list[ConfigResult] = []
    index_info: dict[str, Any] = {}
    validated = False
    qids: list[str] = []
    for shaping, members in groups.items():
        base = cfgs.apply(settings, json.loads(shaping))
        target = corpus_index(ds, base, cache_dir, ingest_progress)
        index_info[shaping if shaping != "{}" else "default"] = target.info
        if not validated:  # ids of the first index decide doc- or chunk-level scoring
            qids = _validated(ds, target, limit)
            validated = True
        lost = _unreachable(ds, target.index, qids)
        # Every stage sees the evaluation index as *the* index (index_dir included), so
        # nothing it opens by path can be the user's.
        here = target.index.settings
        _warm_up(target.index, here)
        for cfg in members:
            results.append(run_config(cfg, ds, here, target, qids, depth, query_progress))
            if lost:
                results[-1].notes.append(
                    f"{len(lost)} questions' evidence is in no indexed chunk (cut across chunks or "
                    f"changed by the loader), so they count as passage misses; first: {', '.join(lost[:5])}"
                )
    if expected.llm:
        asking = {c.name for c in chosen if c.uses_llm and not c.shaping()}  # LLM calls per question
        est.note_run(cache_dir, expected.llm, [r for r in results if r.name in asking])
    qrels = {q: ds.qrels[q] for q in qids}
    runs = {r.name: r.run for r in results}
    means, per_query = score(qrels, runs)
    with_evidence = [q for q in qids if q in ds.evidence]
    for r in results if with_evidence else []:
        p_means, p_per_query = passage_scores({q: r.passage_ranks.get(q) for q in with_evidence})
        means[r.name].update(p_means)
        per_query[r.name].update(p_per_query)
    baseline = results[0].name
    return EvalResult(
        name=name or ds.name,
        dataset=ds.name,
        level=ds.level,
        queries={q: ds.queries[q] for q in qids},
        qrels=qrels,
        configs=results,
        metrics=means,
        per_query=per_query,
        tests=paired_tests(per_query, baseline),
        issues=ds.issues,
        index=index_info,
        depth=depth,
        seconds=round(time.perf_counter() - t0, 2),
        baseline=baseline,
        evidence_queries=len(with_evidence),
        split=ds.split,
        estimate=expected.to_dict(),
    )


def _unreachable(ds: Dataset, index: Index, qids: list[str]) -> list[str]:
    """Queries whose evidence no chunk of the index holds: no configuration can find their
    answer passage, so the report says so rather than blaming retrieval. One joined string
    (NUL-separated, so no match spans two chunks) keeps this one C-level search per string."""
    wanted = [q for q in qids if q in ds.evidence]
    if not wanted:
        return []
    hay = "\0".join(squash(r.text) for r in index.docs.iter_records(("chunk",)))
    return [q for q in wanted if not any(squash(e) and squash(e) in hay for e in ds.evidence[q])]


def _choose(ds: Dataset, settings: Settings, names: list[str] | None) -> list[cfgs.EvalConfig]:
    """The configurations to run; unknown, unavailable and (on the user's index) those that
    need another index are noted in the dataset's issues."""
    chosen, notes = cfgs.select(names)
    for kind, msg in notes:
        # one message names every configuration left out; the count says how many
        n = len(cfgs.not_default()) if kind == "configs_not_default" else 1
        ds.issues.note(kind, msg, n)
    if not chosen:
        raise RagError("No configuration to run: " + "; ".join(m for _, m in notes))
    if ds.corpus.kind != "index":
        return chosen
    current = {k: getattr(settings, k).model_dump() for k in ("chunk", "ingest")}
    keep = []
    for c in chosen:
        if all(cfgs.merge(current.get(k, {}), v) == current.get(k) for k, v in c.shaping().items()):
            keep.append(c)
        else:
            ds.issues.note(
                "configs_unavailable",
                f"configuration {c.name!r} needs an index built with {c.shaping()}; the current index was "
                "not, so it is skipped",
            )
    return keep


def _validated(ds: Dataset, target: EvalIndex, limit: int | None) -> list[str]:
    chunks = set(target.index.docs.all_ids()) if ds.corpus.kind == "index" or _chunkish(ds) else None
    validate(ds, chunks)
    qids = list(ds.queries)[:limit] if limit else list(ds.queries)
    if not qids:
        raise RagError(
            f"Dataset {ds.name} has no query with a valid relevant judgement; see the messages above "
            f"({dict(ds.issues.counts)})."
        )
    return qids


def _chunkish(ds: Dataset) -> bool:
    """Whether some qrels ids are not documents (so may be chunk ids)."""
    ids = ds.corpus.ids
    return any(d not in ids for j in ds.qrels.values() for d in j)


__all__ = ["ConfigResult", "EvalResult", "corpus_index", "evaluate", "run_config", "PRIMARY"]
