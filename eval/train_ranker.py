"""Train the learning-to-rank model (LightGBM lambdarank).

Labels come from a labelled set (`eval.datasets.Dataset`): a BEIR folder, whose corpus
gets an index of its own (cached, as `rag eval` does), or synthetic questions the LLM
wrote over the current index (`eval.synthetic`; the chunk a question was written from
is its positive, every other candidate the retriever returned is a hard negative).

For each query the pipeline runs without the LTR stage; the candidates it hands to that
stage, with `retrieval.features`, are one training group. Queries are split (seeded)
into train and held-out; the model is fitted on the train part and the report gives
nDCG@10 on the held-out part with and without it (and for a random order). The model
is written as a folder: `booster.txt` (LightGBM's text format) and `manifest.json`
(format, feature list, package versions, embedding model, report). No pickle.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.boosting import lightgbm
from core.errors import RagError
from core.index import Index
from core.settings import Settings
from core.types import Hit
from core.versions import package_versions
from retrieval import features
from retrieval.pipeline import retrieve
from retrieval.rerank import BOOSTER_FILE, MANIFEST_FILE, RANKER_FORMAT, mixed
from retrieval.state import BEFORE_LTR

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)

# Scores that can only help a candidate as they grow (+1) or as they shrink (-1): the
# model may not learn the reverse from a quirk of its training set.
MONOTONE = {
    "dense": 1,
    "dense_gap": -1,
    "dense_z": 1,
    "dense_rank": -1,
    "bm25_norm": 1,
    "bm25_z": 1,
    "bm25_rank": -1,
    "rrf_norm": 1,
    "in_rank": -1,
    "coverage": 1,
    "title_match": 1,
    "step_back": 1,
    "hyde": 1,
    "n_queries": 1,
}

PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "lambdarank_truncation_level": 20,
    "deterministic": True,
    "force_row_wise": True,
    "n_jobs": 1,
    "verbose": -1,
}


@dataclass
class Group:
    """One query's candidates: features, graded labels, and the id each is judged by."""

    qid: str
    x: np.ndarray
    y: np.ndarray
    ids: list[str | None]
    judged: dict[str, int]
    # the candidates' scores before the LTR stage (coarse, or late interaction where it ran): what
    # a self-trained ranker is mixed with at query time (search.ltr_self_mix); None when unknown
    prior: np.ndarray | None = None


def collect(
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    index: Index,
    settings: Settings,
    label_id: Callable[[Hit], str | None],
    progress: Progress | None = None,
) -> list[Group]:
    """Run retrieval without LTR for every query; one group per query."""
    keep = settings.search.coarse_keep
    out: list[Group] = []
    for n, (qid, text) in enumerate(queries.items(), 1):
        res = retrieve(text, settings, index=index, k=keep, skip=BEFORE_LTR)
        hits = res.hits
        ids = [label_id(h) for h in hits]
        judged = qrels.get(qid, {})
        y = np.array([judged.get(i, 0) if i else 0 for i in ids], dtype=np.int32)
        out.append(Group(qid, features.compute(res.keyword_query or text, hits, 1), y, ids, judged))
        if progress:
            progress("candidates", n, len(queries))
    return out


def split(groups: list[Group], holdout: float, seed: int) -> tuple[list[Group], list[Group]]:
    order = sorted(groups, key=lambda g: g.qid)
    random.Random(seed).shuffle(order)
    n_test = max(1, int(round(len(order) * holdout))) if len(order) > 1 and holdout > 0 else 0
    return order[n_test:], order[:n_test]


def ndcg(groups: list[Group], scores: list[np.ndarray] | None = None, k: int = 10) -> float:
    """Mean nDCG@k over the groups, candidates ordered by `scores` (None: as retrieved);
    each judged id counts at its best place; the ideal uses every judged relevant id."""
    vals = []
    for gi, g in enumerate(groups):
        order = range(len(g.ids)) if scores is None else np.argsort(-scores[gi], kind="stable")
        seen: set[str] = set()
        ranked: list[str] = []
        for j in order:
            i = g.ids[int(j)]
            if i is not None and i not in seen:
                seen.add(i)
                ranked.append(i)
        dcg = sum((2 ** g.judged.get(d, 0) - 1) / math.log2(r + 2) for r, d in enumerate(ranked[:k]))
        ideal = sorted((v for v in g.judged.values() if v > 0), reverse=True)[:k]
        idcg = sum((2**v - 1) / math.log2(r + 2) for r, v in enumerate(ideal))
        vals.append(dcg / idcg if idcg > 0 else 0.0)
    return float(np.mean(vals)) if vals else 0.0


def fit(
    train: list[Group], seed: int = 0, params: dict[str, Any] | None = None, monotone: bool = True
) -> Any:
    """A fitted LightGBM booster (lambdarank), grouped by query, reproducible for a seed.
    Trained with `lightgbm.train`, which needs no scikit-learn (core/boosting.py): the same
    booster as `LGBMRanker(**params).fit` (tests/eval/test_train_ranker.py)."""
    lgb = lightgbm()
    use = [g for g in train if len(g.y) > 1 and g.y.max() > 0]  # groups without a positive teach nothing
    if not use:
        raise RagError(
            "No training query has a relevant candidate among the retrieved ones; "
            "use more queries, or check that the labels name documents of the corpus."
        )
    p = {**PARAMS, **(params or {}), "random_state": seed}
    if monotone:
        p["monotone_constraints"] = [MONOTONE.get(f, 0) for f in features.FEATURES]
        p["monotone_constraints_method"] = "advanced"
    rounds = p.pop("n_estimators")
    x = np.vstack([g.x for g in use])
    y = np.concatenate([g.y for g in use])
    data = lgb.Dataset(x, y, group=[len(g.y) for g in use], feature_name=list(features.FEATURES))
    return lgb.train(p, data, num_boost_round=rounds)


def predict(booster: Any, groups: list[Group]) -> list[np.ndarray]:
    return [np.asarray(booster.predict(g.x, num_threads=1), dtype=np.float64) for g in groups]


def save(booster: Any, out: Path, embedding_model: str, report: dict[str, Any]) -> Path:
    """Write `booster.txt` + `manifest.json` into `out` (replacing a previous model)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (BOOSTER_FILE + ".tmp")
    booster.save_model(str(tmp))
    manifest = {
        "format_version": RANKER_FORMAT,
        "kind": "lightgbm-lambdarank",
        "feature_version": features.FEATURE_VERSION,
        "features": list(features.FEATURES),
        "embedding_model": embedding_model,
        "versions": package_versions(("localrag", "lightgbm", "numpy", "sentence-transformers", "bm25s")),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "report": report,
    }
    tmp.replace(out / BOOSTER_FILE)
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return out


def importance(booster: Any) -> dict[str, float]:
    gain = booster.feature_importance(importance_type="gain")
    total = float(gain.sum()) or 1.0
    pairs = sorted(zip(features.FEATURES, gain, strict=True), key=lambda t: -t[1])
    return {f: round(float(g) / total, 4) for f, g in pairs if g > 0}


def cross_validate(groups: list[Group], folds: int, seed: int = 0, mix: float = 1.0,
                   params: dict[str, Any] | None = None, workers: int = 1,
                   subsets: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """nDCG@10 of the order before the ranker and of the order with it (`mixed` at `mix`, as the
    query path ranks), each query scored by a model fitted without it: `folds` models, every
    query held out once (`mixed`: retrieval/rerank.py), the queries of one chunk in one fold.
    One held-out split of 45 pseudo-queries, the ranker scored alone, gave gains that moved by up
    to 0.055 from one training to the next (three seeds), across the switch-on threshold
    (zh-prose, notes-mixed); pooled over all queries the estimate is steadier. Also the gain
    per fold. `workers`: folds fitted at once, in threads (each fit is single-threaded and
    LightGBM releases the GIL, so the models, and the result, are the same). `subsets`: name ->
    query ids; the same two figures over each subset's held-out queries (`subsets` in the result)."""
    parts = fold_groups(groups, folds, seed)
    scored: list[tuple[Group, np.ndarray]] = []
    per_fold: list[float] = []
    todo: list[tuple[list[Group], list[Group]]] = []
    for i, test in enumerate(parts):
        train = [g for j, p in enumerate(parts) if j != i for g in p]
        if test and any(len(g.y) > 1 and g.y.max() > 0 for g in train):
            todo.append((train, test))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        boosters = list(pool.map(lambda job: fit(job[0], seed, params), todo))
    for (_, test), booster in zip(todo, boosters, strict=True):
        scores = [mixed(s, g.prior, mix) for g, s in zip(test, predict(booster, test), strict=True)]
        scored += list(zip(test, scores, strict=True))
        per_fold.append(round(ndcg(test, scores) - ndcg(test), 4))
    held = [g for g, _ in scored]
    out: dict[str, Any] = {
        "folds": len(per_fold),
        "queries": len(held),
        "without_ranker": round(ndcg(held), 4),
        "with_ranker": round(ndcg(held, [s for _, s in scored]), 4),
        "gain_per_fold": per_fold,
    }
    if subsets:
        out["subsets"] = {}
        for name, qids in subsets.items():
            part = [(g, s) for g, s in scored if g.qid in qids]
            out["subsets"][name] = {
                "queries": len(part),
                "without_ranker": round(ndcg([g for g, _ in part]), 4) if part else None,
                "with_ranker": round(ndcg([g for g, _ in part], [s for _, s in part]), 4) if part else None,
            }
    return out


def fold_groups(groups: list[Group], folds: int, seed: int = 0) -> list[list[Group]]:
    """`folds` parts (fewer when there are fewer chunks), by the chunk a query was cut from, not by
    query: a small corpus gives a chunk several pseudo-queries, and one of them in the training
    folds would teach the ranker that chunk's own features before another is scored."""
    key_of = {g.qid: _source_key(g) for g in groups}
    keys = sorted(set(key_of.values()))
    random.Random(seed).shuffle(keys)
    k = max(2, min(folds, len(keys)))
    fold = {key: i % k for i, key in enumerate(keys)}
    parts: list[list[Group]] = [[] for _ in range(k)]
    for g in sorted(groups, key=lambda g: g.qid):
        parts[fold[key_of[g.qid]]].append(g)
    return parts


def _source_key(g: Group) -> str:
    """The id a query is judged by most (its own chunk for a pseudo-query), else its id."""
    top = max(g.judged.values(), default=0)
    return min((i for i, v in g.judged.items() if v == top), default=g.qid) if top > 0 else g.qid


def train_groups(
    groups: list[Group], seed: int = 0, holdout: float = 0.2, params: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Fit on the train split; report nDCG@10 on the held-out split with and without it."""
    train, test = split(groups, holdout, seed)
    t0 = time.perf_counter()
    booster = fit(train, seed, params)
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {
        "queries": len(groups),
        "train_queries": len(train),
        "heldout_queries": len(test),
        "train_queries_with_positive": sum(1 for g in train if g.y.max(initial=0) > 0),
        "candidates_per_query": round(float(np.mean([len(g.y) for g in groups])) if groups else 0.0, 1),
        "seed": seed,
        "holdout": holdout,
        "fit_seconds": round(time.perf_counter() - t0, 2),
        "params": {k: v for k, v in {**PARAMS, **(params or {})}.items() if k not in ("verbose", "n_jobs")},
    }
    if test:
        report["heldout_ndcg@10"] = {
            "without_ranker": round(ndcg(test), 4),
            "with_ranker": round(ndcg(test, predict(booster, test)), 4),
            "random_order": round(ndcg(test, [rng.random(len(g.y)) for g in test]), 4),
        }
    report["feature_importance_gain"] = importance(booster)
    return booster, report
