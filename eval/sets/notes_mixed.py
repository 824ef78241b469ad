"""Build data/eval/notes-mixed: Chinese LLM study notes full of English terms, queried
mostly in English.

The corpus is the five notes in `source/` (copied from shared/corpora/llm-notes-zh), cut at
section boundaries into documents `NOTE-STEM/NN`, each a verbatim slice of its note:

1. a section starts at a heading line: Markdown (`# ...`), a Chinese numbered heading
   (`一、...`), or a bracketed title (`[Transformer] 手书动画`), the three styles the notes use;
2. a section shorter than MIN_CHARS (a heading over one line, an image-only section) is
   merged into the one after it, so no document is a bare heading;
3. a section longer than MAX_CHARS is packed into blocks of paragraphs (blank-line
   separated; lines where a note has no blank lines), a block closing once it reaches
   TARGET_CHARS or when the next paragraph would push it past MAX_CHARS.

The questions are hand-written in `questions.jsonl` beside the built files (never tuned
against a retriever). `build()` checks every evidence string is a verbatim substring of
a document the question names, then writes `queries.jsonl`, `qrels/{dev,test}.tsv` and
`unanswerable.jsonl`.

    python -m eval.sets.notes_mixed [OUT_DIR] [--source DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eval.sets.common import read_jsonl, write_set

MIN_CHARS = 300
TARGET_CHARS = 1000
MAX_CHARS = 1500
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "eval" / "notes-mixed"

# Heading styles found in the notes. Numbered and bracketed ones must be short lines, so a
# sentence that happens to start with "一、" or "[" is not taken for a heading; "[1] 给定"
# (a step of a worked example) is excluded by refusing a digit after the bracket.
_HEADING = re.compile(
    r"^(#{1,6}\s+\S.*|[一二三四五六七八九十]+、\S.{0,38}|\[[^\]\d][^\]]{1,60}\][^\n]{0,20})\s*$"
)


def _line_spans(text: str) -> list[tuple[int, int, str]]:
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        out.append((pos, pos + len(line), line.rstrip("\n")))
        pos += len(line)
    return out


def _sections(text: str) -> list[tuple[int, int]]:
    """(start, end) of each section: from one heading line to the next."""
    starts = [0] + [a for a, _, line in _line_spans(text) if a > 0 and _HEADING.match(line.strip())]
    return [(a, b) for a, b in zip(starts, starts[1:] + [len(text)], strict=True) if text[a:b].strip()]


def _merge_small(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge each section under MIN_CHARS into the next (the last one into the one before)."""
    out: list[tuple[int, int]] = []
    carry: int | None = None
    for a, b in spans:
        a = carry if carry is not None else a
        carry = None
        if len(text[a:b].strip()) < MIN_CHARS:
            carry = a
            continue
        out.append((a, b))
    if carry is not None:
        if out:
            out[-1] = (out[-1][0], len(text))
        else:
            out.append((carry, len(text)))
    return out


def _paragraphs(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Blank-line separated paragraphs of text[a:b]; its lines when it has no blank line."""
    lines = [(x, y, s) for x, y, s in _line_spans(text) if a <= x < b]
    has_blank = any(not s.strip() for _, _, s in lines)
    paras: list[tuple[int, int]] = []
    cur: int | None = None
    for x, y, s in lines:
        if has_blank and not s.strip():
            if cur is not None:
                paras.append((cur, x))
                cur = None
            continue
        if not has_blank:
            paras.append((x, y))
        elif cur is None:
            cur = x
    if cur is not None:
        paras.append((cur, b))
    return paras


def _pack(text: str, a: int, b: int) -> list[tuple[int, int]]:
    if len(text[a:b].strip()) <= MAX_CHARS:
        return [(a, b)]
    blocks: list[tuple[int, int]] = []
    start: int | None = None
    end = a
    for x, y in _paragraphs(text, a, b):
        if start is not None:
            size = len(text[start:end].strip())
            if size >= TARGET_CHARS or len(text[start:y].strip()) > MAX_CHARS:
                blocks.append((start, end))
                start = None
        if start is None:
            start = x
        end = y
    if start is not None:
        # A short tail joins the block before, so the last document is not a scrap.
        if blocks and len(text[start:b].strip()) < MIN_CHARS:
            blocks[-1] = (blocks[-1][0], b)
        else:
            blocks.append((start, b))
    return blocks


def split_note(text: str) -> list[str]:
    """The documents of one note, in order; each a verbatim (stripped) slice of `text`."""
    docs = []
    for a, b in _merge_small(text, _sections(text)):
        for x, y in _pack(text, a, b):
            piece = text[x:y].strip()
            if piece:
                docs.append(piece)
    return docs


def build_corpus(source_dir: Path) -> list[dict[str, str]]:
    corpus = []
    for path in sorted(Path(source_dir).glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for n, piece in enumerate(split_note(text), 1):
            corpus.append({"_id": f"{path.stem}/{n:02d}", "title": "", "text": piece})
    if not corpus:
        raise ValueError(f"no .txt notes in {source_dir}")
    return corpus


def judge(question: Mapping[str, Any], docs: Mapping[str, str]) -> list[tuple[str, int]]:
    """Grades of one answerable question: 2 for the documents named in `docs` (or `doc`) and
    any other that holds an evidence string verbatim (it answers too, e.g. a note's summary
    paragraph), 1 for those named in `helps`. Every evidence string must be in a named
    document and every named document must hold one, so a typo cannot slip through."""
    qid = str(question["_id"])
    named = [str(d) for d in (question.get("docs") or [question.get("doc")]) if d]
    evidence = [str(e) for e in question.get("evidence") or []]
    if not named or not evidence:
        raise ValueError(f"{qid}: an answerable question needs `docs` and `evidence`")
    for d in named + [str(h) for h in question.get("helps") or []]:
        if d not in docs:
            raise ValueError(f"{qid}: document {d!r} is not in the corpus")
    for ev in evidence:
        if not 8 <= len(ev) <= 40:
            raise ValueError(f"{qid}: evidence {ev!r} is {len(ev)} characters, not 8-40")
        if not any(ev in docs[d] for d in named):
            raise ValueError(f"{qid}: evidence {ev!r} is in none of {named}")
    for d in named:
        if not any(ev in docs[d] for ev in evidence):
            raise ValueError(f"{qid}: {d} holds none of the evidence strings")
    grades = {d: 2 for d in named}
    for other, text in docs.items():
        if any(ev in text for ev in evidence):
            grades[other] = 2
    for h in question.get("helps") or []:
        grades.setdefault(str(h), 1)
    return list(grades.items())


def build(source_dir: Path | str | None = None, out_dir: Path | str = DEFAULT_OUT) -> dict[str, int]:
    """Rebuild corpus.jsonl, queries.jsonl, qrels/ and unanswerable.jsonl in `out_dir` from
    the notes in `source_dir` (default: out_dir/source) and out_dir/questions.jsonl."""
    out = Path(out_dir)
    src = Path(source_dir) if source_dir else out / "source"
    qpath = out / "questions.jsonl"
    questions = read_jsonl(qpath) if qpath.exists() else []
    return write_set(out, build_corpus(src), questions, judge=judge, langs=("en", "zh"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.sets.notes_mixed", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--source", type=Path, default=None, help="folder of .txt notes (default OUT_DIR/source)")
    args = ap.parse_args(argv)
    try:
        counts = build(args.source, args.out_dir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
