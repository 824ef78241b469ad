"""Labelled retrieval data we build ourselves, in BEIR format, and a small harness that
indexes such a set and measures document-level nDCG@10 of pipeline variants.

Builders (each deterministic, seeded):
- `docstrings(packages)`: query = a function's or class's summary line, relevant
  document = the rest of its docstring plus its signature (parsed with `ast`, nothing
  imported);
- `readmes(site_packages)`: query = an installed distribution's one-line summary,
  relevant document = its long description (README), which chunks into several pieces;
- `zh_notes(folder)`: inverse cloze over Chinese notes: query = one line of a passage,
  relevant document = the passage without that line.

BEIR format: `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id",
"text"}), `qrels/<split>.tsv` (query-id, corpus-id, score, with a header line).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.lang import cjk_count

log = logging.getLogger(__name__)


@dataclass
class Beir:
    corpus: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (title, text)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # query id -> {doc id: grade}

    def subset(self, qids: Iterable[str]) -> Beir:
        qs = [q for q in qids if q in self.qrels]
        return Beir(self.corpus, {q: self.queries[q] for q in qs}, {q: self.qrels[q] for q in qs})


def load_beir(path: Path, split: str | None = None) -> Beir:
    """Read a BEIR folder; all qrels files are merged unless `split` names one."""
    from core.errors import ConfigError

    path = Path(path)
    need = [path / "corpus.jsonl", path / "queries.jsonl", path / "qrels"]
    for p in need:
        if not p.exists():
            raise ConfigError(
                f"{path} is not a BEIR folder: {p.name} is missing (need corpus.jsonl, "
                "queries.jsonl and qrels/*.tsv)."
            )
    data = Beir()
    with open(path / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                data.corpus[str(d["_id"])] = (str(d.get("title") or ""), str(d.get("text") or ""))
    with open(path / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                data.queries[str(d["_id"])] = str(d["text"])
    files = [path / "qrels" / f"{split}.tsv"] if split else sorted((path / "qrels").glob("*.tsv"))
    for qf in files:
        for i, line in enumerate(qf.read_text(encoding="utf-8").splitlines()):
            parts = line.split("\t")
            if len(parts) < 3 or (i == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue
            grade = int(parts[2])
            if grade > 0 and parts[0] in data.queries and parts[1] in data.corpus:
                data.qrels.setdefault(parts[0], {})[parts[1]] = grade
    data.queries = {q: t for q, t in data.queries.items() if q in data.qrels}
    return data


def write_beir(data: Beir, path: Path, split: str = "test") -> Path:
    path = Path(path)
    (path / "qrels").mkdir(parents=True, exist_ok=True)
    with open(path / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i, (title, text) in data.corpus.items():
            f.write(json.dumps({"_id": i, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with open(path / "queries.jsonl", "w", encoding="utf-8") as f:
        for q, t in data.queries.items():
            f.write(json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n")
    with open(path / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, rel in data.qrels.items():
            for d, g in rel.items():
                f.write(f"{q}\t{d}\t{g}\n")
    return path


# --- builders -------------------------------------------------------------------------------
def _py_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "tests" not in p.parts and "test" not in p.parts)


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}"
    try:
        return f"{node.name}({ast.unparse(node.args)})"
    except Exception:  # pragma: no cover - odd syntax
        return node.name


def docstrings(
    roots: list[Path], max_docs: int = 3000, max_queries: int = 400, seed: int = 0, prefix: str = ""
) -> Beir:
    """Summary line -> rest of the docstring + signature, from the `.py` files under `roots`."""
    items: list[tuple[str, str, str]] = []  # (summary, title, body)
    seen: set[str] = set()
    for root in roots:
        for f in _py_files(root):
            try:
                tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    continue
                doc = ast.get_docstring(node)
                if not doc or node.name.startswith("_"):
                    continue
                head, _, body = doc.strip().partition("\n\n")
                summary = " ".join(head.split())
                body = body.strip()
                if not (25 <= len(summary) <= 200) or len(body) < 150 or summary in seen:
                    continue
                if summary.lower() in body.lower():
                    continue
                seen.add(summary)
                items.append((summary, _signature(node), body[:4000]))
    rng = random.Random(seed)
    rng.shuffle(items)
    items = items[:max_docs]
    data = Beir()
    for n, (summary, title, body) in enumerate(items):
        did = f"{prefix}d{n}"
        data.corpus[did] = (title, body)
        if n < max_queries:
            data.queries[f"{prefix}q{n}"] = summary
            data.qrels[f"{prefix}q{n}"] = {did: 1}
    return data


def _metadata_fields(text: str) -> tuple[str, str, str]:
    head, _, body = text.partition("\n\n")
    name = summary = ""
    for line in head.splitlines():
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Summary:"):
            summary = line[8:].strip()
    return name, summary, body.strip()


def readmes(site_packages: Path, max_docs: int = 1500, seed: int = 0, prefix: str = "r") -> Beir:
    """Installed distributions: summary line -> long description."""
    items: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for meta in sorted(site_packages.glob("*.dist-info/METADATA")):
        name, summary, body = _metadata_fields(meta.read_text(encoding="utf-8", errors="replace"))
        if not name or name.lower() in seen or not (20 <= len(summary) <= 200) or len(body) < 300:
            continue
        seen.add(name.lower())
        items.append((summary, name, body[:12000]))
    random.Random(seed).shuffle(items)
    data = Beir()
    for n, (summary, _name, body) in enumerate(items[:max_docs]):
        # The title (the package name) is left out: it would give the answer away.
        data.corpus[f"{prefix}d{n}"] = ("", body)
        data.queries[f"{prefix}q{n}"] = summary
        data.qrels[f"{prefix}q{n}"] = {f"{prefix}d{n}": 1}
    return data


def zh_notes(folder: Path, seed: int = 0, prefix: str = "z", min_cjk: int = 6) -> Beir:
    """Inverse cloze over Chinese notes: passages of ~6 lines; one line (with at least
    `min_cjk` Chinese characters) becomes the query and leaves the passage."""
    rng = random.Random(seed)
    data = Beir()
    n = 0
    for f in sorted(folder.iterdir()):
        if f.suffix not in (".txt", ".md"):
            continue
        lines = [
            ln.strip() for ln in f.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
        ]
        for start in range(0, len(lines), 6):
            block = lines[start : start + 6]
            if len(block) < 3:
                continue
            cands = [i for i, ln in enumerate(block) if cjk_count(ln) >= min_cjk and len(ln) <= 80]
            did = f"{prefix}d{n}"
            if cands:
                i = rng.choice(cands)
                data.queries[f"{prefix}q{n}"] = block[i].lstrip("-*# ")
                data.qrels[f"{prefix}q{n}"] = {did: 1}
                block = block[:i] + block[i + 1 :]
            data.corpus[did] = ("", "\n".join(block))
            n += 1
    return data


def merge(*sets: Beir) -> Beir:
    out = Beir()
    for s in sets:
        out.corpus.update(s.corpus)
        out.queries.update(s.queries)
        out.qrels.update(s.qrels)
    return out


# --- indexing and measuring ----------------------------------------------------------------
def doc_file_name(doc_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", doc_id) + ".txt"


def index_corpus(data: Beir, folder: Path, settings: object) -> dict[str, str]:
    """Write each document as a text file (title on the first line) and ingest the folder.
    Returns source path -> document id."""
    from core.settings import Settings
    from ingest.pipeline import ingest

    assert isinstance(settings, Settings)
    folder.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, str] = {}
    for did, (title, text) in data.corpus.items():
        p = folder / doc_file_name(did)
        body = f"{title}\n\n{text}" if title else text
        if not p.exists() or p.read_text(encoding="utf-8") != body:
            p.write_text(body, encoding="utf-8")
        by_source[str(p.resolve())] = did
    ingest([folder], settings)
    return by_source


def ndcg_at(ranked_docs: list[str], rel: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked_docs[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def doc_ranking(sources: Iterable[str], by_source: dict[str, str]) -> list[str]:
    """Chunk hits -> document ids, each document at its best chunk's place."""
    out: list[str] = []
    seen: set[str] = set()
    for s in sources:
        d = by_source.get(s)
        if d is not None and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def measure(data: Beir, rank: Callable[[str], list[str]], k: int = 10) -> float:
    """Mean nDCG@k of `rank(query text) -> document ids` over the set's queries."""
    scores = [ndcg_at(rank(data.queries[q]), data.qrels[q], k) for q in data.qrels]
    return sum(scores) / len(scores) if scores else 0.0
