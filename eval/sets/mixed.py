"""Build a mixed-folder set: two labelled BEIR sets in one corpus, every id prefixed with its
set's name ("sci-en:descr/iris/0", "zh-prose:zh-001"), queries, unanswerable questions and dev /
test qrels merged (`python -m eval.answers OUT` reads it too).

A folder of English documents beside Chinese ones is a case of its own (README, "Mixed
folders"): the corpus as a whole is mostly one script, and questions in either script must
still find the other half. sci-en + zh-prose (the default) is 3,002 passages, 28% CJK: English
questions of the scikit-learn half, Chinese and English questions of the novel, each judged as
in its own set. Derived, so not shipped: build it where you evaluate.

    python -m eval.sets.mixed OUT_DIR [SET ...]    # default: data/eval/sci-en data/eval/zh-prose
    rag eval OUT_DIR --split dev
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "data" / "eval"
DEFAULT_SETS = (EVAL / "sci-en", EVAL / "zh-prose")
SPLITS = ("dev", "test")


def build(out: Path, sets: tuple[Path, ...] = DEFAULT_SETS) -> dict[str, int]:
    """Write corpus.jsonl, queries.jsonl, unanswerable.jsonl and qrels/{dev,test}.tsv of the
    merged set into `out`; the number of passages, queries, unanswerable questions and
    judgements written."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    counts = {"passages": 0, "queries": 0, "unanswerable": 0, "judgements": 0}
    for name, key in (("corpus.jsonl", "passages"), ("queries.jsonl", "queries"),
                      ("unanswerable.jsonl", "unanswerable")):
        with open(out / name, "w", encoding="utf-8") as f:
            for src in sets:
                if not (src / name).exists():
                    continue
                for line in (src / name).read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        row = json.loads(line)
                        row["_id"] = f"{src.name}:{row['_id']}"
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                        counts[key] += 1
    for split in SPLITS:
        lines = ["query-id\tcorpus-id\tscore"]
        for src in sets:
            path = src / "qrels" / f"{split}.tsv"
            if not path.exists():
                continue
            for row in path.read_text(encoding="utf-8").splitlines()[1:]:
                if row.strip():
                    q, doc, score = row.split("\t")
                    lines.append(f"{src.name}:{q}\t{src.name}:{doc}\t{score}")
        (out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts["judgements"] += len(lines) - 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.sets.mixed", description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("sets", nargs="*", type=Path, help="BEIR folders (default: sci-en and zh-prose)")
    args = ap.parse_args(argv)
    counts = build(args.out, tuple(args.sets) or DEFAULT_SETS)
    print(", ".join(f"{v} {k}" for k, v in counts.items()), "->", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
