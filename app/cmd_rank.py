"""`rag train-ranker`: train the LightGBM learning-to-rank model beside the index."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from app.output import print_json, stage_bars


def train_ranker_cmd(
    beir: Path = typer.Option(
        None,
        "--beir",
        help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv) to "
        "train on; its corpus gets an index of its own (cached).",
    ),
    synthetic: int = typer.Option(
        None,
        "--synthetic",
        help="Train on N questions the LLM writes over chunks of "
        "the current index (the default, with N=200).",
    ),
    out_dir: Path = typer.Option(
        None, "--out", help="Where to write the model (default: <index_dir>/ranker)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling, the split and LightGBM."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of queries held out for the report."),
    reports: Path = typer.Option(
        Path("reports"), "--reports-dir", help="Where synthetic sets and caches go."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the training report as JSON."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Train the LTR model (LightGBM lambdarank) and write it, with its report, beside the index."""
    from app.output import out
    from core.errors import ConfigError
    from core.settings import load_settings
    from eval.train_labelled import train_dataset

    if beir is not None and synthetic is not None:
        raise ConfigError("Give either --beir DIR or --synthetic N, not both.")
    if not 0.0 < holdout < 0.9:
        raise ConfigError(f"--holdout {holdout} is out of range; give a share between 0 and 0.9, e.g. 0.2.")
    settings = load_settings()
    bars = not no_progress and not json_out and sys.stderr.isatty()
    extra: dict[str, Any] = {}
    with stage_bars(bars) as cb:
        if beir is not None:
            from eval.datasets import load_dataset

            ds = load_dataset(beir)
        else:
            from eval.synthetic import build_synthetic, synthetic_dataset

            n = synthetic or 200
            folder = build_synthetic(
                settings,
                n,
                reports / "synthetic",
                seed=seed,
                progress=(lambda d, t: cb("questions", d, t)) if cb else None,
            )
            ds = synthetic_dataset(folder)
            extra["synthetic_set"] = str(folder)
            meta = folder / "meta.json"
            if meta.exists():
                import json

                m = json.loads(meta.read_text())
                extra["generated"] = {
                    "asked": m.get("asked"),
                    "tried": m.get("tried"),
                    "kept": m.get("kept"),
                    "rejected": {k: v for k, v in m.get("filter", {}).items() if k != "ok"},
                }
        report = train_dataset(
            ds,
            settings,
            out_dir,
            seed=seed,
            holdout=holdout,
            cache_dir=reports / ".cache",
            progress=cb,
            extra=extra,
        )
    if json_out:
        print_json(report)
        return
    nd = report.get("heldout_ndcg@10", {})
    out.print(
        f"trained on {report['train_queries']} queries ({report['dataset']}, {report['level']}-level); "
        f"model -> {report['model']}",
        markup=False,
    )
    if "generated" in report:
        g = report["generated"]
        out.print(
            f"questions: {g['kept']} kept of {g['tried']} generated; rejected {g['rejected']}", markup=False
        )
    if nd:
        out.print(
            f"held-out nDCG@10 ({report['heldout_queries']} queries): "
            f"without ranker {nd['without_ranker']:.4f}, with ranker {nd['with_ranker']:.4f}, "
            f"random order {nd['random_order']:.4f}",
            markup=False,
        )
    top = list(report.get("feature_importance_gain", {}).items())[:6]
    out.print("top features: " + ", ".join(f"{k} {v:.2f}" for k, v in top), markup=False)


def register(app: typer.Typer) -> None:
    app.command("train-ranker")(train_ranker_cmd)
