"""The two reranking stages after fusion.

Coarse: the bi-encoder scores the whole fused pool from the chunk embeddings already
stored (never re-encoding a candidate), BM25 scores fill in for candidates only the
dense retriever found, and the pool is ordered by a blend of the two (or by fused rank,
or by cosine alone: `search.coarse_order`) and cut to `search.coarse_keep`. With
`search.prf_weight` > 0 the blend gains pseudo-relevance feedback (retrieval/prf.py). When
`search.cross_encoder` names a sentence-transformers CrossEncoder folder, that model
scores the pool instead.

Fine: a LightGBM lambdarank booster scores the survivors from `retrieval.features`, its trees
evaluated in NumPy (core/forest.py, LightGBM's scores exactly) so that no query imports LightGBM.
The model is a folder (`booster.txt` + `manifest.json`, no pickle) found at
`search.ltr_model`, else `<index>/ranker/`; a model trained for another feature list or
embedding model is refused with a clear error. Without a model the stage is skipped and
the trace says so.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import forest
from core.boosting import lightgbm
from core.errors import ConfigError, RankerError
from core.index import Index
from core.keyword import Groups
from core.lang import cjk_share
from core.settings import Settings
from core.tokens import tokenize
from core.types import Hit
from retrieval import features, prf

log = logging.getLogger(__name__)

RANKER_FORMAT = 1
RANKER_DIR = "ranker"
BOOSTER_FILE = "booster.txt"
MANIFEST_FILE = "manifest.json"
SELF_TRAINED = "self-supervised"  # report.source of a ranker eval/self_train.py wrote
TRACE_TOP = 30  # candidates listed per stage in the trace

# --- stored embeddings, cached per process --------------------------------------------
# A record id is a hash of its source and content, so its vector never changes for a
# given embedding model: the cache needs no invalidation, only filling.
_EMB: dict[tuple[str, str], dict[str, np.ndarray]] = {}
_EMB_LOCK = threading.Lock()
# Up to this many vectors a collection is read whole at first use; above it each query fetches
# its pool's vectors by id. At 100k vectors reading all took 4.3 s of a cold `rag search` (total
# 5.6-7.0 s), where 200 ids by id take 7 ms: the whole read pays back after some 600 queries.
PRELOAD_MAX = 5_000


def stored_embeddings(index: Index, ids: list[str]) -> np.ndarray:
    """The stored vectors of `ids` (rows in order; NaN where the store has none)."""
    key = (str(index.path), index.embedder.name)
    with _EMB_LOCK:
        cache = _EMB.get(key)
        if cache is None:
            cache = _EMB[key] = {}
            if index.vectors.count() <= PRELOAD_MAX:
                _preload(index, cache)
        missing = [i for i in ids if i not in cache]
        if missing:
            cache.update(index.vectors.get_embeddings(missing))
        dim = next((len(v) for v in cache.values()), 0) if cache else 0
        out = np.full((len(ids), dim), np.nan, dtype=np.float32)
        for row, i in enumerate(ids):
            v = cache.get(i)
            if v is not None:
                out[row] = v
    return out


def _preload(index: Index, cache: dict[str, np.ndarray]) -> None:
    cache.update(index.vectors.all_embeddings())


def clear_cache() -> None:
    with _EMB_LOCK:
        _EMB.clear()


# --- coarse stage -----------------------------------------------------------------------
def context_bm25(scores: dict[str, float], context: float, doc: float) -> float:
    """A chunk's BM25 with its neighbours' and its document's best added at the given
    weights: an answer that spans a chunk boundary, or a document that matches all over,
    still ranks (0, 0 = the chunk's own BM25)."""
    own = scores.get("bm25", 0.0)
    ctx = scores.get("bm25_prev", 0.0) + scores.get("bm25_next", 0.0)
    return own + context * ctx + doc * scores.get("bm25_doc", own)


def dense_blind_share(query: str, hits: list[Hit], corpus_cap: float | None = None) -> float:
    """How much of this comparison the English-only encoder cannot read: the CJK share of
    the question or of the candidates' text, whichever is larger (an English question over
    Chinese notes gets cosines as meaningless as a Chinese one). `corpus_cap`: the corpus's own
    CJK share where the corpus is mostly English (`mixed_corpus_cap`); the candidates' share is
    capped by it, since there the encoder reads most of the corpus, and the Chinese passages
    that an English question's translations bring into the pool (retrieval/crosslingual.py)
    must not switch the cosine off for the English ones: "What water temperature should I use
    to brew coffee?" over the sample folder ranked the Chinese tea guide first on its 水温."""
    texts = [cjk_share(h.record.text[:1000]) for h in hits[:50]]
    pool = float(np.mean(texts)) if texts else 0.0
    if corpus_cap is not None:
        pool = min(pool, corpus_cap)
    return max(cjk_share(query), pool)


def mixed_corpus_cap(index: Index, settings: Settings) -> float | None:
    """The corpus's CJK share when it is below search.crosslingual_corpus_cjk (an English or a
    mixed corpus), else None (a Chinese corpus: the candidates' share decides, as before)."""
    try:
        share = index.keyword.lexicon().cjk_share
    except Exception:  # no keyword index: nothing known of the corpus
        return None
    return share if share < settings.search.crosslingual_corpus_cjk else None


def blend(cos: np.ndarray, bm25: np.ndarray, weight: float, norm: str = "zscore") -> np.ndarray:
    """weight * norm(cosine) + (1 - weight) * norm(BM25), normalised over the pool:
    `zscore` (standardised) or `minmax` (cosine min-max, BM25 / max)."""
    if len(cos) == 0:
        return np.zeros(0)
    cos = np.nan_to_num(cos, nan=float(np.nanmin(cos)) if not np.isnan(cos).all() else 0.0)
    if norm == "zscore":
        return weight * features.zscore(cos) + (1.0 - weight) * features.zscore(bm25)
    lo, hi = float(cos.min()), float(cos.max())
    d = (cos - lo) / (hi - lo) if hi - lo > 1e-9 else np.zeros_like(cos)
    top = float(bm25.max())
    b = bm25 / top if top > 0 else np.zeros_like(bm25)
    return weight * d + (1.0 - weight) * b


def score_pool(index: Index, query: str, hits: list[Hit], vectors: dict[str, np.ndarray],
               bigrams: bool = True, groups: Groups | None = None) -> None:
    """Put `sbert` (cosine to the question), complete `bm25`, and `step_back` / `hyde`
    cosines (when those queries exist) on every hit, from stored embeddings."""
    if not hits:
        return
    ids = [h.record.id for h in hits]
    emb = stored_embeddings(index, ids)
    ctx = index.keyword.context_scores(query, ids, bigrams, groups)  # bm25, bm25_prev, bm25_next, bm25_doc
    sims = {role: emb @ v for role, v in vectors.items() if emb.shape[1] == len(v)}
    # A hit found through a summary or question (multi-representation) keeps that match's
    # cosine where it is the higher: the parent's own vector may be far from the question
    # the representation answers, which is why the representation was indexed.
    rows = [row for row, h in enumerate(hits) if h.matched]
    if rows:
        rep = stored_embeddings(index, [str(hits[row].matched) for row in rows])
        for role, v in vectors.items():
            if role in sims and rep.shape[1] == len(v):
                sims[role][rows] = np.fmax(sims[role][rows], rep @ v)  # fmax: NaN (no vector) loses
    for row, h in enumerate(hits):
        for name, col in ctx.items():
            h.scores[name] = float(col[row])
        for role, s in sims.items():
            if not np.isnan(s[row]):
                h.scores["sbert" if role == "original" else role] = float(s[row])


@functools.lru_cache(maxsize=2)
def _cross_encoder(path: str, device: str) -> Any:
    from sentence_transformers import CrossEncoder

    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(
            f"search.cross_encoder '{path}' is not a folder; point it at a sentence-transformers "
            "CrossEncoder model directory on disk, or unset it to use the bi-encoder."
        )
    return CrossEncoder(str(p), device=device, local_files_only=True)


def coarse(
    index: Index, query: str, hits: list[Hit], vectors: dict[str, np.ndarray], settings: Settings,
    bigrams: bool = True, groups: Groups | None = None,
) -> tuple[list[Hit], dict[str, Any]]:
    """The whole pool, best first (the caller keeps the first `coarse_keep`); `bigrams`: BM25
    scores the query's CJK bigrams too (QueryState.keyword_bigrams); `groups`: its terms'
    translations, each term and its translations scored as one (core/keyword.py)."""
    s = settings.search
    score_pool(index, query, hits, vectors, bigrams, groups)
    detail: dict[str, Any] = {"pool": len(hits), "keep": s.coarse_keep}
    if s.cross_encoder:
        ce = _cross_encoder(s.cross_encoder, settings.embedding.device)
        scores = np.asarray(
            ce.predict([(query, h.record.index_text()) for h in hits], show_progress_bar=False),
            dtype=np.float64,
        ).reshape(len(hits), -1)[:, -1]
        detail["scorer"] = f"cross-encoder {s.cross_encoder}"
    else:
        cos = np.array([h.scores.get("sbert", np.nan) for h in hits], dtype=np.float64)
        bm25 = np.array([context_bm25(h.scores, s.bm25_context, s.bm25_doc) for h in hits], dtype=np.float64)
        detail["scorer"] = f"bi-encoder ({s.coarse_order})"
        if s.coarse_order == "sbert":
            scores = np.nan_to_num(cos, nan=-1.0)
        elif s.coarse_order == "blend":
            share = dense_blind_share(query, hits, mixed_corpus_cap(index, settings))
            w = (1.0 - share) * s.blend_weight + share * s.blend_weight_cjk
            scores = blend(cos, bm25, w, s.blend_norm)
            detail.update(blend_weight=round(w, 3), cjk_share=round(share, 3), blend_norm=s.blend_norm,
                          bm25_context=s.bm25_context, bm25_doc=s.bm25_doc)
            if s.prf_weight > 0 and len(hits) > s.prf_docs:
                scores = feedback(index, query, hits, scores, w, settings, detail)
        else:  # "fused": keep the fused order
            scores = np.array([h.score for h in hits], dtype=np.float64)
    return reorder(hits, scores, coarse=scores), detail


def feedback(index: Index, query: str, hits: list[Hit], scores: np.ndarray, dense_weight: float,
             settings: Settings, detail: dict[str, Any]) -> np.ndarray:
    """The coarse scores plus pseudo-relevance feedback (retrieval/prf.py): Rocchio cosines and
    the BM25 of RM3 expansion terms from the best `prf_docs` candidates, blended with the
    coarse blend's cosine weight; `prf_cos` and `prf_bm25` go on each hit's scores."""
    s = settings.search
    order = np.argsort(-scores, kind="stable")
    ids = [h.record.id for h in hits]
    emb = stored_embeddings(index, ids)
    has_vec = ~np.isnan(emb).any(axis=1) if emb.shape[1] else np.zeros(len(hits), dtype=bool)
    cos = prf.rocchio_cosines(emb, prf.feedback_rows(order, has_vec, s.prf_docs))
    docs = [tokenize(hits[int(r)].record.index_text()) for r in order[: s.prf_docs]]
    vocab = {t for d in docs for t in d}
    kw = index.keyword
    terms = prf.expansion_terms(docs, set(tokenize(query)), kw.doc_freqs(vocab), len(kw.ids), s.prf_terms)
    bm = kw.term_scores(terms, ids)
    for h, c, b in zip(hits, cos, bm, strict=True):
        if not np.isnan(c):
            h.scores["prf_cos"] = float(c)
        h.scores["prf_bm25"] = float(b)
    detail.update(prf_weight=s.prf_weight, prf_terms=terms)
    return scores + s.prf_weight * blend(cos, bm.astype(np.float64), dense_weight)


def reorder(hits: list[Hit], final: np.ndarray, **columns: np.ndarray) -> list[Hit]:
    """`hits` best first by `final` (stable: ties keep their order), each hit's `score` set to
    its final value and each named column put on its scores (the stage's own figures)."""
    out: list[Hit] = []
    for j in np.argsort(-final, kind="stable"):
        h = hits[int(j)]
        for name, col in columns.items():
            h.scores[name] = float(col[j])
        h.score = float(final[j])
        out.append(h)
    return out


# --- LTR stage --------------------------------------------------------------------------
@dataclass
class Ranker:
    path: Path
    manifest: dict[str, Any]
    booster: Any

    def predict(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.booster, forest.Forest):
            return self.booster.predict(x)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)


def ranker_path(settings: Settings) -> Path:
    if settings.search.ltr_model:
        return Path(settings.search.ltr_model).expanduser()
    return settings.index_path / RANKER_DIR


def check_manifest(man: dict[str, Any], path: Path, embedding_model: str | None) -> None:
    """Refuse a model this code would misread."""
    if man.get("format_version") != RANKER_FORMAT:
        raise RankerError(
            f"The ranker at {path} has format {man.get('format_version')!r}, this version reads "
            f"{RANKER_FORMAT}; retrain it with `rag train-ranker`."
        )
    if list(man.get("features", [])) != list(features.FEATURES):
        theirs, ours = set(man.get("features", [])), set(features.FEATURES)
        diff = sorted(theirs ^ ours) or ["(same names, other order)"]
        raise RankerError(
            f"The ranker at {path} was trained on another feature list (differs in: {', '.join(diff)}); "
            "retrain it with `rag train-ranker`, or delete the folder to rank without it."
        )
    built = man.get("embedding_model")
    if embedding_model and built and built != embedding_model:
        raise RankerError(
            f"The ranker at {path} was trained with embedding model '{built}' but the index uses "
            f"'{embedding_model}'; retrain it with `rag train-ranker`, or delete the folder."
        )


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Ranker:
    p = Path(path)
    man = json.loads((p / MANIFEST_FILE).read_text())
    # The trees evaluated in NumPy (core/forest.py: LightGBM's scores to the last bit) spare a
    # cold command LightGBM's import; a model it does not read is LightGBM's to score.
    try:
        booster: Any = forest.parse((p / BOOSTER_FILE).read_text(errors="replace"))
    except ValueError:
        booster = None  # LightGBM reads it (another version's file?), or says why it cannot
    if booster is None:
        try:
            booster = lightgbm().Booster(model_file=str(p / BOOSTER_FILE))
        except Exception as e:  # noqa: BLE001 - LightGBMError, whatever LightGBM found wrong
            raise RankerError(f"The ranker at {p}: {BOOSTER_FILE} cannot be read ({e}); retrain it with "
                              "`rag train-ranker`, or delete the folder to rank without it.") from e
    if list(booster.feature_name()) != list(man.get("features", [])):
        raise RankerError(
            f"The ranker at {p}: booster features {booster.feature_name()} do not match its manifest; "
            "retrain it with `rag train-ranker`."
        )
    return Ranker(p, man, booster)


def load_ranker(settings: Settings, embedding_model: str | None) -> Ranker | None:
    """The trained model, or None when there is none; raises RankerError for a bad one."""
    return ranker_state(settings, embedding_model)[0]


def ranker_state(settings: Settings, embedding_model: str | None) -> tuple[Ranker | None, str]:
    """The model the LTR stage uses (None: the stage keeps the coarse order) and why.
    A bad labelled model raises RankerError; a self-trained one that is stale or measured no
    better than the coarse order is skipped, since the next `rag ingest` retrains it."""
    p = ranker_path(settings)
    if not (p / MANIFEST_FILE).exists() and not (p / BOOSTER_FILE).exists():
        if settings.search.ltr_model:
            raise RankerError(
                f"search.ltr_model '{p}' holds no ranker ({BOOSTER_FILE} + {MANIFEST_FILE}); "
                "train one with `rag train-ranker` or unset search.ltr_model."
            )
        return None, f"no trained ranker at {p}; `rag ingest` trains one, or run `rag train-ranker`"
    for f in (MANIFEST_FILE, BOOSTER_FILE):
        if not (p / f).exists():
            raise RankerError(f"The ranker at {p} lacks {f}; retrain it with `rag train-ranker`.")
    try:
        man = json.loads((p / MANIFEST_FILE).read_text())
    except json.JSONDecodeError as e:
        raise RankerError(f"The ranker manifest {p / MANIFEST_FILE} is not JSON ({e}); retrain it.") from e
    report = man.get("report", {}) if isinstance(man.get("report"), dict) else {}
    if report.get("source") == SELF_TRAINED:
        try:
            check_manifest(man, p, embedding_model)
        except RankerError as e:
            return None, f"self-trained ranker at {p} is out of date ({e}); the next `rag ingest` retrains it"
        if report.get("active") is False:
            return None, str(report.get("reason") or "self-trained ranker measured no better than coarse")
    else:
        check_manifest(man, p, embedding_model)
    why = str(report.get("reason") or f"ranker trained from {report.get('dataset', 'labelled data')}")
    return _load(str(p.resolve()), (p / BOOSTER_FILE).stat().st_mtime_ns), why


def self_trained(ranker: Ranker) -> bool:
    """Trained from the corpus itself (eval/self_train.py), not from labels: it then corrects
    the coarse order (`search.ltr_self_mix`) rather than replacing it."""
    return bool(ranker.manifest.get("report", {}).get("source") == SELF_TRAINED)


def fine(ranker: Ranker, query: str, hits: list[Hit], n_queries: int, mix: float = 1.0) -> list[Hit]:
    """Reorder by the ranker; with `mix` < 1 by `mix * z(ranker) + (1 - mix) * z(coarse)`
    (z-scores over the list), so that a ranker trained without labels corrects the coarse
    order instead of replacing it."""
    if not hits:
        return hits
    scores = ranker.predict(features.compute(query, hits, n_queries))
    return reorder(hits, mixed(scores, prior_scores(hits), mix), ltr=scores)


def prior_scores(hits: list[Hit]) -> np.ndarray | None:
    """The order before the LTR stage: the late-interaction blend where that stage ran, else the
    coarse score; None when some hit has neither."""
    prior = [h.scores.get("late", h.scores.get("coarse")) for h in hits]
    return np.asarray(prior, dtype=np.float64) if all(p is not None for p in prior) else None


def mixed(pred: np.ndarray, prior: np.ndarray | None, mix: float) -> np.ndarray:
    """mix * z(ranker) + (1 - mix) * z(prior) over one list; the ranker's own scores without a
    prior or at mix 1. The self-training gate (eval/self_train.py) ranks its held-out lists so."""
    if prior is None or mix >= 1.0:
        return pred
    return mix * features.zscore(pred) + (1 - mix) * features.zscore(prior)


# --- for the trace ----------------------------------------------------------------------
def listing(before: list[str], hits: list[Hit], key: str) -> list[dict[str, Any]]:
    """The top of a reranked list: rank, rank before the stage (`was`), score, title."""
    pos = {rid: i for i, rid in enumerate(before, start=1)}
    return [
        {
            "id": h.record.id,
            "rank": r,
            "was": pos.get(h.record.id),
            "score": round(h.scores.get(key, h.score), 5),
            "title": h.record.title[:80],
        }
        for r, h in enumerate(hits[:TRACE_TOP], start=1)
    ]
