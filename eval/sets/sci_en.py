"""Build data/eval/sci-en: English scientific/technical passages from scikit-learn.

The corpus is the documentation text that ships inside the scikit-learn wheel: the dataset
descriptions (`sklearn/datasets/descr/*.rst`) and the docstrings of public top-level classes
and functions (read with `ast` from the source files, nothing is imported or executed).
Each text is cut into passages of whole paragraphs / parameter entries, ~300-1500 characters,
every passage a verbatim slice of its source text. The questions are hand-written in
`questions.jsonl` beside the built files; `build()` turns them into `queries.jsonl` and the
qrels, checking that every evidence string is a substring of its document.

    python -m eval.sets.sci_en [OUT_DIR] [--source DIR]   # DIR: an unpacked sklearn/ folder

Packing, the split and writing the set are `eval.sets.common`, shared with the other sets.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from eval.sets.common import SourcedSet, installed_package, pack

MIN_CHARS = 300
MAX_CHARS = 1500
TARGET_CHARS = 1100
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "eval" / "sci-en"
SOURCE_HELP = "an unpacked sklearn/ folder (default: the installed one)"
SKIP_SECTIONS = {"Examples", "See Also", "See also", "References"}
_UNDERLINE = re.compile(r"^\s*(-{3,}|={3,}|~{3,}|\*{3,}|\^{3,})\s*$")


# ---------------------------------------------------------------- scikit-learn text


def sklearn_root(source: Path | None = None) -> Path:
    """The sklearn/ package folder: `source`, or the installed one (found, not imported)."""
    if source is not None:
        return Path(source)
    return installed_package(
        "sklearn", "scikit-learn is not installed; pip install scikit-learn or pass --source DIR"
    )


def _line_starts(text: str) -> list[int]:
    starts, pos = [], 0
    for line in text.split("\n"):
        starts.append(pos)
        pos += len(line) + 1
    return starts


def _paragraph_spans(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """(start, end) of blank-line separated blocks of text[lo:hi]."""
    spans = []
    for m in re.finditer(r"\S(?:.*\S)?(?:\n[ \t]*\S.*)*", text[lo:hi]):
        s, e = lo + m.start(), lo + m.end()
        spans.append((s, e))
    return spans


def docstring_units(doc: str) -> Iterator[tuple[str, int, int]]:
    """(section, start, end) units of a numpydoc docstring: paragraphs; in parameter-like
    sections one unit per entry (an unindented `name : type` line and its indented text)."""
    lines = doc.split("\n")
    starts = _line_starts(doc)
    # section boundaries: a header line followed by an underline
    heads = [(0, "Description", 0)]
    for i in range(len(lines) - 1):
        if (
            lines[i].strip()
            and not lines[i].startswith(" ")
            and _UNDERLINE.match(lines[i + 1])
            and len(lines[i + 1].strip()) >= len(lines[i].strip()) * 0.6
        ):
            heads.append((i, lines[i].strip(), i + 2))
    for k, (hline, name, body) in enumerate(heads):
        end_line = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
        if name in SKIP_SECTIONS or body >= end_line:
            continue
        lo = starts[hline]
        hi = starts[end_line] - 1 if end_line < len(lines) else len(doc)
        if name in {"Parameters", "Attributes", "Returns", "Yields", "Raises", "Other Parameters", "Warns"}:
            entry_lines = [
                i for i in range(body, end_line) if lines[i].strip() and not lines[i].startswith(" ")
            ]
            for j, i in enumerate(entry_lines):
                s = lo if j == 0 else starts[i]
                last = (entry_lines[j + 1] if j + 1 < len(entry_lines) else end_line) - 1
                while last > i and not lines[last].strip():
                    last -= 1
                yield name, s, starts[last] + len(lines[last])
        else:
            spans = _paragraph_spans(doc, starts[body], hi)
            if spans and hline:
                spans[0] = (lo, spans[0][1])  # keep the header with the first paragraph
            for s, e in spans:
                yield name, s, e


def _public_module(rel: Path) -> str:
    parts = [p for p in rel.with_suffix("").parts if p != "__init__"]
    return ".".join(p for p in parts if not p.startswith("_"))


def docstring_passages(root: Path) -> Iterator[dict[str, str]]:
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root.parent)
        if any(p in {"tests", "externals", "_build_utils"} for p in rel.parts):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = _public_module(rel)
        for node in tree.body:
            if not isinstance(node, ast.ClassDef | ast.FunctionDef) or node.name.startswith("_"):
                continue
            doc = ast.get_docstring(node)
            if not doc or len(doc) < MIN_CHARS:
                continue
            units = list(docstring_units(doc))
            spans = pack([(s, e) for _, s, e in units], doc, MIN_CHARS, MAX_CHARS, TARGET_CHARS)
            section_at = {s: name for name, s, _ in units}
            for k, (s, e) in enumerate(spans):
                sec = section_at.get(s, "Description")
                title = f"{module}.{node.name}" + ("" if sec == "Description" else f" ({sec})")
                yield {"_id": f"{module}.{node.name}/{k}", "title": title, "text": doc[s:e]}


def descr_passages(root: Path) -> Iterator[dict[str, str]]:
    for path in sorted((root / "datasets" / "descr").glob("*.rst")):
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        title = next(
            (ln.strip() for i, ln in enumerate(lines[:-1]) if ln.strip() and _UNDERLINE.match(lines[i + 1])),
            path.stem,
        )
        spans = pack(_paragraph_spans(text, 0, len(text)), text, MIN_CHARS, MAX_CHARS, TARGET_CHARS)
        for k, (s, e) in enumerate(spans):
            yield {"_id": f"descr/{path.stem}/{k}", "title": title, "text": text[s:e]}


def build_corpus(source: Path | None = None) -> list[dict[str, str]]:
    root = sklearn_root(source)
    corpus: list[dict[str, str]] = []
    seen_text: set[str] = set()
    seen_id: set[str] = set()
    for d in [*descr_passages(root), *docstring_passages(root)]:
        if len(d["text"]) < 120 or d["text"] in seen_text:
            continue  # a stub, or text already in the corpus (shared docstring templates)
        base, n = d["_id"], 2
        while d["_id"] in seen_id:
            d["_id"] = f"{base}~{n}"
            n += 1
        seen_text.add(d["text"])
        seen_id.add(d["_id"])
        corpus.append(d)
    return corpus


SCI_EN = SourcedSet(__doc__, DEFAULT_OUT, build_corpus, SOURCE_HELP)
build, main = SCI_EN.build, SCI_EN.main


if __name__ == "__main__":
    main()
