"""RAPTOR clustering (Sarthi et al. 2024, section 3): reduce embeddings with UMAP, fit
Gaussian mixtures and keep the component count with the lowest BIC, assign softly (a node
joins every cluster whose probability exceeds a threshold), first globally (UMAP with
n_neighbors = sqrt(n - 1)), then locally inside each global cluster.

Small inputs are handled without UMAP: at most `dims + 1` distinct vectors form one
cluster (as the reference implementation does); identical vectors are clustered once
and share their cluster; a UMAP failure falls back to PCA."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

LOCAL_NEIGHBORS = 10
BIC_PATIENCE = 6  # stop scanning component counts after this many without a better BIC


@dataclass
class ClusterParams:
    dims: int = 10
    max_clusters: int = 50
    threshold: float = 0.1
    seed: int = 224
    max_tokens: int = 3000  # a cluster whose children exceed this is clustered again


def reduce(x: np.ndarray, dims: int, neighbors: int, seed: int) -> np.ndarray:
    """UMAP to `dims` dimensions (cosine metric); PCA when UMAP cannot run."""
    m = len(x)
    d = max(1, min(dims, m - 2))
    try:
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.UMAP(
                n_neighbors=max(2, min(neighbors, m - 1)), n_components=d, metric="cosine",
                random_state=seed, init="spectral" if m > d + 3 else "random", n_jobs=1,
            )
            out = np.asarray(model.fit_transform(x), dtype=np.float64)
        if np.isfinite(out).all():
            return out
        log.info("UMAP gave non-finite values for %d points; using PCA", m)
    except Exception as e:  # noqa: BLE001 - degenerate inputs (tiny, disconnected graph)
        log.info("UMAP failed on %d points (%s); using PCA", m, e)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(d, m, x.shape[1]), random_state=seed)
    return np.asarray(pca.fit_transform(x), dtype=np.float64)


def gmm_clusters(x: np.ndarray, p: ClusterParams) -> list[list[int]]:
    """Soft clusters of the rows of x: GMM with BIC-chosen component count."""
    from sklearn.mixture import GaussianMixture

    m = len(x)
    top = max(1, min(p.max_clusters, m // 2))
    best, best_bic, since = None, np.inf, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(1, top + 1):
            g = GaussianMixture(n_components=k, random_state=p.seed, reg_covar=1e-5).fit(x)
            bic = float(g.bic(x))
            if bic < best_bic:
                best, best_bic, since = g, bic, 0
            else:
                since += 1
                if since >= BIC_PATIENCE:
                    break
    assert best is not None
    probs = best.predict_proba(x)
    member = probs > p.threshold
    member[np.arange(m), probs.argmax(axis=1)] = True  # everyone belongs somewhere
    return [np.flatnonzero(member[:, c]).tolist() for c in range(probs.shape[1]) if member[:, c].any()]


def _local(x: np.ndarray, tokens: list[int], p: ClusterParams, depth: int = 0) -> list[list[int]]:
    """Local clustering of one global cluster; over-long results are split again."""
    m = len(x)
    if m <= p.dims + 1:
        return [list(range(m))]
    reduced = reduce(x, p.dims, LOCAL_NEIGHBORS, p.seed)
    out: list[list[int]] = []
    for c in gmm_clusters(reduced, p):
        if len(c) < m and depth < 3 and sum(tokens[i] for i in c) > p.max_tokens and len(c) > p.dims + 1:
            sub = _local(x[c], [tokens[i] for i in c], p, depth + 1)
            out.extend([[c[i] for i in s] for s in sub])
        else:
            out.append(c)
    return out


def cluster(vectors: np.ndarray, tokens: list[int], p: ClusterParams) -> list[list[int]]:
    """Clusters (lists of row indexes; a row may be in several, every row is in one at
    least), global then local. Deterministic for the same input and seed."""
    n = len(vectors)
    if n == 0:
        return []
    uniq, first, inverse = np.unique(np.round(vectors, 5), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # np.unique sorts rows; keep the input order of distinct vectors for stable output.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    # Rounded, so that last-bit differences between embedding batches cannot move clusters.
    x = np.round(np.asarray(vectors[first[order]], dtype=np.float64), 4)
    groups: list[list[int]] = [[] for _ in range(len(x))]
    for i, u in enumerate(inverse):
        groups[int(rank[u])].append(i)
    del uniq
    m = len(x)
    utok = [sum(tokens[i] for i in g) for g in groups]
    if m <= p.dims + 1:
        return [list(range(n))]
    reduced = reduce(x, p.dims, int((m - 1) ** 0.5), p.seed)
    found: list[list[int]] = []
    for g in gmm_clusters(reduced, p):
        for loc in _local(x[g], [utok[i] for i in g], p):
            found.append([g[i] for i in loc])
    out: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for c in found:
        rows = tuple(sorted(r for u in c for r in groups[u]))
        if rows not in seen:
            seen.add(rows)
            out.append(list(rows))
    return out
