"""Retrieval metrics with `ranx`, document-level aggregation of chunk hits, passage-level
metrics from evidence strings, paired significance tests and latency percentiles.

nDCG uses ranx's `ndcg` (trec_eval style: gain = relevance, discount = log2(rank + 1)).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METRICS = ["ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10", "map@100"]
PRIMARY = "ndcg@10"
EMPTY = "__no_hit__"  # stands in for an empty result list (ranx wants one entry per query)

RunDict = dict[str, dict[str, float]]

# Passage level: does a returned passage hold the answer? Computed from the hits' text and
# the query's evidence strings, so it needs no chunk ids in the qrels and survives re-chunking.
PASSAGE_METRICS = ["passage_hit@1", "passage_hit@5", "passage_mrr@10"]
_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Text with all whitespace removed. Chunkers re-join lines with or without a space and
    CJK text has no word spaces at all, so evidence is matched whitespace-blind; for strings
    of 8+ characters that costs next to no false matches."""
    return _WS.sub("", text)


def answer_rank(texts: Iterable[str], evidence: list[str]) -> int | None:
    """1-based rank of the first text that contains any evidence string (whitespace-blind),
    or None when none does."""
    needles = [n for n in (squash(e) for e in evidence) if n]
    if not needles:
        return None
    for rank, text in enumerate(texts, start=1):
        hay = squash(text)
        if any(n in hay for n in needles):
            return rank
    return None


def passage_scores(
    ranks: dict[str, int | None],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean passage metrics over the queries in `ranks` (query id -> rank of the first
    answer-holding passage, None for none), and the per-query values."""
    per_query: dict[str, dict[str, float]] = {m: {} for m in PASSAGE_METRICS}
    for qid, r in ranks.items():
        per_query["passage_hit@1"][qid] = 1.0 if r is not None and r <= 1 else 0.0
        per_query["passage_hit@5"][qid] = 1.0 if r is not None and r <= 5 else 0.0
        per_query["passage_mrr@10"][qid] = 1.0 / r if r is not None and r <= 10 else 0.0
    means = {m: (float(np.mean(list(v.values()))) if v else 0.0) for m, v in per_query.items()}
    return means, per_query


def best_rank(ranked_ids: Iterable[str | None]) -> dict[str, float]:
    """Aggregate a ranked list of hits to ids by their best rank: the first hit of each id
    gives its rank; later hits of the same id are ignored; `None` (unmapped hit) keeps its
    rank slot. Scores are 1/rank so ranx orders them exactly as ranked."""
    out: dict[str, float] = {}
    for rank, doc_id in enumerate(ranked_ids, start=1):
        if doc_id is not None and doc_id not in out:
            out[doc_id] = 1.0 / rank
    return out


def _ranx(qrels: dict[str, dict[str, int]], runs: dict[str, RunDict]) -> tuple[Any, dict[str, Any]]:
    from ranx import Qrels, Run

    q = Qrels({qid: dict(j) for qid, j in qrels.items()})
    rs = {}
    for name, run in runs.items():
        full = {qid: (run.get(qid) or {EMPTY: 0.0}) for qid in qrels}
        rs[name] = Run(full, name=name)
    return q, rs


def ndcg_at(run: dict[str, float], judged: dict[str, int], k: int = 10) -> float:
    """nDCG@k of one query computed directly (trec_eval style, as ranx's `ndcg`: gain =
    relevance, discount log2(rank + 1), ideal from the judgements); `score` checks ranx by it."""
    ranked = sorted(run.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


CHECK_TRIES = 2  # ranx evaluations of a run whose nDCG@10 disagrees with ndcg_at before giving up


def _disagreeing(qrels: dict[str, dict[str, int]], run: RunDict, values: dict[str, float]) -> list[str]:
    """The queries whose nDCG@10 from ranx differs from the direct computation."""
    return [qid for qid, v in values.items()
            if abs(v - ndcg_at(run.get(qid) or {}, qrels.get(qid, {}))) > 1e-6]


def score(
    qrels: dict[str, dict[str, int]],
    runs: dict[str, RunDict],
    metrics: list[str] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """Mean metrics per run, and per-query values per run and metric.

    A run's nDCG@10 is checked query by query against `ndcg_at`: one `rag eval` once scored
    its BM25 baseline 0.048 where the same saved runs scored 0.803 on every rerun (ranx's
    numba kernels returned zeros). A run that disagrees is evaluated again; one that still
    disagrees stops the report with an error rather than print wrong figures."""
    from ranx import evaluate

    metrics = metrics or METRICS
    if not qrels:
        return {n: {m: 0.0 for m in metrics} for n in runs}, {n: {m: {} for m in metrics} for n in runs}
    q, rs = _ranx(qrels, runs)
    means: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    qids = list(q.keys())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's int cast notices
        for name, run in rs.items():
            for attempt in range(1, CHECK_TRIES + 1):
                vals = evaluate(q, run, metrics, return_mean=False, make_comparable=True)
                if len(metrics) == 1:
                    vals = {metrics[0]: vals}
                per_query[name] = {
                    m: {qid: float(v) for qid, v in zip(qids, vals[m], strict=True)} for m in metrics
                }
                bad = _disagreeing(qrels, runs[name], per_query[name][PRIMARY]) if PRIMARY in metrics else []
                if not bad:
                    break
                log.warning("ranx's %s for %s disagrees with a direct computation on %d of %d queries "
                            "(try %d of %d)", PRIMARY, name, len(bad), len(qids), attempt, CHECK_TRIES)
            else:
                raise RuntimeError(
                    f"the metrics of {name} could not be computed reliably: ranx's {PRIMARY} disagreed with "
                    f"a direct computation on {len(bad)} of {len(qids)} queries, {CHECK_TRIES} times "
                    f"(e.g. {bad[0]}); rerun rag eval")
            means[name] = {m: float(np.mean(vals[m])) for m in metrics}
    return means, per_query


def paired_tests(
    per_query: dict[str, dict[str, dict[str, float]]], baseline: str, metrics: list[str] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Two-sided paired t-test of each run against the baseline, per metric:
    {run: {metric: {"p": p, "wins": w, "ties": t, "losses": l}}}."""
    from scipy import stats

    metrics = metrics or METRICS
    out: dict[str, dict[str, dict[str, float]]] = {}
    base = per_query.get(baseline, {})
    for name, by_metric in per_query.items():
        if name == baseline:
            continue
        out[name] = {}
        for m in metrics:
            qids = sorted(set(base.get(m, {})) & set(by_metric.get(m, {})))
            a = np.array([by_metric[m][q] for q in qids])
            b = np.array([base[m][q] for q in qids])
            diff = a - b
            if len(qids) < 2 or np.allclose(diff, diff[0] if len(diff) else 0.0):
                p = 1.0 if len(qids) < 2 or abs(float(diff[0])) < 1e-12 else 0.0
            else:
                p = float(stats.ttest_rel(a, b).pvalue)
            out[name][m] = {
                "p": p if not math.isnan(p) else 1.0,
                "wins": int((diff > 1e-12).sum()),
                "ties": int((np.abs(diff) <= 1e-12).sum()),
                "losses": int((diff < -1e-12).sum()),
            }
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}
    arr = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p95": round(float(np.percentile(arr, 95)), 2),
        "mean": round(float(arr.mean()), 2),
        "n": len(values),
    }
