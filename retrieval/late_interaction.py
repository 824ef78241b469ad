"""Late interaction (ColBERT's MaxSim) as a reranking stage after the coarse one.

MaxSim(q, d) = mean over the question's tokens of the best cosine to any token of the
candidate: every question term finds its own match, which a single pooled vector blurs
("solves DPR's trouble with unfamiliar terms and irrelevant redundant information").

Token vectors come from `core.token_vectors`: the index's own bi-encoder (MiniLM) by default,
or a ColBERT checkpoint folder (`search.late_model`). Candidates' vectors are computed for the
top `search.late_keep` hits only, at query time, and kept in a per-process cache keyed by
record id (an id is a hash of source and content, so an entry never goes stale). The stage
orders the head by z(coarse) + w * z(MaxSim), w = `search.late_weight`, and puts `maxsim` on
each hit's scores. With the bi-encoder's tokens it steps aside (says so in the trace) where
the CJK share of the question or candidates is above `search.late_max_cjk`: the English MiniLM
cannot read Chinese, so its MaxSim would only add noise there, at a cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from core.index import Index
from core.settings import Settings
from core.token_vectors import BiEncoderTokens, TokenEncoder, colbert_folder
from core.types import Hit
from retrieval import features
from retrieval.rerank import dense_blind_share, reorder

CACHE_MAX = 20_000  # candidates' token matrices kept per process (~100 tokens x 384 floats each)
_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_LOCK = threading.Lock()


def maxsim(q: np.ndarray, d: np.ndarray) -> float:
    """Mean over the rows of `q` of the best dot product with any row of `d` (both normalised)."""
    if len(q) == 0 or len(d) == 0:
        return 0.0
    return float((q @ d.T).max(axis=1).mean())


def encoder(index: Index, settings: Settings) -> TokenEncoder:
    s = settings.search
    if s.late_model:
        return colbert_folder(s.late_model, settings.embedding.device)
    return BiEncoderTokens(index.embedder.model, name=f"tokens of {index.embedder.name}")  # type: ignore[attr-defined]


def doc_tokens(enc: TokenEncoder, hits: list[Hit]) -> list[np.ndarray]:
    """The candidates' token matrices, from the cache or encoded now (one batch)."""
    keys = [(enc.name, h.record.id) for h in hits]
    with _LOCK:
        have = {k: _CACHE[k] for k in keys if k in _CACHE}
    todo = [(k, h) for k, h in zip(keys, hits, strict=True) if k not in have]
    if todo:
        mats = enc.documents([h.record.index_text() for _, h in todo])
        with _LOCK:
            for (k, _), m in zip(todo, mats, strict=True):
                have[k] = _CACHE[k] = m.astype(np.float16)  # half the memory; MaxSim needs no more
                while len(_CACHE) > CACHE_MAX:
                    _CACHE.popitem(last=False)
    return [have[k].astype(np.float32) for k in keys]


def rerank(index: Index, question: str, hits: list[Hit], settings: Settings) -> tuple[list[Hit], dict]:
    """The head `hits` reordered by coarse and MaxSim together (module docstring)."""
    s = settings.search
    share = 0.0 if s.late_model else dense_blind_share(question, hits)
    if share > s.late_max_cjk:
        return hits, {"skipped": f"the CJK share is above search.late_max_cjk ({s.late_max_cjk}): the "
                                 "bi-encoder's token vectors cannot read it", "cjk_share": round(share, 2)}
    enc = encoder(index, settings)
    q = enc.query(question)
    scores = np.array([maxsim(q, d) for d in doc_tokens(enc, hits)])
    w = s.late_weight
    coarse = np.array([h.scores.get("coarse", h.score) for h in hits], dtype=np.float64)
    mixed = features.zscore(coarse) + w * features.zscore(scores)
    out = reorder(hits, mixed, maxsim=scores, late=mixed)
    return out, {"encoder": enc.name, "weight": round(w, 3), "query_tokens": len(q), "n": len(hits)}


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
