"""What the derived layers are expected to cost, said before they start: LLM calls and
seconds per call (measured on the last run of the same layer with the same model on this
index, else a conservative assumption), or that no LLM call is made."""

from __future__ import annotations

import json
from typing import Any

from core.docstore import DocStore
from core.llm import LLM
from core.llmcall import CallStats
from core.settings import Settings
from ingest.raptor_report import TreeReport

# Assumed until this index has a build of its own to go by. Measured on 2 cores: 1,000 generated
# chunks made 79 nodes in 51 s (0.08 nodes, 0.05 s per leaf); the five shared notes (114
# chunks) 25 nodes in 19 s (0.22 nodes, 0.17 s per leaf).
NODES_PER_LEAF = 0.15  # nodes a first RAPTOR build makes per leaf
EXTRACTIVE_S_PER_LEAF = 0.1  # seconds per leaf outside LLM calls (clustering, embedding, extracting)


TIMING_KEY = "llm_seconds_per_call"  # docstore meta: {"<layer>|<model>": seconds}


def seconds_per_call(docs: DocStore, layer: str, llm: LLM, max_tokens: int, concurrency: int = 1,
                     ) -> tuple[float, str]:
    """Expected wall-clock seconds per call of `layer` with `llm` in a run (concurrent calls
    overlap), and where the figure comes from: the last run of this layer with this model on
    this index, else a conservative assumption (the shipped 135M model on 2 CPU cores took
    3.7-7 s for 64-128 generated tokens; llama.cpp serves one call at a time)."""
    seen = json.loads(docs.get_meta(TIMING_KEY) or "{}").get(f"{layer}|{llm.model}")
    if seen:
        return float(seen), "measured on the last run"
    if llm.backend == "llamacpp":
        return 1.0 + 0.05 * max_tokens, "assumed; none measured on this index yet"
    return (1.0 + 0.03 * max_tokens) / max(1, concurrency), "assumed; none measured on this index yet"


def note_seconds(docs: DocStore, layer: str, llm: LLM, stats: CallStats) -> None:
    """Keep this run's seconds per call for the next estimate (from 2 calls up)."""
    if stats.calls < 2:
        return
    data = json.loads(docs.get_meta(TIMING_KEY) or "{}")
    data[f"{layer}|{llm.model}"] = round(stats.seconds / stats.calls, 3)
    docs.set_meta(TIMING_KEY, json.dumps(data))


def duration(seconds: float) -> str:
    """`42 s`, `3.5 min`, `1.2 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _per_leaf(prev: dict[str, Any]) -> tuple[float, str]:
    """Seconds per leaf spent outside LLM calls (clustering, embedding, extracting) in the
    last full build of this index, or the assumed figure."""
    last = prev.get("last_build") or {}
    if last.get("mode") == "full" and last.get("leaves", 0) >= 50 and "llm_seconds" in last:
        return max(last["seconds"] - last["llm_seconds"], 0.0) / last["leaves"], "measured on the last build"
    return EXTRACTIVE_S_PER_LEAF, "assumed"


def tree_estimate(docs: DocStore, settings: Settings, rep: TreeReport, llm: LLM | None,
                  prev: dict[str, Any], old_nodes: int, n_changed: int) -> str:
    """What the build is expected to cost, as a line to print before it starts (rep.estimate too)."""
    s = settings.ingest
    if rep.mode == "full":
        built = sum(v for k, v in (prev.get("nodes_per_level") or {}).items() if k != "0")
        ratio = built / prev["leaves"] if built and prev.get("leaves") else NODES_PER_LEAF
        nodes = max(1, round(rep.leaves * ratio))
    else:
        depth = max(1, int(prev.get("depth") or 1))
        nodes = max(1, min(old_nodes, n_changed * depth + depth))  # changed clusters and their ancestors
    per_leaf, src = _per_leaf(prev)
    other = per_leaf * rep.leaves if rep.mode == "full" else 0.3 * nodes
    head = f"raptor: {rep.mode} build over {rep.leaves} leaves ({rep.reason})"
    if rep.method == "extractive" or llm is None:
        rep.estimate = {"llm_calls": 0, "nodes": nodes, "seconds": round(other, 1), "source": src}
        return (f"{head}: extractive summaries, {rep.why}: no LLM calls; about {nodes} clusters, "
                f"~{duration(other)} ({src})")
    per, psrc = seconds_per_call(docs, "raptor", llm, s.raptor_summary_tokens, s.llm_concurrency)
    secs = other + nodes * per
    rep.estimate = {"llm_calls": nodes, "nodes": nodes, "seconds_per_call": round(per, 2),
                    "seconds": round(secs, 1), "source": psrc}
    return (f"{head}: about {nodes} clusters for {llm.model} to summarise, about {nodes} LLM calls (up to "
            f"{2 * nodes} with retries, fewer where cached), ~{duration(secs)} at {per:.1f} s per call "
            f"({psrc})")
