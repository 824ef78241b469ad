"""`rag ingest`, `rag status`, `rag search`, `rag doctor`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from app.output import print_json

if TYPE_CHECKING:
    from core.index import Index
    from core.settings import Settings

# Module-level imports stay light (stdlib, typer): `rag search` answered by `rag serve` must start
# in a fraction of a second, so rich, pydantic settings and the index load inside the commands.
SEARCH_TIMEOUT_S = 5.0  # a resident server busy for longer (a long `rag ask`): answer in process


def ingest_cmd(
    paths: list[Path] = typer.Argument(..., help="Files and folders (recursively) to index."),
    prune: bool = typer.Option(False, "--prune", help="Remove chunks of indexed files that no longer exist."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    multi_rep: bool = typer.Option(
        None, "--multi-representation/--no-multi-representation",
        help="LLM summaries and questions per chunk or section (default: settings).",
    ),
    raptor: bool = typer.Option(None, "--raptor/--no-raptor",
                                help="Build or update the RAPTOR summary tree."),
    graph: bool = typer.Option(None, "--graph/--no-graph",
                               help="Build or update the knowledge graph (entities, relations)."),
) -> None:
    """Load, chunk, embed and index documents. Unchanged files are skipped."""
    from rich.markup import escape

    from app.ingest_lines import report_lines
    from app.output import console, ingest_progress, out
    from core.index import Index
    from core.settings import load_settings
    from ingest.pipeline import ingest

    settings = load_settings()
    layers = {"multi_representation": multi_rep, "raptor": raptor, "graph": graph}
    for name, on in layers.items():  # a derived layer's flag wins over the settings
        if on is not None:
            setattr(settings.ingest, name, on)
    show = not no_progress and not json_out and sys.stderr.isatty()

    def notice(line: str) -> None:  # a derived layer's cost estimate, before it runs (in --json: the summary)
        if not json_out:
            out.print(line, markup=False, highlight=False)

    # One Index for the ingest and the ranker's training: the model, the store and the keyword
    # index it just rebuilt (whose chunk ids the retraining check needs) stay loaded.
    index = Index(settings)
    with ingest_progress(show) as cb:
        report = ingest(paths, settings, prune=prune, progress=cb, notice=notice, index=index)
    summary = report.summary()
    ranker = _self_train(settings, show, index)
    if ranker is not None:
        summary["ranker"] = ranker.to_dict()
    if json_out:
        print_json(summary)
    else:
        failures, warnings, line = report_lines(report, settings, Path.cwd())
        for text in failures:
            console.print(f"[red]failed[/red]{escape(text[len('failed'):])}", highlight=False)
        for text in warnings:
            console.print(f"[yellow]warning[/yellow]{escape(text[len('warning'):])}", highlight=False)
        out.print(line, markup=False, highlight=False)
        for layer in report.derived.values():
            out.print(layer["line"], markup=False, highlight=False)
        if ranker is not None:
            out.print(ranker.line(), markup=False, highlight=False)
    if report.failed:
        raise typer.Exit(1)


def _self_train(settings: Any, show: bool, index: Index) -> Any:
    """Train the LTR model from the corpus itself when the ingest changed it enough
    (eval/self_train.py); None when there is no index to train on."""
    from app.output import stage_bars
    from eval.self_train import self_train

    if not index.exists() or index.docs.is_empty():
        return None
    with stage_bars(show, width=9, transient=True) as cb:  # "questions" (the LLM's), "ranker"
        return self_train(index, settings, cb)


def _ranker_status(settings: Settings, index: Index) -> dict[str, Any]:
    """Which LTR model the query path uses and why (or why it keeps the coarse order)."""
    import json

    from core.errors import RagError
    from retrieval.rerank import MANIFEST_FILE, ranker_path, ranker_state

    path = ranker_path(settings)
    try:
        ranker, why = ranker_state(settings, index.embedder.name)
    except RagError as e:
        ranker, why = None, str(e)
    if not settings.search.ltr:
        ranker, why = None, "the LTR stage is off (search.ltr = false)"
    info: dict[str, Any] = {"active": ranker is not None, "reason": why, "path": str(path)}
    try:
        report = json.loads((path / MANIFEST_FILE).read_text()).get("report", {})
    except (OSError, ValueError):
        report = {}
    if report:
        info.update(source=report.get("source") or report.get("dataset") or "labelled",
                    heldout_ndcg10=report.get("heldout_ndcg@10"), queries=report.get("queries"))
    if "pseudo_queries" in report:  # a self-trained ranker: what it learned from (`llm`: LLM-written)
        info.update(pseudo_queries=report["pseudo_queries"],
                    llm_questions=report.get("llm_questions", {}).get("note"))
    return info


def status_cmd(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Where the index is, what it holds, which model built it."""
    from rich.markup import escape
    from rich.table import Table

    from app.output import out
    from core.index import Index
    from core.settings import load_settings

    settings = load_settings()
    index = Index(settings)
    st = index.status()
    if st["exists"]:
        st["ranker"] = _ranker_status(settings, index)
    if json_out:
        print_json(st)
        return
    if not st["exists"]:
        out.print(f"No index at {st['index_dir']} yet; run `rag ingest PATH`.", markup=False, highlight=False)
        return
    t = Table(show_header=False, box=None)
    for k in ("index_dir", "vector_store", "embedding_model", "documents", "chunks", "vectors",
              "created_at", "updated_at"):
        t.add_row(k, escape(str(st.get(k))))
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(st["records_by_kind"].items()))
    t.add_row("records by kind", escape(kinds))
    if st.get("problem"):
        t.add_row("[red]problem[/red]", escape(st["problem"]))
    rk = st["ranker"]
    t.add_row("ranker", escape(f"{'on' if rk['active'] else 'off'}: {rk['reason']}"))
    if st.get("raptor", {}).get("depth"):
        per = ", ".join(f"L{k}={v}" for k, v in st["raptor"]["nodes_per_level"].items())
        t.add_row("raptor tree", f"depth {st['raptor']['depth']}: {per}")
    out.print(t)


def _hit_line(i: int, h: dict[str, Any]) -> str:
    """One hit: where it is, and a preview from the chunk that matched. A hit is returned as a
    passage window around that chunk (retrieval/window.py), and a preview from the window's start
    showed the section before it (a "French press" hit opening on "## Beans and freshness")."""
    loc = h.get("location") or (Path(h["source"]).name if h["source"] else "(derived)")
    text = h["text"]
    start, hit = h.get("start"), h.get("hit_start")
    at = hit - start if isinstance(start, int) and isinstance(hit, int) and 0 < hit - start < len(text) else 0
    snippet = ("… " if at else "") + " ".join(text[at:].split())[:160]
    return f"[{i}] {h['score']:.4f}  {loc} [{h['start']}:{h['end']}]  {h['title']}\n    {snippet}"


def skipped(coarse: bool | None, ltr: bool | None) -> frozenset[str]:
    """The reranking stages a `False` flag (`--no-coarse`, `--no-ltr`) leaves out."""
    return frozenset(n for n, on in (("coarse", coarse), ("ltr", ltr)) if on is False)


def search_result(
    query: str, settings: Settings, k: int = 5, mode: str | None = None, skip: frozenset[str] = frozenset(),
    index: Index | None = None,
) -> dict[str, Any]:
    """What `rag search --json` prints: the hits, per-stage timings and whether the ranker ran.
    `rag serve` answers with this same dict. `skip`: the stages `--no-coarse` / `--no-ltr` leave out."""
    from retrieval.pipeline import retrieve
    from retrieval.state import Plan

    res = retrieve(query, settings, index, k, Plan(mode=mode), skip=skip)
    stage = next((t.detail for t in res.trace if t.stage == "ltr"), None)
    ranker = None
    if stage is not None:
        ranker = {"active": "model" in stage, "why": stage.get("why") or stage.get("skipped")}
    hits = [h.to_dict() for h in res.hits]
    return {"query": query, "hits": hits, "timings_ms": res.timings(), "ranker": ranker}


def print_search(result: dict[str, Any], json_out: bool) -> None:
    """Print a `search_result`, whichever process made it."""
    if json_out:
        print_json(result)
        return
    from app.output import out

    if not result["hits"]:
        out.print("No results.")
    for i, h in enumerate(result["hits"], 1):
        out.print(_hit_line(i, h), markup=False, highlight=False)


def search_cmd(
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "-k", help="How many hits."),
    mode: str = typer.Option(None, "--mode", help="hybrid | dense | bm25 (default from settings)."),
    json_out: bool = typer.Option(False, "--json", help="Print hits as JSON."),
    coarse: bool = typer.Option(None, "--coarse/--no-coarse",
                                help="SBERT coarse rerank (default from settings)."),
    ltr: bool = typer.Option(None, "--ltr/--no-ltr", help="LightGBM LTR rerank (default from settings)."),
    no_serve: bool = typer.Option(False, "--no-serve",
                                  help="Search in this process even when `rag serve` runs."),
) -> None:
    """Retrieve the best chunks for a query (no generation): hybrid search, then the reranking stages."""
    result = None
    if not no_serve:  # a running `rag serve` for this index and these settings answers in milliseconds
        from app.serve_client import call

        result = call("search", {"query": query, "k": k, "mode": mode, "coarse": coarse, "ltr": ltr},
                      SEARCH_TIMEOUT_S)
    if result is None:
        from core.settings import load_settings

        result = search_result(query, load_settings(), k=k, mode=mode, skip=skipped(coarse, ltr))
    print_search(result, json_out)


def doctor_cmd(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """What is installed and reachable: embedding model, vector store, LLM backends, GPU."""
    from rich.markup import escape

    from app.doctor import run_checks
    from app.output import out
    from core.settings import load_settings

    settings = load_settings()
    checks = run_checks(settings)
    if json_out:
        print_json(checks)
    else:
        for c in checks:
            marks = {"ok": "[green]ok[/green]", "warn": "[yellow]--[/yellow]", "fail": "[red]!![/red]"}
            mark = marks[c["state"]]
            out.print(f"{mark} {escape(c['name'])}: {escape(str(c['detail']))}", highlight=False,
                      style="yellow" if c["state"] == "warn" else None)
    if any(c["state"] == "fail" for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.command("status")(status_cmd)
    app.command("search")(search_cmd)
    app.command("doctor")(doctor_cmd)
