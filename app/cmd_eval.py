"""`rag eval` (offline retrieval evaluation) and `rag bench` (throughput and latency figures)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from app.output import print_json, stage_bars
from eval.bench import HELP as BENCH_HELP  # the benchmark registry: stdlib imports only

if TYPE_CHECKING:
    from eval.estimate import Estimate

# rich and the settings load inside the commands: every `rag` start imports this module (app/cmd_index.py)


def _say(expected: Estimate) -> None:
    """The run's cost estimate, before the work starts, when it will take a while."""
    from app.output import console

    if expected.worth_saying():
        for line in expected.lines():
            console.print(line, markup=False, highlight=False)


def _split(v: str | None) -> list[str] | None:
    return [x.strip() for x in v.split(",") if x.strip()] if v else None


def eval_cmd(
    dataset: Path = typer.Argument(None, help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)."),
    corpus: Path = typer.Option(
        None, "--corpus", help="BEIR corpus.jsonl, or a folder of files (id = file stem)."
    ),
    queries: Path = typer.Option(None, "--queries", help="BEIR queries.jsonl."),
    qrels: Path = typer.Option(
        None, "--qrels", help="BEIR qrels .tsv (query-id, corpus-id, score; header line)."
    ),
    split: str = typer.Option(
        None,
        "--split",
        help="Score qrels/<SPLIT>.tsv of the dataset folder: dev (for tuning) or test (the default).",
    ),
    synthetic: int = typer.Option(
        None,
        "--synthetic",
        help="Build N LLM-written questions over the current index (saved, reused) and evaluate on them.",
    ),
    generated: str = typer.Option(
        None, "--generated", help="Build and evaluate a set from text on this machine: docstrings | readmes."
    ),
    configs: str = typer.Option(
        None,
        "--configs",
        help="Comma-separated configuration names, or 'all' (default: every one that makes no LLM "
        "call; see --list-configs).",
    ),
    name: str = typer.Option(None, "--name", help="Report name: reports/NAME/."),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N queries."),
    depth: int = typer.Option(100, "--depth", help="Chunks retrieved per query."),
    reports: Path = typer.Option(Path("reports"), "--reports-dir", help="Where reports and caches go."),
    list_configs: bool = typer.Option(False, "--list-configs", help="List configurations and exit."),
    json_out: bool = typer.Option(False, "--json", help="Print results.json instead of the table."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    tables: bool = typer.Option(
        False, "--tables", help="DATASET is a table-question set (data/eval/tables): answers with the "
        "SQL stage against the same answers without it (eval/tables.py); writes reports/NAME/."
    ),
    sql_arms: str = typer.Option("rules,llm,off", "--sql-arms", help="With --tables: the arms compared "
                                 "(auto, rules, llm, on, off: eval/tables.py ARMS)."),
) -> None:
    """Evaluate retrieval configurations on labelled data; writes reports/NAME/."""
    from app.output import console, ingest_progress, out
    from core.settings import load_settings
    from eval import configs as cfgs
    from eval import report
    from eval.datasets import load_dataset
    from eval.evaluate import evaluate

    if list_configs:
        for c in cfgs.REGISTRY.values():
            state = "  [LLM: run when named]" if c.uses_llm else ""
            out.print(f"{c.name:<18} {c.description}{state}", markup=False, highlight=False)
        return
    if tables:
        from eval.tables import main as tables_main

        if dataset is None:
            raise typer.BadParameter("--tables needs the set's folder, e.g. data/eval/tables")
        argv = [str(dataset), "--arms", sql_arms, "--out", str(reports / (name or "tables"))]
        raise typer.Exit(tables_main([*argv, *(["--limit", str(limit)] if limit else [])]))
    settings = load_settings()
    bars = not no_progress and not json_out and sys.stderr.isatty()
    if synthetic:
        from eval.synthetic import build_synthetic, synthetic_dataset

        with stage_bars(bars, width=18) as cb:
            folder = build_synthetic(
                settings,
                synthetic,
                reports / "synthetic",
                progress=(lambda d, t: cb("questions", d, t)) if cb else None,
            )
        console.print(f"synthetic set: {folder}")
        ds = synthetic_dataset(folder)
    else:
        if generated:
            from eval.synthetic import general_set

            dataset = general_set(generated, reports / "datasets")
            console.print(f"generated set: {dataset}")
        ds = load_dataset(dataset, corpus, queries, qrels, settings.ingest.extensions, name=None, split=split)
        # Dev and test runs of one set get their own report folders (the index cache is shared).
        if not name and ds.split:
            name = f"{ds.name}-{ds.split}"
    with ingest_progress(bars) as icb, stage_bars(bars, width=18) as qcb:
        result = evaluate(
            ds,
            settings,
            _split(configs),
            name=name,
            depth=depth,
            limit=limit,
            cache_dir=reports / ".cache",
            ingest_progress=icb,
            query_progress=qcb,
            on_estimate=None if json_out else _say,
        )
    paths = report.write(result, reports / (name or ds.name))
    if json_out:  # the estimate goes here instead of before the run
        print_json({**report.results_json(result), "estimate": result.estimate})
        return
    for v in result.issues.to_dict().values():
        console.print(f"[yellow]skipped[/yellow] {v['count']} {v['what']}")
    for cr in result.configs:
        for n in cr.notes:
            console.print(f"[yellow]note[/yellow] {cr.name}: {n}", markup=True, highlight=False)
    out.print(report.summary(result), markup=False, highlight=False)
    out.print(f"\nreport: {paths['html']}  ({paths['md'].name}, {paths['json'].name})")


def bench_cmd(
    what: str = typer.Argument(
        "all",
        help=BENCH_HELP,
    ),
    sizes: str = typer.Option(
        None, "--sizes", help="Generated corpus sizes in chunks (default 1000,10000; scale: the first "
        "size is its corpus, default 100000)."
    ),
    big: bool = typer.Option(False, "--100k", help="Also the 100,000-chunk corpus (slow on CPU)."),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default: settings.embedding.device)."),
    baselines: bool = typer.Option(
        None, "--baselines/--no-baselines", help="Also the LangChain tutorial stack and the raw encoder "
        "(default: on; scale: on up to 20,000 chunks)."
    ),
    server: bool = typer.Option(False, "--server", help="scale: also against a real `chroma run`."),
    corpus: list[Path] = typer.Option(  # noqa: B008 - typer's idiom
        [], "--corpus", help="ingest, cold: also a folder of your own .md/.txt/.html files (repeatable).",
        exists=True, file_okay=False,
    ),
    json_out: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Print ingest throughput, query latency by stage and LLM figures (no assertions)."""
    from app.output import out
    from core.settings import load_settings
    from eval.bench import CHOICES, run

    if what not in CHOICES:
        raise typer.BadParameter(f"{what!r}: choose one of {', '.join(CHOICES)}")
    settings = load_settings()
    if device:
        settings.embedding.device = device
    sz = [int(s) for s in (sizes or "").split(",") if s.strip()]
    if big:  # scale: its one corpus is the 100k one; the others add it to their sizes
        sz = [100_000] if what == "scale" else (sz or [1000, 10000]) + [100_000]
    echo = None if json_out else out.print
    figures = run(what, settings, sz, baselines=baselines, echo=echo, server=server, corpora=corpus)
    if json_out:
        print_json(figures)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("bench")(bench_cmd)
