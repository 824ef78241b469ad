"""The one feature list of the learning-to-rank stage, and how each feature is computed.

Features describe one (query, candidate) pair from what the earlier stages left on the
hit (`Hit.scores`: `sbert` cosine and complete `bm25` from the coarse stage, best ranks
and `rrf` from fusion, `n_queries`, `step_back` / `hyde` similarities) plus the record
itself. Scores whose scale depends on the corpus (BM25) enter only normalised within
the query's candidate list, so a model trained on one collection carries over to
another. The list is saved with every trained model; a model whose list differs is
refused (`retrieval.rerank`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from core.lang import cjk_share
from core.script import fold
from core.tokens import cjk_grams, tokens_of
from core.types import Hit

FEATURE_VERSION = 4

FEATURES: tuple[str, ...] = (
    "dense",  # bi-encoder cosine of the question and the candidate (stored embeddings)
    "dense_gap",  # best cosine among the candidates minus this one
    "dense_z",  # cosine standardised within the candidate list
    "dense_rank",  # log1p of the rank by cosine within the candidate list
    "bm25_norm",  # BM25 score / best BM25 score among the candidates
    "bm25_z",  # BM25 standardised within the candidate list
    "bm25_rank",  # log1p of the rank by BM25 within the candidate list
    "bm25_found",  # 1 when the BM25 retriever returned it in its own top list
    "dense_found",  # 1 when the dense retriever returned it in its own top list
    "rrf_norm",  # fused RRF score / best fused score
    "in_rank",  # log1p of the position in the list handed to the LTR stage
    "n_queries",  # share of the search queries (question + translations) that retrieved it
    "step_back",  # cosine to the step-back question (NaN when there was none)
    "hyde",  # cosine to the HyDE passage (NaN when there was none)
    "kind",  # 0 chunk, 1 summary, 2 question, 3 raptor
    "level",  # RAPTOR level (0 for leaves)
    "represented",  # 1 when a representation (summary / question) matched for this chunk
    "length",  # log1p of the text length in characters
    "coverage",  # share of the question's terms found in the candidate
    "title_match",  # share of the question's terms found in its title / heading path
    "query_terms",  # number of distinct question terms (a query-level feature)
    "bm25_per_term",  # best BM25 among the candidates / number of question terms
    "dense_best",  # best cosine among the candidates (query-level)
    "source_share",  # log1p of how many candidates come from the same source
    # v2: signals that carry weight in every language, and context beyond the chunk
    "bm25_prev",  # BM25 of the chunk before it in its document / best BM25 among the candidates
    "bm25_next",  # the same for the chunk after it
    "bm25_doc",  # best BM25 of any chunk of its document / best BM25 among the candidates
    "proximity",  # query terms found / length (in terms) of the smallest span holding them all
    "phrase",  # longest run of consecutive question terms found consecutively / question terms
    "cjk_bigrams",  # share of the question's CJK character bigrams found (NaN: none in the question)
    "query_cjk",  # share of CJK characters in the question (a query-level feature)
    "text_cjk",  # share of CJK characters in the candidate
    "position",  # log1p of the character offset of the chunk in its document
    # v3: the knowledge graph (retrieval/graph.py); NaN unless `rag ingest --graph` built one and
    # the question names an entity of it
    "graph_distance",  # relations from the question's entities to the nearest it mentions (else worst + 1)
    "graph_shared",  # entities of the question's neighbourhood it mentions (else 0)
    # v4: late interaction (retrieval/late_interaction.py); NaN unless `search.late` ran
    "maxsim",  # ColBERT MaxSim of the question's and the candidate's token vectors
    "maxsim_z",  # MaxSim standardised within the candidates that have one
)

_KINDS = {"chunk": 0.0, "summary": 1.0, "question": 2.0, "raptor": 3.0}


def _seq(text: str) -> tuple[str, ...]:
    # remembered by core.tokens: the keyword index's build tokenised the chunks already
    return tokens_of(text)


@functools.lru_cache(maxsize=65536)
def _terms(text: str) -> frozenset[str]:
    return frozenset(_seq(text))  # a candidate's text is tokenised once for both (was twice a query)


def cjk_bigrams(text: str) -> frozenset[str]:
    """Overlapping character bigrams of each CJK run ("大模型" -> 大模, 模型): they match
    technical terms that jieba segments differently in question and text."""
    return frozenset(g for g in cjk_grams(text) if len(g) == 2)


def bigram_share(qbi: frozenset[str], text: str) -> float:
    """The share of the question's CJK bigrams `qbi` among `text`'s (`cjk_bigrams`), without
    building the text's set: two CJK characters side by side in `text` always lie in one CJK run,
    so a bigram is one of the text's exactly when it is a substring of it (of its Simplified
    form: the bigrams are folded, core/script.py)."""
    if not qbi:
        return math.nan
    text = fold(text)
    return sum(1 for g in qbi if g in text) / len(qbi)


def proximity(qterms: frozenset[str], seq: Sequence[str]) -> float:
    """Found query terms / length of the smallest window of `seq` holding every found term
    (1.0 when they stand side by side; 0 when none is found)."""
    found = qterms.intersection(seq)
    if not found:
        return 0.0
    need, have, best, left = len(found), 0, len(seq), 0
    counts: dict[str, int] = {}
    for right, t in enumerate(seq):
        if t in found:
            counts[t] = counts.get(t, 0) + 1
            if counts[t] == 1:
                have += 1
        while have == need:
            best = min(best, right - left + 1)
            lt = seq[left]
            if lt in found:
                counts[lt] -= 1
                if counts[lt] == 0:
                    have -= 1
            left += 1
    return need / best


def phrase(qseq: Sequence[str], seq: Sequence[str]) -> float:
    """Longest run of consecutive question terms that also occur consecutively in `seq`,
    as a share of the question's terms (a single found term counts 1)."""
    if not qseq:
        return 0.0
    pairs = set(zip(seq, seq[1:], strict=False))
    present = set(seq)
    best = run = 0
    for i, t in enumerate(qseq):
        if t not in present:
            run = 0
        elif run and (qseq[i - 1], t) in pairs:
            run += 1
        else:
            run = 1
        best = max(best, run)
    return best / len(qseq)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank, best (largest) first; ties keep list order."""
    order = np.argsort(-values, kind="stable")
    r = np.empty(len(values), dtype=np.float64)
    r[order] = np.arange(1, len(values) + 1)
    return r


_COL = {name: i for i, name in enumerate(FEATURES)}


def zscore(values: np.ndarray) -> np.ndarray:
    """(x - mean) / sd; all zeros where the values do not vary."""
    sd = float(values.std())
    return (values - values.mean()) / sd if sd > 1e-9 else np.zeros_like(values)


def _col(hits: Sequence[Hit], key: str, default: float = math.nan) -> np.ndarray:
    return np.array([float(h.scores.get(key, default)) for h in hits], dtype=np.float64)


def compute(query: str, hits: Sequence[Hit], n_search_queries: int = 1) -> np.ndarray:
    """Feature matrix (len(hits) x len(FEATURES)), rows in the order of `hits`."""
    out = np.full((len(hits), len(FEATURES)), np.nan, dtype=np.float32)
    if hits:
        _score_features(out, query, hits, n_search_queries)
        _text_features(out, query, hits)
    return out


def _score_features(out: np.ndarray, query: str, hits: Sequence[Hit], n_search_queries: int) -> None:
    """The columns read from the retrievers' scores (dense, BM25, RRF, ranks, neighbours)."""
    col, n = _COL, len(hits)
    dense = _col(hits, "sbert")
    if np.isnan(dense).all():
        dense = _col(hits, "dense")
    dense = np.nan_to_num(dense, nan=float(np.nanmin(dense)) if not np.isnan(dense).all() else 0.0)
    bm25 = np.nan_to_num(_col(hits, "bm25", 0.0), nan=0.0)
    rrf = np.nan_to_num(_col(hits, "rrf", 0.0), nan=0.0)
    qterms = _terms(query)
    best_bm25 = float(bm25.max())
    out[:, col["dense"]] = dense
    out[:, col["dense_gap"]] = dense.max() - dense
    out[:, col["dense_z"]] = zscore(dense)
    out[:, col["dense_rank"]] = np.log1p(_ranks(dense))
    out[:, col["bm25_norm"]] = bm25 / best_bm25 if best_bm25 > 0 else 0.0
    out[:, col["bm25_z"]] = zscore(bm25)
    out[:, col["bm25_rank"]] = np.log1p(_ranks(bm25))
    out[:, col["bm25_found"]] = [1.0 if "bm25_rank" in h.scores else 0.0 for h in hits]
    out[:, col["dense_found"]] = [1.0 if "dense_rank" in h.scores else 0.0 for h in hits]
    out[:, col["rrf_norm"]] = rrf / rrf.max() if rrf.max() > 0 else 0.0
    out[:, col["in_rank"]] = np.log1p(np.arange(1, n + 1))
    out[:, col["n_queries"]] = _col(hits, "n_queries", 1.0) / max(1, n_search_queries)
    out[:, col["step_back"]] = _col(hits, "step_back")
    out[:, col["hyde"]] = _col(hits, "hyde")
    out[:, col["query_terms"]] = len(qterms)
    out[:, col["bm25_per_term"]] = best_bm25 / max(1, len(qterms))
    out[:, col["dense_best"]] = dense.max()
    norm = best_bm25 if best_bm25 > 0 else 1.0
    for name in ("bm25_prev", "bm25_next", "bm25_doc"):
        out[:, col[name]] = np.nan_to_num(_col(hits, name, 0.0), nan=0.0) / norm
    maxsim = _col(hits, "maxsim")
    out[:, col["maxsim"]] = maxsim
    have = ~np.isnan(maxsim)
    if have.any():
        out[have, col["maxsim_z"]] = zscore(maxsim[have])
    dist = _col(hits, "graph_distance")
    if not np.isnan(dist).all():  # the graph ran and reached some candidates: the others were not reached
        out[:, col["graph_distance"]] = np.nan_to_num(dist, nan=float(np.nanmax(dist)) + 1.0)
        out[:, col["graph_shared"]] = np.nan_to_num(_col(hits, "graph_shared"), nan=0.0)


def _text_features(out: np.ndarray, query: str, hits: Sequence[Hit]) -> None:
    """The columns read from each candidate's text and record (terms, phrase, position, ...)."""
    col = _COL
    qterms = _terms(query)
    sources: dict[str, int] = {}
    for h in hits:
        sources[h.record.source] = sources.get(h.record.source, 0) + 1
    qseq = _seq(query)
    qbi = cjk_bigrams(query)
    out[:, col["query_cjk"]] = cjk_share(query)
    for i, h in enumerate(hits):
        r = h.record
        text = r.index_text()
        seq = _seq(text)
        out[i, col["proximity"]] = proximity(qterms, seq)
        out[i, col["phrase"]] = phrase(qseq, seq)
        out[i, col["cjk_bigrams"]] = bigram_share(qbi, text)
        out[i, col["text_cjk"]] = cjk_share(r.text[:2000])
        out[i, col["position"]] = math.log1p(r.start)
        out[i, col["kind"]] = _KINDS.get(r.kind, 0.0)
        out[i, col["level"]] = r.level
        out[i, col["represented"]] = 1.0 if h.matched else 0.0
        out[i, col["length"]] = math.log1p(len(r.text))
        out[i, col["source_share"]] = math.log1p(sources[r.source])
        if qterms:
            out[i, col["coverage"]] = len(qterms & _terms(r.index_text())) / len(qterms)
            out[i, col["title_match"]] = len(qterms & _terms(r.title)) / len(qterms) if r.title else 0.0
        else:
            out[i, col["coverage"]] = out[i, col["title_match"]] = 0.0
