"""RAPTOR tree: built on a real corpus with the shipped MiniLM and SmolLM2 (tiny outputs),
its invariants, incremental updates without duplicates, resuming an interrupted build,
tree retrieval, the CLI, and the small-corpus edge cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.index import Index
from core.llm import Message, get_llm
from core.settings import Settings, load_settings
from core.types import Record
from ingest.pipeline import ingest
from ingest.raptor import SOURCE, update_tree
from ingest.raptor_cluster import ClusterParams, cluster
from tests.conftest import SAMPLE

# Two of the shared real-world notes, copied into the repo so the test never depends on
# shared/ lying beside the checkout.
NOTES = Path(__file__).resolve().parent.parent / "data" / "llm-notes-zh"


def _settings(index_dir: Path, **ingest: Any) -> Settings:
    s = load_settings(index_dir=index_dir)
    s.ingest.raptor = True
    s.ingest.raptor_summary_tokens = 32  # SmolLM2 on 2 CPU cores: keep generations tiny
    s.ingest.raptor_context_tokens = 500
    s.ingest.raptor_summaries = "llm"  # these tests are about the LLM's tree (auto: extractive for SmolLM2)
    for k, v in ingest.items():
        setattr(s.ingest, k, v)
    return s


def check_tree(index: Index) -> dict[str, Record]:
    """The invariants every tree must keep; returns the nodes."""
    docs = index.docs
    leaves = {r.id: r for r in docs.iter_records(("chunk",))}
    nodes = {r.id: r for r in docs.iter_records(("raptor",))}
    assert nodes, "no tree"
    ids = docs.all_ids()
    assert len(ids) == len(set(ids))
    top = max(r.level for r in nodes.values())
    seen_children: set[tuple[int, tuple[str, ...]]] = set()
    for r in nodes.values():
        assert r.kind == "raptor" and r.level >= 1 and r.source == SOURCE and r.text.strip() and r.children
        key = (r.level, tuple(r.children))
        assert key not in seen_children, "two nodes summarise the same children"
        seen_children.add(key)
        for c in r.children:
            if r.level == 1:
                assert c in leaves, "level-1 child is not a leaf chunk"
            else:
                assert c in nodes and nodes[c].level == r.level - 1, "children sit one level down"
    # Every leaf is reachable from the top level.
    reach: set[str] = set()
    stack = [i for i, r in nodes.items() if r.level == top]
    while stack:
        i = stack.pop()
        if i in reach:
            continue
        reach.add(i)
        stack.extend(nodes[i].children if i in nodes else [])
    assert set(leaves) <= reach
    assert set(nodes) <= reach, "a node hangs below no root"
    # Vectors: exactly one per record.
    assert sorted(index.vectors.all_ids()) == sorted(ids)
    return nodes


class CountingLLM:
    """The real LLM, counted; optionally interrupted (as Ctrl-C would) after n calls.
    A whole `core.llm.LLM`: the rest of the protocol is passed to the real one uncounted."""

    def __init__(self, settings: Settings, stop_after: int | None = None) -> None:
        self.llm, self.calls, self.stop_after = get_llm(settings), 0, stop_after
        self.backend, self.model, self.reason = self.llm.backend, self.llm.model, self.llm.reason

    def complete(self, messages: list[Message], max_tokens: int | None = None,
                 json_schema: dict[str, Any] | None = None, temperature: float | None = None) -> str:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.llm.complete(messages, max_tokens=max_tokens, json_schema=json_schema,
                                 temperature=temperature)

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        return self.llm.stream(messages, max_tokens=max_tokens, temperature=temperature)

    def context_window(self) -> int:
        return self.llm.context_window()

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """Two of the shared notes and the sample (29 chunks, English and Chinese) ingested
    with RAPTOR once per module."""
    root = tmp_path_factory.mktemp("raptor")
    corpus = root / "corpus"
    corpus.mkdir()
    for p in sorted(NOTES.iterdir())[:2]:
        shutil.copy(p, corpus / p.name)
    for p in SAMPLE.iterdir():
        shutil.copy(p, corpus / p.name)
    s = _settings(root / "index")
    report = ingest([corpus], s)
    return root, corpus, report.summary()


@pytest.mark.slow
def test_tree_invariants_and_status(built: tuple[Path, Path, dict[str, Any]]) -> None:
    root, _, summary = built
    rap = summary["raptor"]
    assert rap["mode"] == "full" and rap["llm_calls"] >= 2 and rap["depth"] >= 2
    index = Index(_settings(root / "index"))
    nodes = check_tree(index)
    st = index.status()
    assert st["levels"]["raptor"] == {int(k): v for k, v in rap["nodes_per_level"].items()}
    assert st["raptor"]["depth"] == max(r.level for r in nodes.values())
    assert st["raptor"]["nodes_per_level"]["0"] == st["chunks"]
    assert set(st["raptor"]["clusters_per_level"]) == {str(lv) for lv in range(1, st["raptor"]["depth"] + 1)}
    # The leaves of level 1 nodes sum to at least the leaf count (soft assignment may repeat some).
    assert sum(len(r.children) for r in nodes.values() if r.level == 1) >= st["chunks"]


@pytest.mark.slow
def test_unchanged_reingest_and_full_rebuild_use_no_llm(
    built: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
) -> None:
    shutil.copytree(built[0] / "index", tmp_path / "index")
    s = _settings(tmp_path / "index")
    index = Index(s)
    before = {r.id for r in index.docs.iter_records(("raptor",))}
    again = update_tree(index, s)
    assert again.mode == "unchanged" and again.llm_calls == 0
    llm = CountingLLM(s)
    full = update_tree(index, s, llm=llm, full=True)  # same leaves, same clusters: all cached or kept
    assert full.mode == "full" and llm.calls == 0 and full.fallbacks == 0
    assert {r.id for r in index.docs.iter_records(("raptor",))} == before
    check_tree(index)


@pytest.mark.slow
def test_changed_file_updates_tree_incrementally_without_duplicates(
    built: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
) -> None:
    root, corpus, _ = built
    shutil.copytree(root / "index", tmp_path / "index")
    s = _settings(tmp_path / "index")
    f = corpus / "coffee-brewing.md"
    original = f.read_text()
    try:
        f.write_text(original + "\n\n## Cold brew\n\nSteep coarse grounds in cold water for twelve to "
                     "eighteen hours, then filter. Cold brew tastes smooth and low in acidity.\n")
        index = Index(s)
        rep = ingest([corpus], s, index=index)
        tree = rep.derived["raptor"]
        assert tree["mode"] == "incremental", tree
        assert 1 <= tree["llm_calls"] <= tree["depth"] * 2 + 2, tree  # the changed path, not the whole tree
        assert "raptor:" in rep.derived["raptor"]["line"]
        nodes = check_tree(index)
        cold = [r for r in index.docs.iter_records(("chunk",)) if "Cold brew" in r.text]
        assert cold and any(cold[0].id in n.children for n in nodes.values())
        # Re-ingest with nothing changed: nothing rebuilt, nothing duplicated.
        again = ingest([corpus], s, index=index)
        assert again.derived["raptor"]["mode"] == "unchanged"
        assert index.docs.counts_by_kind() == Index(s).docs.counts_by_kind()
        check_tree(index)
    finally:
        f.write_text(original)


@pytest.mark.slow
def test_tree_traversal_and_collapsed_retrieval(built: tuple[Path, Path, dict[str, Any]]) -> None:
    from retrieval.pipeline import retrieve
    from retrieval.tree import load_tree

    root, _, _ = built
    s = _settings(root / "index")
    index = Index(s)
    tree = load_tree(index)
    s.search.tree_mode = "traversal"
    s.search.tree_beam = 2
    res = retrieve("What are these notes about?", s, index=index, k=50)
    levels = [h.record.level for h in res.hits]
    assert any(t.stage == "tree" for t in res.trace)
    assert max(levels) == tree.depth and 0 in levels  # top-down: from the root level to leaves
    kept = {h.record.id for h in res.hits}
    for h in res.hits:  # every kept node below the top hangs under a kept node
        if h.record.level < tree.depth:
            assert any(h.record.id in tree.nodes[p].children for p in kept if p in tree.nodes)
    # A narrow question (a leaf's own words), with a beam wide enough to reach it: the leaf ranks first.
    leaf = next(r for r in index.docs.iter_records(("chunk",)) if "绿茶" in r.text)
    s.search.tree_beam = 1000
    narrow = retrieve(leaf.text, s, index=index, k=5)
    assert narrow.hits[0].record.id == leaf.id
    # Collapsed tree (default): summaries are searched with the chunks in one search.
    s.search.tree_mode = "collapsed"
    s.search.ltr = False
    top = max(tree.nodes.values(), key=lambda r: r.level)
    col = retrieve(top.text, s, index=index, k=5)
    assert any(h.record.id == top.id for h in col.hits)
    assert not any(t.stage == "tree" for t in col.trace)


@pytest.mark.slow
def test_cli_tree_and_status_json(built: tuple[Path, Path, dict[str, Any]]) -> None:
    root, corpus, _ = built
    env = {**os.environ, "RAG_INDEX_DIR": str(root / "index"), "RAG_INGEST__RAPTOR_SUMMARY_TOKENS": "32",
           "RAG_INGEST__RAPTOR_CONTEXT_TOKENS": "500", "RAG_INGEST__RAPTOR_SUMMARIES": "llm"}

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=os.getcwd())

    st = json.loads(rag("status", "--json").stdout)
    depth = st["raptor"]["depth"]
    out = rag("tree")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"RAPTOR tree: depth {depth}")
    assert f"L{depth} " in out.stdout and "L1 " in out.stdout and "children" in out.stdout
    lvl = rag("tree", "--level", "1", "--json")
    nodes = json.loads(lvl.stdout)
    assert len(nodes) == st["raptor"]["nodes_per_level"]["1"] and all(n["level"] == 1 for n in nodes)
    bad = rag("tree", "--level", str(depth + 3))
    assert bad.returncode == 1 and "no level" in bad.stdout
    again = rag("ingest", "--raptor", str(corpus))
    assert again.returncode == 0 and f"raptor: tree up to date ({depth} levels" in again.stdout, again.stdout


@pytest.mark.slow
def test_interrupted_build_resumes_without_losing_summaries(tmp_path: Path) -> None:
    s = _settings(tmp_path / "index", raptor=False, raptor_umap_dims=2)
    index = Index(s)
    ingest([SAMPLE], s, index=index)  # chunks only
    with pytest.raises(KeyboardInterrupt):
        update_tree(index, s, llm=CountingLLM(s, stop_after=2))
    assert not list(index.docs.iter_records(("raptor",)))  # the old (empty) tree stands until the swap
    llm = CountingLLM(s)
    rep = update_tree(index, s, llm=llm)
    assert rep.cached >= 2 and rep.llm_calls == llm.calls
    check_tree(index)


@pytest.mark.slow
def test_single_chunk_identical_chunks_and_extractive_fallback(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.txt").write_text("Espresso is brewed by forcing hot water through finely ground coffee.\n")
    s = _settings(tmp_path / "i1")
    rep = ingest([one], s)
    assert rep.derived["raptor"]["depth"] == 1
    nodes = check_tree(Index(s))
    assert len(nodes) == 1
    # Identical chunks (same paragraph in many sections) and a summary the model cannot write
    # (one token): the tree still builds, with extractive summaries marked as such.
    same = tmp_path / "same"
    same.mkdir()
    para = "Grind coffee just before brewing, because ground coffee goes stale within minutes."
    (same / "b.txt").write_text("\n\n".join([para] * 14))
    s2 = _settings(tmp_path / "i2", raptor_summary_tokens=1, raptor_umap_dims=2)
    s2.chunk.size = 24  # one paragraph per chunk: 14 chunks with the same text
    rep2 = ingest([same], s2)
    assert [r.text for r in Index(s2).docs.iter_records(("chunk",))] == [para] * 14
    tree = rep2.derived["raptor"]
    assert tree["fallbacks"] >= 1 and tree["llm_calls"] == 2 * tree["fallbacks"]  # one retry each
    nodes = check_tree(Index(s2))
    fb = [r for r in nodes.values() if r.extra.get("fallback") == "extractive"]
    assert fb and all("Grind coffee" in r.text and "extractive" in r.title for r in fb)


def test_cluster_edge_cases() -> None:
    rng = np.random.default_rng(0)
    p = ClusterParams(dims=2, max_clusters=8, threshold=0.1, seed=1)
    # Fewer points than UMAP needs neighbours.
    for n in (1, 2, 3, 5):
        x = rng.normal(size=(n, 16)).astype(np.float32)
        cs = cluster(x, [10] * n, p)
        assert sorted({i for c in cs for i in c}) == list(range(n))
    # Identical vectors: one cluster with all of them.
    same = np.tile(rng.normal(size=(1, 16)), (30, 1)).astype(np.float32)
    assert cluster(same, [10] * 30, p) == [list(range(30))]
    # Three well separated groups (with duplicates inside): every point placed, groups not mixed.
    centers = rng.normal(size=(3, 16)) * 10
    x = np.concatenate([c + rng.normal(size=(15, 16)) * 0.05 for c in centers]).astype(np.float32)
    x[1] = x[0]
    cs = cluster(x, [10] * len(x), p)
    assert sorted({i for c in cs for i in c}) == list(range(45))
    assert len(cs) >= 3 and all(len({i // 15 for i in c}) == 1 for c in cs)
    assert cluster(x, [10] * len(x), p) == cs  # deterministic
