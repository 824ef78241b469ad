"""The loaded document every loader returns (`LoadedDoc`, with its `Page` spans) and the
Markdown table writer the HTML, DOCX and PDF loaders share. Kept apart from
`ingest.loaders` so `ingest.pdf` can use them without importing the loaders back."""

from __future__ import annotations

from dataclasses import dataclass, field


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
