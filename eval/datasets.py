"""Labelled retrieval data: BEIR folders (`corpus.jsonl`, `queries.jsonl`, `qrels/*.tsv`),
folder corpora (document id = file name without extension), and validation that turns
bad input into counted, reported skips instead of a crash.

A mistyped path is the one thing that stops a run (there is nothing valid to continue
with); everything else - malformed lines, qrels naming unknown ids, queries without
judgements - is skipped, counted in `Issues` and shown in the report.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
Level = Literal["doc", "chunk"]

# Each kind of skip, as the report names it.
SKIP_LABELS = {
    "corpus_bad_lines": "corpus lines that are not valid JSON or lack `_id`",
    "corpus_duplicate_ids": "corpus documents with an id seen before",
    "corpus_duplicate_stems": "files whose name (without extension) another file already uses",
    "queries_bad_lines": "query lines that are not valid JSON or lack `_id`/`text`",
    "queries_bad_evidence": "query `evidence` fields that are not a list of non-empty strings (ignored)",
    "qrels_bad_lines": "qrels lines that are not `query-id<TAB>corpus-id<TAB>score`",
    "qrels_unknown_queries": "qrels lines naming a query id not in the queries file",
    "qrels_unknown_docs": "qrels lines naming an id that is neither a document nor an indexed chunk",
    "queries_without_judgements": "queries with no relevant (score > 0) judgement",
    "configs_unknown": "configurations asked for that are not in the registry",
    "configs_unavailable": "configurations whose modules are not installed yet",
    "configs_not_default": "configurations that call the LLM, run only when named",
}


class DatasetError(ConfigError):
    """A dataset path or file that cannot be used at all."""


@dataclass
class Issues:
    """Counts of what was skipped and a few example messages per kind."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, message: str, n: int = 1) -> None:
        self.counts[kind] += n
        ex = self.examples.setdefault(kind, [])
        if len(ex) < 3:  # the count says how many; a few examples say which
            ex.append(message)
            log.warning("%s", message)

    def merge(self, other: Issues) -> None:
        for k, n in other.counts.items():
            self.counts[k] += n
        for k, ex in other.examples.items():
            self.examples.setdefault(k, []).extend(ex[: max(0, 3 - len(self.examples.get(k, [])))])

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"count": n, "what": SKIP_LABELS.get(k, k), "examples": self.examples.get(k, [])}
            for k, n in sorted(self.counts.items())
        }


@dataclass
class Corpus:
    """Documents to ingest: a folder of files, or BEIR documents (id -> (title, text))."""

    kind: Literal["folder", "beir", "index"]
    path: Path
    files: dict[str, Path] = field(default_factory=dict)  # folder: doc id -> file
    docs: dict[str, tuple[str, str]] = field(default_factory=dict)  # beir: doc id -> (title, text)

    @property
    def ids(self) -> set[str]:
        return set(self.files) if self.kind == "folder" else set(self.docs)

    def digest(self) -> str:
        """Content hash: unchanged corpus -> same digest -> its index is reused."""
        h = hashlib.sha256(self.kind.encode())
        if self.kind == "folder":
            for doc_id in sorted(self.files):
                h.update(doc_id.encode() + b"\0" + hashlib.sha256(self.files[doc_id].read_bytes()).digest())
        elif self.kind == "beir":
            for doc_id in sorted(self.docs):
                title, text = self.docs[doc_id]
                h.update(f"{doc_id}\0{title}\0{text}\0".encode("utf-8", "surrogatepass"))
        else:
            h.update(str(self.path).encode())
        return h.hexdigest()[:16]


@dataclass
class Dataset:
    name: str
    corpus: Corpus
    queries: dict[str, str]
    qrels: Qrels
    issues: Issues = field(default_factory=Issues)
    level: Level = "doc"  # "chunk" when qrels name chunk ids of the index (synthetic sets)
    # query id -> strings a passage that answers it contains (queries.jsonl `evidence`);
    # only queries that carry evidence get passage-level metrics.
    evidence: dict[str, list[str]] = field(default_factory=dict)
    split: str = ""  # the qrels file chosen by --split ("dev", "test"), "" when named directly


def _missing(path: Path, what: str, fix: str) -> DatasetError:
    near = ""
    parent = path.parent if str(path.parent) else Path(".")
    if parent.is_dir():
        names = [p.name for p in parent.iterdir()]
        close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
        if close:
            near = f" Did you mean {parent / close[0]}?"
    return DatasetError(f"The {what} {path} does not exist.{near} {fix}")


def check_path(path: Path, what: str, fix: str = "Check the path.") -> Path:
    if not path.exists():
        raise _missing(path, what, fix)
    return path


def _jsonl(path: Path) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError:
                out.append((n, None))
    return out


def load_beir_corpus(path: Path, issues: Issues) -> Corpus:
    check_path(path, "corpus file", "Give a BEIR corpus.jsonl or a folder of documents with --corpus.")
    docs: dict[str, tuple[str, str]] = {}
    for n, obj in _jsonl(path):
        if not isinstance(obj, dict) or "_id" not in obj:
            issues.note("corpus_bad_lines", f"{path.name}:{n}: not a JSON object with `_id`; skipped")
            continue
        doc_id = str(obj["_id"])
        if doc_id in docs:
            issues.note(
                "corpus_duplicate_ids", f"{path.name}:{n}: document id {doc_id!r} repeated; kept the first"
            )
            continue
        docs[doc_id] = (str(obj.get("title") or ""), str(obj.get("text") or ""))
    if not docs:
        raise DatasetError(
            f'The corpus file {path} holds no documents (lines like {{"_id": ..., "text": ...}}).'
        )
    return Corpus("beir", path.resolve(), docs=docs)


def load_folder_corpus(path: Path, extensions: list[str], issues: Issues) -> Corpus:
    check_path(path, "corpus folder", "Give a BEIR corpus.jsonl or a folder of documents with --corpus.")
    exts = {e.lower() for e in extensions}
    files: dict[str, Path] = {}
    for p in sorted(path.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in exts or any(s.startswith(".") for s in p.parts[-2:]):
            continue
        if p.stem in files:
            issues.note(
                "corpus_duplicate_stems", f"{p}: id {p.stem!r} already names {files[p.stem]}; skipped"
            )
            continue
        files[p.stem] = p.resolve()
    if not files:
        raise DatasetError(
            f"The corpus folder {path} has no files with a supported extension ({', '.join(exts)})."
        )
    return Corpus("folder", path.resolve(), files=files)


def _evidence(value: object) -> list[str] | None:
    """A query's evidence strings, or None when the field is malformed. A bare string is
    taken as a list of one; an empty or blank string is refused, because after whitespace
    normalisation it would be found in every passage."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        return None
    if not all(isinstance(e, str) and e.strip() for e in items):
        return None
    return [str(e) for e in items]


def load_queries(path: Path, issues: Issues, evidence: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Query id -> text; when `evidence` is given, it is filled with the queries' evidence."""
    check_path(path, "queries file", "Give a BEIR queries.jsonl with --queries.")
    queries: dict[str, str] = {}
    for n, obj in _jsonl(path):
        if not isinstance(obj, dict) or "_id" not in obj or not str(obj.get("text") or "").strip():
            issues.note(
                "queries_bad_lines", f"{path.name}:{n}: not a JSON object with `_id` and `text`; skipped"
            )
            continue
        qid = str(obj["_id"])
        queries[qid] = str(obj["text"]).strip()
        if evidence is not None and obj.get("evidence") is not None:
            ev = _evidence(obj["evidence"])
            if ev is None:  # the query is still scored at document level
                issues.note(
                    "queries_bad_evidence",
                    f"{path.name}:{n}: `evidence` of query {qid!r} is not a list of non-empty strings; "
                    "ignored",
                )
            else:
                evidence[qid] = ev
    if not queries:
        raise DatasetError(
            f'The queries file {path} holds no queries (lines like {{"_id": ..., "text": ...}}).'
        )
    return queries


def _qrels_file(path: Path, split: str | None = None) -> Path:
    check_path(path, "qrels file", "Give a BEIR qrels .tsv (or a qrels/ folder) with --qrels.")
    if path.is_file():
        return path
    if split:  # an explicit split must exist: silently scoring another one would mislead
        return check_path(
            path / f"{split}.tsv",
            "qrels file",
            f"The splits here are: {', '.join(p.stem for p in sorted(path.glob('*.tsv'))) or 'none'}.",
        )
    tsvs = sorted(path.glob("*.tsv"))
    for pick in ("test.tsv", "dev.tsv"):
        if path / pick in tsvs:
            return path / pick
    if len(tsvs) == 1:
        return tsvs[0]
    raise DatasetError(
        f"The qrels folder {path} holds {len(tsvs)} .tsv files and no test.tsv; name one with --qrels FILE."
    )


def load_qrels(path: Path, issues: Issues, split: str | None = None) -> Qrels:
    path = _qrels_file(path, split)
    qrels: Qrels = {}
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) == 4:  # TREC style: qid 0 docid rel
                row = [row[0], row[2], row[3]]
            if len(row) == 1:  # space separated
                row = row[0].split()
            try:
                qid, did, score = row[0].strip(), row[1].strip(), int(float(row[2]))
            except (IndexError, ValueError):
                if n == 1:  # the header line
                    continue
                issues.note(
                    "qrels_bad_lines",
                    f"{path.name}:{n}: {chr(9).join(row)!r} is not `query-id corpus-id score`; skipped",
                )
                continue
            qrels.setdefault(qid, {})[did] = score
    return qrels


def resolve_beir_dir(path: Path) -> tuple[Path, Path, Path]:
    """corpus.jsonl, queries.jsonl and the qrels file inside a BEIR dataset folder. A folder
    with `docs/` and no corpus.jsonl is judged over those files as they are (document id = file
    name without extension), so a set of web pages or PDFs is read by the loaders a user's
    documents go through, not as text extracted once."""
    check_path(
        path, "dataset folder", "Give a folder holding corpus.jsonl, queries.jsonl and qrels/test.tsv."
    )
    qrels = path / "qrels" if (path / "qrels").is_dir() else path / "qrels.tsv"
    corpus = path / "corpus.jsonl"
    if not corpus.exists() and (path / "docs").is_dir():
        corpus = path / "docs"
    return corpus, path / "queries.jsonl", qrels


def validate(ds: Dataset, known_chunks: set[str] | None = None) -> Dataset:
    """Drop judgements of unknown queries/ids and queries left with nothing to find.

    Ids that are not documents but are chunk ids of the index (`known_chunks`) make the
    dataset chunk-level: those qrels are scored against chunk hits directly."""
    doc_ids = ds.corpus.ids
    chunks = known_chunks or set()
    n_doc = sum(1 for q in ds.qrels.values() for d in q if d in doc_ids)
    n_chunk = sum(1 for q in ds.qrels.values() for d in q if d in chunks and d not in doc_ids)
    if ds.corpus.kind == "index" or n_chunk > n_doc:
        ds.level, valid = "chunk", chunks
    else:
        ds.level, valid = "doc", doc_ids
    clean: Qrels = {}
    for qid, judged in ds.qrels.items():
        if qid not in ds.queries:
            ds.issues.note(
                "qrels_unknown_queries",
                f"qrels name query {qid!r}, which the queries file lacks; {len(judged)} judgement(s) skipped",
                len(judged),
            )
            continue
        for did, score in judged.items():
            if did not in valid:
                ds.issues.note(
                    "qrels_unknown_docs",
                    f"qrels for query {qid!r} name {did!r}, which is not in the corpus; judgement skipped",
                )
                continue
            clean.setdefault(qid, {})[did] = score
    for qid in list(ds.queries):
        if not any(s > 0 for s in clean.get(qid, {}).values()):
            ds.issues.note("queries_without_judgements", f"query {qid!r} has no relevant judgement; skipped")
            del ds.queries[qid]
            clean.pop(qid, None)
            ds.evidence.pop(qid, None)
    ds.qrels = clean
    return ds


def load_dataset(
    dataset: Path | None = None,
    corpus: Path | None = None,
    queries: Path | None = None,
    qrels: Path | None = None,
    extensions: list[str] | None = None,
    name: str | None = None,
    split: str | None = None,
) -> Dataset:
    """A BEIR folder (`dataset`), or its parts; explicit parts override the folder's.
    `split` picks `qrels/<split>.tsv` when the qrels are a folder (default: test.tsv)."""
    if dataset is not None:
        c, q, r = resolve_beir_dir(dataset)
        corpus, queries, qrels = corpus or c, queries or q, qrels or r
    if corpus is None or queries is None or qrels is None:
        raise DatasetError("Name a dataset folder, or all of --corpus, --queries and --qrels.")
    issues = Issues()
    if corpus.is_dir():
        corp = load_folder_corpus(corpus, extensions or [".md", ".txt", ".html", ".pdf", ".docx"], issues)
    else:
        corp = load_beir_corpus(corpus, issues)
    evidence: dict[str, list[str]] = {}
    ds = Dataset(
        name or (dataset.name if dataset else corpus.stem),
        corp,
        load_queries(queries, issues, evidence),
        load_qrels(qrels, issues, split),
        issues,
        evidence=evidence,
        split=split if split and qrels.is_dir() else "",
    )
    return ds


def save_beir(
    out: Path,
    docs: dict[str, tuple[str, str]],
    queries: dict[str, str],
    qrels: Qrels,
    meta: dict[str, object] | None = None,
) -> Path:
    """Write a BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv (and meta.json)."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in qrels.items():
            for did, score in judged.items():
                f.write(f"{qid}\t{did}\t{score}\n")
    if meta is not None:
        (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str))
    return out
