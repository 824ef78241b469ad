"""Retrieval over the RAPTOR tree (Sarthi et al. 2024, section 3).

Collapsed tree (the default) needs nothing here: RAPTOR nodes sit in the same vector and
BM25 indexes as the chunks, so one search covers every level, and a broad question meets
the high-level summaries while a narrow one meets the leaves. Tree traversal
(`search.tree_mode = "traversal"`) walks top-down: score the top level's nodes against the
question, keep the best `search.tree_beam`, descend into their children, and so on down
to the leaves; the nodes kept on every level, ranked by cosine similarity, are the result.
Also the tree's shape for `rag tree` and which representation matched for the trace."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.index import Index
from core.settings import Settings
from core.types import Hit, Record, TraceEntry


@dataclass
class Tree:
    nodes: dict[str, Record] = field(default_factory=dict)  # raptor nodes by id

    @property
    def depth(self) -> int:
        return max((r.level for r in self.nodes.values()), default=0)

    def level(self, n: int) -> list[Record]:
        return [r for r in self.nodes.values() if r.level == n]

    def roots(self) -> list[Record]:
        """The top level: the nodes no other node lists as a child."""
        child = {c for r in self.nodes.values() for c in r.children}
        return [r for r in self.nodes.values() if r.id not in child]


def load_tree(index: Index) -> Tree:
    return Tree({r.id: r for r in index.docs.iter_records(("raptor",))})


def _score(index: Index, ids: list[str], qvec: np.ndarray) -> list[tuple[str, float]]:
    vecs = index.vectors.get_embeddings(ids)
    return sorted(((i, float(np.dot(vecs[i], qvec))) for i in ids if i in vecs), key=lambda t: (-t[1], t[0]))


def traverse(index: Index, qvec: np.ndarray, beam: int, tree: Tree | None = None) -> list[tuple[str, float]]:
    """Top-down beam search; every kept node on every level, best first."""
    tree = tree or load_tree(index)
    frontier = [r.id for r in tree.roots()]
    kept: dict[str, float] = {}
    while frontier:
        best = _score(index, frontier, qvec)[: max(1, beam)]
        kept.update(best)
        nxt: list[str] = []
        for i, _ in best:
            node = tree.nodes.get(i)
            if node is not None:
                nxt.extend(c for c in node.children if c not in kept)
        frontier = list(dict.fromkeys(nxt))
    return sorted(kept.items(), key=lambda t: (-t[1], t[0]))


def traversal_hits(
    index: Index, qvec: np.ndarray, settings: Settings, trace: list[TraceEntry],
) -> list[Hit] | None:
    """Hits by tree traversal, or None when the index has no tree (collapsed search then)."""
    import time

    t0 = time.perf_counter()
    tree = load_tree(index)
    if not tree.nodes:
        trace.append(TraceEntry("tree", 0.0, {"mode": "traversal", "note": "no RAPTOR tree: collapsed"}))
        return None
    ranked = traverse(index, qvec, settings.search.tree_beam, tree)
    recs = index.docs.get([i for i, _ in ranked])
    hits = [Hit(recs[i], s, {"dense": s, "tree": s}) for i, s in ranked if i in recs]
    levels: dict[int, int] = {}
    for h in hits:
        levels[h.record.level] = levels.get(h.record.level, 0) + 1
    trace.append(TraceEntry("tree", (time.perf_counter() - t0) * 1000, {
        "mode": "traversal", "beam": settings.search.tree_beam, "depth": tree.depth,
        "kept_per_level": {str(k): v for k, v in sorted(levels.items(), reverse=True)}}))
    return hits


def matched_detail(index: Index, hits: list[Hit]) -> list[dict[str, str]]:
    """For the trace: which representation (summary / question) stood for which chunk."""
    via = [h.matched for h in hits if h.matched]
    if not via:
        return []
    recs = index.docs.get(via)
    return [{"chunk": h.record.id, "via": h.matched, "kind": recs[h.matched].kind,
             "text": recs[h.matched].text[:200]} for h in hits if h.matched and h.matched in recs]
