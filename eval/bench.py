"""`rag bench ingest|retrieval|llm|all`: figures, never assertions.

ingest: chunks/s, characters/s and peak memory of our ingest, whole process with model
load, on the sample corpus and generated corpora (1k / 10k / optionally 100k chunks),
beside the LangChain tutorial stack and the raw encoder on the same files
(`eval.bench_ingest`, one process per contender). Characters/s counts the source files'
characters for every contender, so the ratios compare the same work.
retrieval / llm: `eval.bench_retrieval.run(settings, ...)` and `eval.bench_llm.run(settings,
...)`, written beside this module, when they are installed.
"""

from __future__ import annotations

import importlib
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.settings import Settings
from eval.bench_ingest import files_of, generate_corpus, measure

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
Echo = Callable[..., None]


def _chunk_texts(corpus: Path, settings: Settings) -> tuple[list[str], int]:
    """Our chunk texts (what the embedder sees) and the source characters."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load

    texts: list[str] = []
    chars = 0
    for p in files_of(corpus):
        chars += len(p.read_text(encoding="utf-8", errors="replace"))
        doc = load(p, settings.ingest)
        texts += [r.index_text() for r in chunk_document(doc, str(p), settings.chunk)]
    return texts, chars


def _ingest_rows(
    label: str, corpus: Path, settings: Settings, baselines: bool, device: str
) -> list[dict[str, Any]]:
    texts, chars = _chunk_texts(corpus, settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tf = Path(tmp) / "texts.json"
        tf.write_text(json.dumps(texts))
        for who in ["ours", "langchain", "raw"] if baselines else ["ours"]:
            r = measure(who, corpus, tf if who == "raw" else None, device)
            r.update(corpus=label, source_chars=chars, files=len(files_of(corpus)))
            if "seconds" in r:
                r["chunks_per_s"] = round(r["chunks"] / r["seconds"], 1)
                r["chars_per_s"] = round(chars / r["seconds"])
                r["chars_per_cpu_s"] = round(chars / max(r["cpu_seconds"], 1e-9))
            rows.append(r)
    ours = next((r for r in rows if r["contender"] == "ours" and "chars_per_s" in r), None)
    for r in rows:
        if ours and "chars_per_s" in r and r is not ours:
            r["ours_vs_this"] = round(ours["chars_per_s"] / r["chars_per_s"], 2)
            r["ours_vs_this_cpu"] = round(ours["chars_per_cpu_s"] / r["chars_per_cpu_s"], 2)
    return rows


def bench_ingest(
    settings: Settings,
    sizes: list[int],
    baselines: bool = True,
    echo: Echo | None = None,
    cache: Path = Path("reports/.cache/bench"),
) -> list[dict[str, Any]]:
    device = settings.embedding.device
    corpora: list[tuple[str, Path]] = [("sample", SAMPLE)] if SAMPLE.exists() else []
    corpora += [(f"generated-{n}", generate_corpus(cache / f"gen-{n}", n)) for n in sizes]
    rows: list[dict[str, Any]] = []
    if echo:
        echo(f"ingest throughput (device {device}; whole process, model load included)")
        echo("ours/this = our characters/s over this contender's (wall clock; in brackets by CPU seconds)")
        echo(
            f"{'corpus':<16}{'contender':<11}{'chunks':>8}{'seconds':>9}{'cpu s':>8}{'chunks/s':>10}"
            f"{'chars/s':>10}{'peak MB':>9}  ours/this"
        )
    for label, corpus in corpora:
        for r in _ingest_rows(label, corpus, settings, baselines, device):
            rows.append(r)
            if echo:
                if "error" in r:
                    echo(f"{label:<16}{r['contender']:<11} failed: {r['error']}")
                    continue
                ratio = (
                    f"{r['ours_vs_this']:.2f}x ({r['ours_vs_this_cpu']:.2f}x)" if "ours_vs_this" in r else ""
                )
                echo(
                    f"{label:<16}{r['contender']:<11}{r['chunks']:>8}{r['seconds']:>9.1f}{r['cpu_seconds']:>8.1f}"
                    f"{r['chunks_per_s']:>10.1f}{r['chars_per_s']:>10}{r['peak_rss_mb']:>9.0f}  {ratio}"
                )
    return rows


def _optional(module: str, settings: Settings, echo: Echo | None, **kw: Any) -> dict[str, Any] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        if echo:
            echo(f"{module} is not installed yet; skipped")
        return None
    res: dict[str, Any] = mod.run(settings, **kw)
    if echo:
        echo(json.dumps(res, indent=2, ensure_ascii=False, default=str))
    return res


def run(
    what: str, settings: Settings, sizes: list[int], baselines: bool = True, echo: Echo | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if what in ("ingest", "all"):
        out["ingest"] = bench_ingest(settings, sizes, baselines, echo)
    if what in ("retrieval", "all"):
        out["retrieval"] = _optional("eval.bench_retrieval", settings, echo, sizes=sizes)
    if what in ("llm", "all"):
        out["llm"] = _optional("eval.bench_llm", settings, echo)
    return out
