"""Build data/eval/sci-en: English scientific/technical passages from scikit-learn.

The corpus is the documentation text that ships inside the scikit-learn wheel: the dataset
descriptions (`sklearn/datasets/descr/*.rst`) and the docstrings of public top-level classes
and functions (read with `ast` from the source files, nothing is imported or executed).
Each text is cut into passages of whole paragraphs / parameter entries, ~300-1500 characters,
every passage a verbatim slice of its source text. The questions are hand-written in
`questions.jsonl` beside the built files; `build()` turns them into `queries.jsonl` and the
qrels, checking that every evidence string is a substring of its document.

    python -m eval.sets.sci_en [OUT_DIR] [--source DIR]   # DIR: an unpacked sklearn/ folder

The helpers below (`pack`, `write_set`, `split_of`) are shared with `eval.sets.zh_prose`.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

MIN_CHARS = 300
MAX_CHARS = 1500
TARGET_CHARS = 1100
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "eval" / "sci-en"
SKIP_SECTIONS = {"Examples", "See Also", "See also", "References"}
_UNDERLINE = re.compile(r"^\s*(-{3,}|={3,}|~{3,}|\*{3,}|\^{3,})\s*$")


# ---------------------------------------------------------------- shared helpers


def split_of(qid: str) -> str:
    """Deterministic split: ~40% dev, ~60% test, by the SHA-1 of the query id."""
    return "dev" if int(hashlib.sha1(qid.encode("utf-8")).hexdigest(), 16) % 10 < 4 else "test"


def pack(
    spans: list[tuple[int, int]],
    text: str,
    lo: int = MIN_CHARS,
    hi: int = MAX_CHARS,
    target: int = TARGET_CHARS,
) -> list[tuple[int, int]]:
    """Group consecutive (start, end) spans of `text` into passages of lo..hi characters.

    Spans are units (paragraphs, entries) in order; a passage is text[first.start:last.end],
    so it stays a verbatim slice. A unit longer than `hi` becomes a passage of its own,
    cut at line breaks. A short last passage is merged into the one before when it fits.
    """
    units: list[tuple[int, int]] = []
    for s, e in spans:
        if e - s <= hi:
            units.append((s, e))
            continue
        start = s
        while e - start > hi:  # cut an over-long unit at the last line break before `target`
            cut = text.rfind("\n", start + lo, start + target)
            if cut <= start:
                cut = max(
                    text.rfind("。", start + lo, start + target), text.rfind(". ", start + lo, start + target)
                )
                cut = cut + 1 if cut > start else start + target
            units.append((start, cut))
            start = cut
            while start < e and text[start] in " \n\t\u3000":
                start += 1
        if start < e:
            units.append((start, e))
    out: list[tuple[int, int]] = []
    for s, e in units:
        if out and (e - out[-1][0] <= target or out[-1][1] - out[-1][0] < lo and e - out[-1][0] <= hi):
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    if len(out) > 1 and out[-1][1] - out[-1][0] < lo and out[-1][1] - out[-2][0] <= hi:
        out[-2:] = [(out[-2][0], out[-1][1])]
    return out


def _jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def judgements(q: Mapping[str, Any], docs: Mapping[str, Mapping[str, str]]) -> list[tuple[str, int]]:
    """(doc id, grade) of a hand-written question, checked against the corpus: `doc` and `also`
    (grade 2) must hold every evidence string, `helps` (grade 1) must exist."""
    qid = q["_id"]
    out = [
        (str(q["doc"]), 2),
        *((str(h), 2) for h in q.get("also") or []),
        *((str(h), 1) for h in q.get("helps") or []),
    ]
    for doc, grade in out:
        if doc not in docs:
            raise ValueError(f"question {qid}: unknown document {doc}")
        missing = [ev for ev in q["evidence"] if ev not in docs[doc]["text"]] if grade == 2 else []
        if missing:
            raise ValueError(f"question {qid}: evidence {missing[0]!r} is not in {doc}")
    return out


def write_set(out_dir: Path, corpus: list[dict[str, str]], questions: list[dict[str, Any]]) -> dict[str, int]:
    """Write corpus.jsonl, queries.jsonl, qrels/{dev,test}.tsv from hand-written questions.

    A question row: {_id, text, lang, doc, evidence, answer[, also: [doc ids], helps: [doc ids]]}
    for an answerable one (doc and `also` are graded 2 and must hold every evidence string,
    `helps` documents are graded 1); {_id, text, lang, unanswerable: true} goes to unanswerable.jsonl.
    Raises ValueError when an evidence string is not in its document or an id is unknown.
    """
    out_dir = Path(out_dir)
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {d["_id"]: d for d in corpus}
    if len(docs) != len(corpus):
        raise ValueError("duplicate corpus ids")
    queries: list[dict[str, Any]] = []
    unanswerable: list[dict[str, Any]] = []
    qrels: dict[str, list[tuple[str, str, int]]] = {"dev": [], "test": []}
    seen: set[str] = set()
    for q in questions:
        qid = str(q["_id"])
        if qid in seen:
            raise ValueError(f"duplicate question id {qid}")
        seen.add(qid)
        if q.get("unanswerable"):
            unanswerable.append({"_id": qid, "text": q["text"], "lang": q["lang"], "unanswerable": True})
            continue
        queries.append({k: q[k] for k in ("_id", "text", "lang", "evidence", "answer")})
        qrels[split_of(qid)].extend((qid, doc, grade) for doc, grade in judgements(q, docs))
    _jsonl(out_dir / "corpus.jsonl", corpus)
    _jsonl(out_dir / "queries.jsonl", queries)
    _jsonl(out_dir / "unanswerable.jsonl", unanswerable)
    for name, rows in qrels.items():
        with (out_dir / "qrels" / f"{name}.tsv").open("w", encoding="utf-8", newline="\n") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid, doc, score in rows:
                f.write(f"{qid}\t{doc}\t{score}\n")
    return {
        "docs": len(corpus),
        "queries": len(queries),
        "unanswerable": len(unanswerable),
        "dev": len({r[0] for r in qrels["dev"]}),
        "test": len({r[0] for r in qrels["test"]}),
    }


# ---------------------------------------------------------------- scikit-learn text


def sklearn_root(source: Path | None = None) -> Path:
    """The sklearn/ package folder: `source`, or the installed one (found, not imported)."""
    if source is not None:
        return Path(source)
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "scikit-learn is not installed; pip install scikit-learn or pass --source DIR"
        )
    return Path(next(iter(spec.submodule_search_locations)))


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
            spans = pack([(s, e) for _, s, e in units], doc)
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
        spans = pack(_paragraph_spans(text, 0, len(text)), text)
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


def build(
    out_dir: Path | str = DEFAULT_OUT, source: Path | None = None, questions: Path | None = None
) -> dict[str, int]:
    """Regenerate corpus.jsonl, queries.jsonl, qrels and unanswerable.jsonl in `out_dir`."""
    out_dir = Path(out_dir)
    qpath = questions or (out_dir / "questions.jsonl")
    if not qpath.exists():
        qpath = DEFAULT_OUT / "questions.jsonl"
    return write_set(out_dir, build_corpus(source), read_jsonl(qpath))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT))
    ap.add_argument("--source", default=None, help="an unpacked sklearn/ folder (default: the installed one)")
    a = ap.parse_args()
    print(build(Path(a.out_dir), Path(a.source) if a.source else None))


if __name__ == "__main__":
    main()
