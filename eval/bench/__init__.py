"""`rag bench ingest|retrieval|llm|strategies|raptor|ocr|faults|cold|scale|all`: figures, never assertions.

ingest: chunks/s, characters/s and peak memory of our ingest, whole process with model
load, on the sample corpus and generated corpora (1k / 10k / optionally 100k chunks),
beside the LangChain tutorial stack and the raw encoder on the same files
(`eval.bench_ingest`, one process per contender). Characters/s counts the source files'
characters for every contender, so the ratios compare the same work.
retrieval / llm (and strategies, raptor, ocr, faults, cold, scale, not part of `all`): the
`run(settings, ...)` of the module each stage's owner wrote beside this one (`eval.bench_retrieval`,
...), when installed. scale: one generated corpus of the first size (default 100,000 chunks),
`server` also against a real `chroma run`, `baselines` None = the LangChain peer only up to
20,000 chunks (`eval.bench_scale`).
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
        titles = settings.embedding.titles
        texts += [r.embed_text(titles) for r in chunk_document(doc, str(p), settings.chunk)]
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


def _show(res: dict[str, Any], echo: Echo) -> None:
    echo(json.dumps(res, indent=2, ensure_ascii=False, default=str))


def _bench_retrieval(mod: Any, s: Settings, sizes: list[int], echo: Echo | None, **_: Any) -> dict[str, Any]:
    return mod.run(s, tuple(sizes))  # type: ignore[no-any-return]  # prints its own table


def _bench_strategies(mod: Any, s: Settings, sizes: list[int], echo: Echo | None, **_: Any) -> dict[str, Any]:
    res: dict[str, Any] = mod.run(s)
    if echo:
        echo(mod.table(res))
    return res


def _bench_raptor(mod: Any, s: Settings, sizes: list[int], echo: Echo | None, **_: Any) -> dict[str, Any]:
    return mod.run(s, echo=echo)  # type: ignore[no-any-return]


def _bench_plain(mod: Any, s: Settings, sizes: list[int], echo: Echo | None, **_: Any) -> dict[str, Any]:
    res: dict[str, Any] = mod.run(s)
    if echo:
        _show(res, echo)
    return res


def _verbatim(echo: Echo | None) -> Echo | None:
    """Lines that quote file names (`[/x]note.md`) or errors: a rich console prints them verbatim."""
    from functools import partial

    from rich.console import Console

    if echo is not None and isinstance(getattr(echo, "__self__", None), Console):
        return partial(echo, markup=False, highlight=False)
    return echo


def _bench_faults(mod: Any, s: Settings, sizes: list[int], echo: Echo | None, **_: Any) -> dict[str, Any]:
    return mod.run(s, echo=_verbatim(echo))  # type: ignore[no-any-return]


def _bench_scale(
    mod: Any, s: Settings, sizes: list[int], echo: Echo | None, server: bool = False,
    baselines: bool | None = None, **_: Any,
) -> dict[str, Any]:
    chunks = sizes[0] if sizes else 100_000  # one corpus: the first size asked
    return mod.run(s, chunks, echo=_verbatim(echo), server=server, peer=baselines)  # type: ignore[no-any-return]


# name -> (module written by the stage's owner, how to call its `run(settings, ...)`); each call
# gets (module, settings, sizes, echo) and the options below as keywords, which it may ignore.
OTHERS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "retrieval": ("eval.bench_retrieval", _bench_retrieval),
    "llm": ("eval.bench_llm", _bench_plain),
    "strategies": ("eval.bench_strategies", _bench_strategies),
    "raptor": ("eval.bench_raptor", _bench_raptor),
    "ocr": ("eval.bench_ocr", _bench_plain),
    "faults": ("eval.bench_faults", _bench_faults),  # not part of `all`: ~25 rag processes
    "cold": ("eval.bench_cold", _bench_raptor),  # `rag search` as a fresh process, both encoders
    "scale": ("eval.bench_scale", _bench_scale),  # not part of `all`: 100k chunks by default, hours on CPU
}
DEFAULT_SIZES = [1000, 10000]
CHOICES = ("ingest", *OTHERS, "all")  # all = ingest, retrieval, llm


def _other(
    name: str, settings: Settings, sizes: list[int], echo: Echo | None, **opts: Any
) -> dict[str, Any] | None:
    module, call = OTHERS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        if echo:
            echo(f"{module} is not installed yet; {name} skipped")
        return None
    if echo:
        echo(f"\n{name}:")
    return call(mod, settings, sizes, echo, **opts)


def run(
    what: str, settings: Settings, sizes: list[int] | None = None, baselines: bool | None = True,
    echo: Echo | None = None, server: bool = False,
) -> dict[str, Any]:
    """`sizes` None or empty: each benchmark's default (DEFAULT_SIZES; scale: 100,000 chunks).
    `baselines` None: each benchmark's default (ingest: on; scale: only for small corpora)."""
    out: dict[str, Any] = {}
    if what in ("ingest", "all"):
        out["ingest"] = bench_ingest(settings, sizes or DEFAULT_SIZES, baselines is not False, echo)
    for name in OTHERS:
        if what == name or (what == "all" and name in ("retrieval", "llm")):
            sz = sizes or ([] if name == "scale" else DEFAULT_SIZES)
            out[name] = _other(name, settings, sz, echo, server=server, baselines=baselines)
    return out
