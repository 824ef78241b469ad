"""Small helpers for printing: JSON to stdout, tables and progress bars with rich.

rich is imported on first use, not with this module: `rag search --json` answered by `rag serve`
prints JSON only, and rich's import is a measurable share of its 0.3 s (`console` and `out` are
made when first named, PEP 562)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    console: Console  # stderr
    out: Console  # stdout


def __getattr__(name: str) -> Any:
    if name not in ("console", "out"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    made = Console(stderr=name == "console", soft_wrap=True)
    globals()[name] = made  # made once: later lookups find the global and skip this function
    return made


def _console() -> Console:
    made: Console | None = globals().get("console")
    return made if made is not None else __getattr__("console")


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _pages_bar(prog: Progress, task: list[Any], event: str, n: int) -> None:
    if event == "pages_total":
        if task[0] is None:
            task[0] = prog.add_task("pages", total=0)
        prog.update(task[0], total=(prog.tasks[task[0]].total or 0) + n)
    elif task[0] is not None:
        prog.advance(task[0], n)


@contextmanager
def ingest_progress(enabled: bool = True) -> Iterator[Callable[[str, int], None] | None]:
    """Two bars: files and chunks. Yields the callback the pipeline reports to."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # elapsed and an estimate of the time left (from the recent rate): a big file shows how long
    # it will take instead of a bar that seems stuck
    with Progress(
        TextColumn("{task.description:<7}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), console=_console(), transient=False,
    ) as prog:
        files = prog.add_task("files", total=0)
        chunks = prog.add_task("chunks", total=0)
        pages_task: list[Any] = [None]
        derived: dict[str, Any] = {}  # multi-representation units, RAPTOR clusters summarised

        def cb(event: str, n: int) -> None:
            if event == "files_total":
                prog.update(files, total=n)
            elif event == "file":
                prog.advance(files, n)
            elif event == "chunks_total":
                t = prog.tasks[chunks].total or 0
                prog.update(chunks, total=t + n)
            elif event == "chunks":
                prog.advance(chunks, n)
            elif event in ("pages_total", "page"):  # PDF pages (OCR is slow): a third bar when needed
                _pages_bar(prog, pages_task, event, n)
            elif event in ("represent_total", "raptor_total", "graph_total"):
                name = event.removesuffix("_total")
                if name not in derived:
                    label = {"represent": "units", "raptor": "clusters", "graph": "graph"}[name]
                    derived[name] = prog.add_task(label, total=0)
                prog.update(derived[name], total=(prog.tasks[derived[name]].total or 0) + n)
            elif event in derived:
                prog.advance(derived[event], n)

        yield cb


@contextmanager
def stage_bars(enabled: bool = True, width: int = 12, transient: bool = False,
               ) -> Iterator[Callable[[str, int, int], None] | None]:
    """One bar per stage for a `(stage, done, total)` callback (evaluation queries, ranker
    training, self-training), each added when its stage first reports. A total of 0 means
    the stage does not know its total: `done` is then an increment (files indexed so far)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"{{task.description:<{width}}}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=_console(), transient=transient,
    ) as prog:
        tasks: dict[str, TaskID] = {}

        def cb(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total or None)
            if total:
                prog.update(tasks[stage], completed=done, total=total)
            else:
                prog.advance(tasks[stage], done)

        yield cb
