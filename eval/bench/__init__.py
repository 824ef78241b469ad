"""`rag bench NAME` (NAME: ingest|retrieval|llm|strategies|raptor|ocr|faults|cold|scale|ui|late|all):
figures, never assertions.

One module per benchmark in this package, each with one entry point
`run(settings, *, echo=None, ...) -> figures` (it prints its figures through `echo` and returns
them) and a `main(argv)` for `python -m eval.bench.NAME`. `REGISTRY` names them; `run` below
dispatches `rag bench NAME` to one (or `all`: ingest, retrieval, llm), mapping the command's
options onto that module's keywords. The modules are imported only when run, and this file
imports nothing heavy: every benchmark child process (`python -m eval.bench.ingest --worker`,
`python -m eval.bench.scale --worker`) imports it first, and its imports would count in the
child's measured start-up and memory.

- ingest: chunks/s, characters/s and peak memory of our ingest, the LangChain tutorial stack and
  the raw encoder, each a whole process, on the sample corpus and generated corpora (`sizes`);
- retrieval: latency by stage at each of `sizes`; llm: the embedded model's and Ollama's tokens/s;
- strategies: latency and LLM calls of each query strategy; raptor: building a RAPTOR tree;
- ocr: OCR pages/s; faults: the fault matrix; cold: `rag search` / `rag ask` as fresh processes;
- scale: one generated corpus of the first size (default 100,000 chunks), `server` also against a
  real `chroma run`, `baselines` None = the LangChain peer only up to 20,000 chunks;
- ui: what the chat UI itself costs (renders and reruns through Streamlit's AppTest);
- late: the late-interaction stage's candidates' token vectors stored (disk, ingest time) against
  computed at query time, on the current index.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
Echo = Callable[..., None]
DEFAULT_SIZES = [1000, 10000]


@dataclass(frozen=True)
class Options:
    """What `rag bench` was asked, beside the settings."""

    sizes: list[int] = field(default_factory=list)  # empty: each benchmark's default
    baselines: bool | None = True  # None: each benchmark's default (ingest: on; scale: small corpora only)
    server: bool = False
    corpora: list[Path] = field(default_factory=list)  # ingest: folders of the user's own, beside ours


def _none(o: Options) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Bench:
    module: str  # its `run(settings, *, echo, **keywords)`
    help: str  # for `rag bench --help`
    in_all: bool = False
    keywords: Callable[[Options], dict[str, Any]] = _none  # the command's options as `run` keywords


REGISTRY: dict[str, Bench] = {
    "ingest": Bench("eval.bench.ingest", "ingest", True, lambda o: {
        "sizes": o.sizes or DEFAULT_SIZES, "baselines": o.baselines is not False, "corpora": o.corpora}),
    "retrieval": Bench("eval.bench.retrieval", "retrieval", True, lambda o: {
        "sizes": tuple(o.sizes or DEFAULT_SIZES)}),
    "llm": Bench("eval.bench.llm", "llm", True),
    "strategies": Bench("eval.bench.strategies", "strategies"),
    "raptor": Bench("eval.bench.raptor", "raptor"),
    "ocr": Bench("eval.bench.ocr", "ocr"),
    "faults": Bench("eval.bench.faults", "faults (fault matrix, ~25 rag processes)"),
    "cold": Bench("eval.bench.cold", "cold (`rag search` start-up)", False, lambda o: {"corpora": o.corpora}),
    "scale": Bench("eval.bench.scale", "scale (100k chunks: ingest, update, retrieval, memory)", False,
                   lambda o: {"chunks": o.sizes[0] if o.sizes else 100_000,  # one corpus: the first size
                              "server": o.server, "peer": o.baselines}),
    "ui": Bench("eval.bench.ui", "ui (the chat UI's own cost)"),
    "late": Bench("eval.bench.late", "late (late interaction: token vectors stored vs computed)"),
}
CHOICES = (*REGISTRY, "all")  # all = those marked in_all: ingest, retrieval, llm
HELP = " | ".join([*(b.help for b in REGISTRY.values()), "all (ingest, retrieval, llm)"])


def _verbatim(echo: Echo | None) -> Echo | None:
    """Lines that quote file names (`[/x]note.md`) or errors: a rich console prints them verbatim."""
    if echo is None:
        return None
    from functools import partial

    from rich.console import Console

    if isinstance(getattr(echo, "__self__", None), Console):
        return partial(echo, markup=False, highlight=False)
    return echo


def run_one(name: str, settings: Settings, options: Options, echo: Echo | None = None) -> Any:
    """The figures of benchmark `name` (a key of REGISTRY)."""
    bench = REGISTRY[name]
    mod = importlib.import_module(bench.module)
    return mod.run(settings, echo=_verbatim(echo), **bench.keywords(options))


def run(
    what: str, settings: Settings, sizes: list[int] | None = None, baselines: bool | None = True,
    echo: Echo | None = None, server: bool = False, corpora: list[Path] | None = None,
) -> dict[str, Any]:
    """`rag bench WHAT`: {name: figures}. `sizes` None or empty: each benchmark's default
    (DEFAULT_SIZES; scale: 100,000 chunks). `baselines` None: each benchmark's default."""
    if what not in CHOICES:
        raise ValueError(f"{what!r} is not a benchmark: choose one of {', '.join(CHOICES)}")
    options = Options(list(sizes or []), baselines, server, list(corpora or []))
    out: dict[str, Any] = {}
    for name, bench in REGISTRY.items():
        if what == name or (what == "all" and bench.in_all):
            if echo and name != "ingest":  # ingest heads its own table
                echo(f"\n{name}:")
            out[name] = run_one(name, settings, options, echo)
    return out


def parser(description: str) -> argparse.ArgumentParser:
    """A benchmark's command line (`python -m eval.bench.NAME`), with `--json OUT`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    return ap


def write_json(path: Path | None, res: Any) -> None:
    """`--json OUT`: the figures, as the benchmark's `run` returned them."""
    if path:
        path.write_text(json.dumps(res, indent=2, ensure_ascii=False))


def main_for(run: Callable[..., Any], description: str, argv: list[str] | None, **options: int) -> None:
    """`python -m eval.bench.NAME` for a benchmark whose options are integers: `--max-tokens N`
    for `max_tokens=`, with these defaults; figures printed, `--json OUT` written."""
    from core.settings import load_settings  # pydantic: not at import (this module stays light)

    ap = parser(description)
    for name, default in options.items():
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    a = ap.parse_args(argv)
    write_json(a.json, run(load_settings(), echo=print, **{n: getattr(a, n) for n in options}))
