"""RAPTOR tree over the leaf chunks (Sarthi et al. 2024): cluster the leaves' embeddings
(ingest/raptor_cluster.py), summarise each cluster within a token budget, embed the
summaries, and repeat on the summaries until one cluster remains or `raptor_max_depth`
levels exist. `ingest.raptor_summaries` says who summarises: the LLM, or (`extractive`, and
`auto` with a model too small to summarise well) the sentences most central to the cluster
(ingest/extractive.py: no LLM call). Each node records its method; the tree's settings
include it, so switching rebuilds with the other method.
Nodes are records of kind `raptor`, `level >= 1`, with
their children's ids, under the synthetic source `raptor://` so a file's re-ingest never
touches them.

Incremental: when leaves change, new leaves join the nearest level-1 cluster, removed
ones leave theirs, and only the changed clusters and their ancestors are summarised again;
when more than `raptor_full_rebuild_fraction` of the leaves changed (or the tree's settings
did), the tree is rebuilt in full. Summaries are cached by the hash of their inputs, so an
interrupted run resumes without losing finished ones, and a full rebuild re-summarises only
clusters whose inputs differ. The new tree replaces the old one in one transaction.
Before it starts, the build says what it expects to cost (`notice`): LLM calls and time, or
that no LLM call is made."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.index import Index
from core.lang import approx_tokens
from core.llm import LLM
from core.llmcall import CallStats, Job, digest
from core.settings import Settings
from core.types import Record, stable_id
from ingest.cost import note_seconds, tree_estimate
from ingest.extractive import VERSION as EXTRACT_VERSION
from ingest.extractive import Extractor
from ingest.llm_text import (
    clean_summary,
    extractive_summary,
    fit_budget,
    run_jobs,
    summary_method,
)
from ingest.raptor_cluster import ClusterParams, cluster
from ingest.raptor_report import TreeReport

log = logging.getLogger(__name__)

SOURCE = "raptor://"
PROMPT_VERSION = "raptor-1"
META_KEY = "raptor"

Progress = Callable[[str, int], None]
Notice = Callable[[str], None]


@dataclass
class Node:
    id: str
    level: int
    children: list[str]
    text: str = ""
    method: str = "llm"  # llm | extractive: who wrote the summary
    fallback: bool = False  # the LLM gave nothing usable: central sentences instead
    reused: bool = False  # same id and children as in the previous tree: text and vector kept

    def record(self, leaves: int) -> Record:
        extra: dict[str, Any] = {"leaves": leaves, "method": self.method}
        if self.fallback:
            extra["fallback"] = "extractive"
        mark = " (extractive)" if self.fallback or self.method == "extractive" else ""
        title = f"RAPTOR level {self.level} summary{mark}"
        return Record(id=self.id, text=self.text, source=SOURCE, kind="raptor", level=self.level,
                      children=list(self.children), title=title, extra=extra)


def _params(settings: Settings, model: str | None, method: str) -> dict[str, Any]:
    s = settings.ingest
    return {"dims": s.raptor_umap_dims, "max_clusters": s.raptor_gmm_max_clusters,
            "threshold": s.raptor_threshold, "max_depth": s.raptor_max_depth,
            "context_tokens": s.raptor_context_tokens, "summary_tokens": s.raptor_summary_tokens,
            "seed": s.raptor_seed, "model": model, "prompt": PROMPT_VERSION, "summaries": method}


def _messages(texts: list[str]) -> list[dict[str, str]]:
    body = "\n\n".join(texts)
    return [{"role": "user", "content": f"{body}\n\nWrite a summary of the text above, including as many key "
             "details as possible."}]


class _Builder:
    """Holds what one build needs: texts and vectors of every node so far, the old tree."""

    def __init__(self, index: Index, settings: Settings, llm: LLM | None, old: dict[str, Record],
                 rep: TreeReport, progress: Progress | None, extractor: Extractor) -> None:
        self.index, self.settings, self.llm, self.old, self.rep, self.progress = (
            index, settings, llm, old, rep, progress)
        self.extractor = extractor
        self.stats = CallStats()
        self.text: dict[str, str] = {}
        self.vec: dict[str, np.ndarray] = {}
        self.leafset: dict[str, frozenset[str]] = {}
        self.nodes: list[Node] = []

    def add_leaves(self, leaves: list[Record]) -> None:
        ids = [r.id for r in leaves]
        for i in range(0, len(ids), 1000):
            self.vec.update(self.index.vectors.get_embeddings(ids[i : i + 1000]))
        missing = [r for r in leaves if r.id not in self.vec]
        if missing:  # should not happen; embed rather than fail
            vecs = self.index.embedder.embed([self.settings.embedding.text_of(r) for r in missing])
            for r, v in zip(missing, vecs, strict=True):
                self.vec[r.id] = v
        for r in leaves:
            self.text[r.id] = r.text
            self.leafset[r.id] = frozenset([r.id])

    def materialise(self, level: int, clusters: list[list[str]]) -> list[Node]:
        """Nodes for clusters of child ids: reused, from the cache, or summarised now."""
        s = self.settings.ingest
        method = self.rep.method
        nodes: list[Node] = []
        jobs: list[Job] = []
        extract: list[tuple[Node, list[str]]] = []
        seen: set[str] = set()
        for ch in clusters:
            nid = stable_id("raptor", str(level), *ch)
            if nid in seen:
                continue
            seen.add(nid)
            o = self.old.get(nid)
            if (o is not None and o.children == ch and o.text and not o.extra.get("fallback")
                    and o.extra.get("method", "llm") == method):
                node = Node(nid, level, ch, o.text, method=method, reused=True)
            else:
                node = Node(nid, level, ch, method=method)
                texts = list(dict.fromkeys(self.text[c] for c in ch))  # identical children once
                if method == "extractive" or self.llm is None:
                    extract.append((node, texts))
                else:
                    fitted = fit_budget(texts, s.raptor_context_tokens)
                    key = "raptor:" + digest(PROMPT_VERSION, self.llm.model, str(s.raptor_summary_tokens),
                                             *fitted)
                    jobs.append(Job(key, _messages(fitted), s.raptor_summary_tokens, (node, fitted)))
            nodes.append(node)
        if self.progress and (jobs or extract):
            self.progress("raptor_total", len(jobs) + len(extract))
        for node, texts in extract:
            node.text = self._extract(node, texts)
            if self.progress:
                self.progress("raptor", 1)
        if jobs:
            self._summarise(jobs)
        self._vectors(nodes)
        for n in nodes:
            self.text[n.id] = n.text
            self.leafset[n.id] = frozenset().union(*(self.leafset[c] for c in n.children))
        self.nodes.extend(nodes)
        return nodes

    def _summarise(self, jobs: list[Job]) -> None:
        assert self.llm is not None
        s = self.settings.ingest
        ok = lambda raw: clean_summary(raw) is not None  # noqa: E731
        done = run_jobs(self.llm, jobs, self.index.docs, s.llm_concurrency, ok, retry=True, stats=self.stats)
        for job, raw, cached, calls in done:
            tag: tuple[Node, list[str]] = job.tag  # type: ignore[assignment]
            node, fitted = tag
            self.rep.cached += int(cached)
            self.rep.llm_calls += calls
            summary = clean_summary(raw)
            if summary is None:
                node.text, node.fallback = self._central(node, fitted), True
                self.rep.fallbacks += 1
                log.warning("cluster %s: no usable summary after a retry; central sentences instead", node.id)
            else:
                node.text = summary
            if self.progress:
                self.progress("raptor", 1)

    def _central(self, node: Node, texts: list[str]) -> str:
        """The children's sentences closest to their centroid (the mean of their vectors)."""
        cent = np.mean([self.vec[c] for c in node.children], axis=0)
        budget = self.settings.ingest.raptor_summary_tokens
        return (self.extractor.summary(texts, budget, cent) or extractive_summary(texts, budget)).strip()

    def _extract(self, node: Node, texts: list[str]) -> str:
        """An extractive summary, cached like the LLM's by the hash of its inputs and method."""
        budget = self.settings.ingest.raptor_summary_tokens
        key = "raptor:" + digest(PROMPT_VERSION, "extractive", EXTRACT_VERSION, self.extractor.name,
                                 str(budget), *texts)
        hit = self.index.docs.cache_get(key)
        if hit:
            self.rep.cached += 1
            return hit
        before = self.extractor.embedded
        text = self._central(node, texts) or " ".join(texts)[:1500]
        self.rep.sentences_embedded += self.extractor.embedded - before
        self.rep.extracted += 1
        self.index.docs.cache_put(key, text)
        return text

    def _vectors(self, nodes: list[Node]) -> None:
        """Stored vectors where the node and its text are unchanged (re-embedding the same
        text in another batch differs in the last bits, and UMAP would magnify that)."""
        same = [n for n in nodes if n.id in self.old and self.old[n.id].text == n.text]
        stored = self.index.vectors.get_embeddings([n.id for n in same])
        for n in same:
            if n.id in stored:
                self.vec[n.id] = stored[n.id]
        for n in nodes:
            n.reused = n.reused and n.id in stored  # a vector gone missing is embedded and upserted again
        todo = [n for n in nodes if n.id not in stored]
        if todo:
            for n, v in zip(todo, self.index.embedder.embed([n.text for n in todo]), strict=True):
                self.vec[n.id] = v

    def stack(self, ids: list[str]) -> tuple[np.ndarray, list[int]]:
        return np.stack([self.vec[i] for i in ids]), [approx_tokens(self.text[i]) for i in ids]


def _cluster_params(settings: Settings) -> ClusterParams:
    s = settings.ingest
    return ClusterParams(dims=s.raptor_umap_dims, max_clusters=s.raptor_gmm_max_clusters,
                         threshold=s.raptor_threshold, seed=s.raptor_seed,
                         max_tokens=2 * s.raptor_context_tokens)


def _build_full(b: _Builder, leaf_ids: list[str]) -> None:
    cp = _cluster_params(b.settings)
    prev = leaf_ids
    for level in range(1, max(1, b.settings.ingest.raptor_max_depth) + 1):
        if len(prev) == 1:
            groups = [[0]]
        else:
            vecs, toks = b.stack(prev)
            groups = cluster(vecs, toks, cp)
            if len(groups) >= len(prev):  # no reduction: close the tree with one root
                groups = [list(range(len(prev)))]
        log.info("raptor level %d: %d clusters over %d nodes", level, len(groups), len(prev))
        nodes = b.materialise(level, [[prev[i] for i in g] for g in groups])
        prev = [n.id for n in nodes]
        if len(nodes) == 1:
            break


def _build_incremental(
    b: _Builder, old_levels: dict[int, list[Record]], cur: list[str], added: list[str],
) -> bool:
    """Re-use the old tree's structure; False when no level-1 cluster survives."""
    id_map: dict[str, str | None] = {i: i for i in cur}
    for level in sorted(old_levels):
        clusters: list[list[str]] = []
        owners: list[str] = []
        for rec in old_levels[level]:
            ch = list(dict.fromkeys(m for c in rec.children if (m := id_map.get(c))))
            clusters.append(ch)
            owners.append(rec.id)
        if level == 1 and added:
            live = [j for j, ch in enumerate(clusters) if ch]
            if not live:
                return False
            cents = np.stack([np.mean([b.vec[c] for c in clusters[j]], axis=0) for j in live])
            cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-12
            for a in added:
                clusters[live[int(np.argmax(cents @ b.vec[a]))]].append(a)
        kept = [(o, ch) for o, ch in zip(owners, clusters, strict=True) if ch]
        if level == 1 and not kept:
            return False
        nodes = b.materialise(level, [ch for _, ch in kept])
        by_children = {tuple(n.children): n.id for n in nodes}
        next_map: dict[str, str | None] = {o: None for o in owners}
        for o, ch in kept:
            next_map[o] = by_children[tuple(ch)]
        id_map = next_map
    return True


def _info(b: _Builder, rep: TreeReport, params: dict[str, Any]) -> dict[str, Any]:
    per: dict[int, list[Node]] = {}
    for n in b.nodes:
        per.setdefault(n.level, []).append(n)
    rep.levels = {lv: len(ns) for lv, ns in per.items()}
    rep.depth = max(per, default=0)
    return {
        "depth": rep.depth, "leaves": rep.leaves,
        "nodes_per_level": {"0": rep.leaves, **{str(lv): len(ns) for lv, ns in sorted(per.items())}},
        "clusters_per_level": {str(lv): len(ns) for lv, ns in sorted(per.items())},
        "mean_children_per_level": {str(lv): round(float(np.mean([len(n.children) for n in ns])), 2)
                                    for lv, ns in sorted(per.items())},
        "root_nodes": len(per.get(rep.depth, [])), "params": params,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "last_build": rep.summary(),
    }


def _write(index: Index, b: _Builder, old: dict[str, Record], rep: TreeReport) -> None:
    new_ids = {n.id for n in b.nodes}
    stale = [i for i in old if i not in new_ids]
    fresh = [n for n in b.nodes if not n.reused]
    if fresh:
        recs = [n.record(len(b.leafset[n.id])) for n in fresh]
        index.vectors.upsert(recs, np.stack([b.vec[n.id] for n in fresh]))
    index.docs.swap_records(stale, [n.record(len(b.leafset[n.id])) for n in b.nodes])
    index.vectors.delete(stale)
    rep.new, rep.kept, rep.removed = len(fresh), len(b.nodes) - len(fresh), len(stale)


def _clear(index: Index, old: dict[str, Record], rep: TreeReport) -> TreeReport:
    """No leaves: the tree goes too."""
    rep.mode, rep.removed = "empty", len(old)
    if old:
        index.docs.delete_records(list(old))
        index.vectors.delete(list(old))
        index.docs.set_meta(META_KEY, json.dumps({"depth": 0, "leaves": 0}))
        index.write_manifest(raptor={"depth": 0, "leaves": 0, "nodes_per_level": {},
                                     "last_build": rep.summary()})
    return rep


def _finish(index: Index, b: _Builder, old: dict[str, Record], rep: TreeReport, params: dict[str, Any],
            t0: float) -> None:
    """Write the new tree, remember what a call cost, describe the tree in meta and manifest."""
    _write(index, b, old, rep)
    if b.llm is not None:
        note_seconds(index.docs, "raptor", b.llm, b.stats)
    rep.llm_seconds = b.stats.seconds
    info = _info(b, rep, params)
    rep.seconds = time.perf_counter() - t0
    info["last_build"] = rep.summary()
    index.docs.set_meta(META_KEY, json.dumps(info))
    index.write_manifest(raptor=info)
    log.info(rep.line())


def update_tree(
    index: Index, settings: Settings, progress: Progress | None = None, llm: LLM | None = None,
    full: bool = False, notice: Notice | None = None, extractor: Extractor | None = None,
) -> TreeReport:
    """Bring the RAPTOR tree in line with the current leaf chunks; `notice` gets the cost
    estimate before the build starts."""
    t0 = time.perf_counter()
    rep = TreeReport()
    docs = index.docs
    leaves = list(docs.iter_records(("chunk",)))
    old = {r.id: r for r in docs.iter_records(("raptor",))}
    rep.leaves = len(leaves)
    if not leaves:
        return _clear(index, old, rep)
    rep.method, rep.why, llm = summary_method(settings.ingest.raptor_summaries, "ingest.raptor_summaries",
                                              settings, llm)
    params = _params(settings, llm.model if rep.method == "llm" and llm else None, rep.method)
    prev = json.loads(docs.get_meta(META_KEY) or "{}")
    old_levels: dict[int, list[Record]] = {}
    for r in old.values():
        old_levels.setdefault(r.level, []).append(r)
    cur = [r.id for r in leaves]
    old_leaves = {c for r in old_levels.get(1, []) for c in r.children}
    added = [i for i in cur if i not in old_leaves]
    removed = old_leaves - set(cur)
    if old and not full and prev.get("params") == params and not added and not removed:
        rep.depth = max(old_levels)
        rep.levels = {lv: len(v) for lv, v in old_levels.items()}
        rep.seconds = time.perf_counter() - t0
        return rep
    n_changed = len(added) + len(removed)
    if full or not old or prev.get("params") != params:
        rep.mode = "full"
        rep.reason = "requested" if full else "no tree yet" if not old else "tree settings changed"
    elif n_changed > settings.ingest.raptor_full_rebuild_fraction * len(cur):
        rep.mode, rep.reason = "full", f"{n_changed} of {len(cur)} leaves changed"
    else:
        rep.mode, rep.reason = "incremental", f"{len(added)} leaves added, {len(removed)} removed"
    line = tree_estimate(docs, settings, rep, llm, prev, len(old), n_changed)
    log.info(line)
    if notice:
        notice(line)
    b = _Builder(index, settings, llm if rep.method == "llm" else None, old, rep, progress,
                 extractor or Extractor(index.embedder))
    b.add_leaves(leaves)
    if rep.mode == "full":
        _build_full(b, cur)
    elif not _build_incremental(b, old_levels, cur, added):
        b.nodes.clear()
        rep.mode, rep.reason = "full", "no cluster survived the change"
        _build_full(b, cur)
    _finish(index, b, old, rep, params, t0)
    return rep
