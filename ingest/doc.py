"""The loaded document every loader returns (`LoadedDoc`, with its `Page` spans and the tables
it holds) and the Markdown table writer the HTML, DOCX and PDF loaders share. Kept apart from
`ingest.loaders` so `ingest.pdf` can use them without importing the loaders back."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.tables import FoundTable


@dataclass
class Page:
    number: int  # 1-based
    start: int
    end: int


@dataclass
class LoadedDoc:
    text: str
    title: str
    pages: list[Page] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # the document's tables as rows, stored by ingest as SQLite tables (core/tables.py)
    tables: list[FoundTable] = field(default_factory=list)


def found_table(rows: list[list[str]], page: int | None = None, caption: str = "") -> FoundTable | None:
    """Rows (first is the header) as a table worth storing: a header and at least one data row
    of cells flattened to one line each; None otherwise."""
    rows = [[" ".join((c or "").split()) for c in r] for r in rows]
    rows = [r for r in rows if any(r)]
    if len(rows) < 2 or not any(rows[0]):
        return None
    return FoundTable(rows[0], rows[1:], page, " ".join(caption.split()))


def md_table(rows: list[list[str]]) -> str:
    """Rows (first is the header) as a Markdown table; cells flattened to one line."""
    rows = [[" ".join((c or "").split()).replace("|", "\\|") for c in r] for r in rows if r]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)
