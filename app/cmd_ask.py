"""`rag ask "question"`: stream a grounded answer, then the numbered sources it cited."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, cast

import typer

from app.output import print_json
from core.types import location

if TYPE_CHECKING:
    from core.index import Index
    from core.settings import Settings
    from core.types import TraceEntry

# Light module-level imports (see app/cmd_index.py): rich, settings and the pipeline load in the command.
ASK_TIMEOUT_S = 900.0  # generation on CPU can take minutes; past this, ask again in process


def _source_line(c: dict[str, object]) -> str:
    src = str(c["source"])
    loc = location(src, cast("int | None", c.get("page_start")), cast("int | None", c.get("page_end")))
    if c.get("table"):  # an answer from table rows (retrieval/table_answer.py): table and rows, no offsets
        return f"[{c['n']}] {loc}  {c['title']}\n    {src}"
    title = f"  {c['title']}" if c.get("title") else ""
    return f"[{c['n']}] {loc} [{c['start']}:{c['end']}]{title}\n    {src}"


def _print_trace(trace: list[TraceEntry], settings: Settings) -> None:
    from app.output import console
    from app.trace_view import Locator, format_entry

    console.rule("trace")
    loc = Locator(settings, trace)
    for t in trace:
        lines = format_entry(t, loc)  # route, queries, candidates per query, LLM calls, sub-answers
        if lines is not None:
            text = f"{t.stage:<14} {t.ms:>9.1f} ms  " + "\n".join(lines)
            console.print(text, markup=False, highlight=False)
            continue
        detail = json.dumps(t.detail, ensure_ascii=False, default=str)
        if len(detail) > 600:
            detail = detail[:600] + " …"
        console.print(f"{t.stage:<14} {t.ms:>9.1f} ms  {detail}", markup=False, highlight=False)


def ask_result(question: str, settings: Settings, strategy: str | None = None, k: int | None = None,
               index: Index | None = None) -> dict[str, Any]:
    """The answer as `rag ask --json --trace` prints it (without streaming); `rag serve` answers with it."""
    from retrieval.answer import AskOptions, ask

    return ask(question, settings, AskOptions(strategy=strategy, k=k), index=index).to_dict(trace=True)


def _print_sources(result: dict[str, Any]) -> None:
    """After the answer: a weakly supported answer's note, the sources, or a refusal's closest
    passages (an older `rag serve` sends neither note nor closest)."""
    from app.output import out

    if result.get("note"):
        out.print("\n" + result["note"], markup=False, highlight=False, style="yellow")
    if result["citations"]:
        out.print("\nSources:", highlight=False)
        for c in result["citations"]:
            out.print(_source_line(c), markup=False, highlight=False)
    if result.get("closest"):  # a refusal: where the user may look
        out.print("\nClosest passages (none of them supports an answer):", highlight=False)
        for c in result["closest"]:
            out.print(_source_line(c), markup=False, highlight=False)


def print_answer(result: dict[str, Any], json_out: bool, trace: bool, streamed: bool,
                 entries: list[TraceEntry] | None = None, settings: Settings | None = None) -> None:
    """Print an answer (`AnswerResult.to_dict(trace=True)`) after its text was streamed, whichever
    process made it. `entries`: the trace as the pipeline left it (in process), else rebuilt."""
    if json_out:
        print_json({k: v for k, v in result.items() if trace or k != "trace"})
    else:
        from rich.markup import escape

        from app.output import console

        if streamed:
            sys.stdout.write("\n")
        _print_sources(result)
        secs = result["timings"].get("total", 0) / 1000
        mode = f" · {escape(result['mode'])}" if result["mode"] else ""
        console.print(f"[dim]{escape(result['backend'])} · {escape(result['model'])}{mode} · {secs:.1f}s "
                      f"({escape(result['reason'])})[/dim]", highlight=False)
        from app.answer_notes import check_note

        note = check_note([(t["stage"], t["detail"]) for t in result["trace"]])
        if note:
            console.print(f"[dim]{escape(note)} (--trace shows which and why)[/dim]", highlight=False)
        if trace:
            from core.settings import load_settings
            from core.types import TraceEntry

            if entries is None:
                entries = [TraceEntry(t["stage"], t["ms"], t["detail"]) for t in result["trace"]]
            _print_trace(entries, settings or load_settings())
    if result["abstain_reason"] == "empty_index":
        raise typer.Exit(1)


def ask_cmd(
    question: str = typer.Argument(..., help="The question to answer from the indexed documents."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of streaming."),
    trace: bool = typer.Option(False, "--trace", help="Show every step: backend, queries, candidates."),
    strategy: str = typer.Option(None, "--strategy", help="Query translation strategy (default: settings)."),
    k: int = typer.Option(None, "-k", help="Passages in the prompt (default answer.context_chunks)."),
    no_serve: bool = typer.Option(False, "--no-serve",
                                  help="Answer in this process even when `rag serve` runs."),
) -> None:
    """Answer a question from your documents, with numbered citations."""
    if not no_serve:  # a running `rag serve` answers without loading anything here (not streamed)
        from app.serve_client import call

        served = call("ask", {"question": question, "strategy": strategy, "k": k}, ASK_TIMEOUT_S)
        if served is not None:
            if not json_out:
                sys.stdout.write(served["answer"])
                sys.stdout.flush()
            print_answer(served, json_out, trace, streamed=not json_out)
            return
    from core.settings import load_settings
    from retrieval.answer import AnswerResult, AskOptions, ask_stream

    settings = load_settings()
    result: AnswerResult | None = None
    streamed = False
    for part in ask_stream(question, settings, AskOptions(strategy=strategy, k=k)):
        if isinstance(part, AnswerResult):
            result = part
        elif not json_out:
            sys.stdout.write(part)
            sys.stdout.flush()
            streamed = True
    assert result is not None
    print_answer(result.to_dict(trace=True), json_out, trace, streamed, result.trace, settings)


def register(app: typer.Typer) -> None:
    app.command("ask")(ask_cmd)
