"""A bilingual lexicon mined from the corpus itself, for English questions over Chinese text.

Chinese technical writing glosses its terms in parentheses, both ways: "近似最近邻（ANN）",
"LoRA（低秩适配）". Those pairs are the corpus's own dictionary: an English question that says
"approximate nearest neighbour" or "ANN" can then also search "近似最近邻", which BM25 over the
Chinese text matches and an English-only encoder never would. No model, no download; the
lexicon is rebuilt with the keyword index (core/keyword.py) and lives beside it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.lang import CJK_RANGES, cjk_count
from core.tokens import cut

LEXICON_FILE = "lexicon.json"
_CJK = CJK_RANGES
_LATIN_TERM = r"[A-Za-z][A-Za-z0-9.\-/+&']*(?: [A-Za-z0-9][A-Za-z0-9.\-/+&']*){0,5}"
# 中文术语（English term）
_ZH_THEN_EN = re.compile(rf"([{_CJK}]{{2,24}})\s*[（(]\s*({_LATIN_TERM})\s*[)）]")
# English term（中文术语）
_EN_THEN_ZH = re.compile(rf"({_LATIN_TERM})\s*[（(]\s*([{_CJK}]{{2,12}})\s*[)）]")
MAX_ZH_CHARS = 6  # a gloss is the last words of the Chinese run before "(", up to this many characters
# Words that open a run without belonging to the term ("我们使用近似最近邻" -> "近似最近邻").
_FUNCTION_WORDS = frozenset(
    "的 了 是 和 与 及 或 将 把 对 用 使用 通过 如 如下 即 称为 叫做 我们 这 那 一个 一种 在 中 为 被".split()
)
GLOSSES_PER_TERM = 3


def _key(term: str) -> str:
    """An English term as looked up: lower case, single spaces, a plural -s dropped."""
    words = re.findall(r"[a-z0-9][a-z0-9.\-/+&']*", term.lower())
    if words and len(words[-1]) > 3 and words[-1].endswith("s") and not words[-1].endswith("ss"):
        words[-1] = words[-1][:-1]
    return " ".join(words)


def _zh_tail(run: str) -> str:
    """The term at the end of a Chinese run: its last jieba words within MAX_ZH_CHARS."""
    words = [w for w in cut(run) if w.strip()]
    tail: list[str] = []
    size = 0
    for w in reversed(words):
        if w in _FUNCTION_WORDS or size + len(w) > MAX_ZH_CHARS:
            break
        tail.insert(0, w)
        size += len(w)
    return "".join(tail)


def pairs(text: str) -> list[tuple[str, str]]:
    """(English key, Chinese term) glossing pairs in one text."""
    out: list[tuple[str, str]] = []
    for zh, en in _ZH_THEN_EN.findall(text):
        term, key = _zh_tail(zh), _key(en)
        if len(term) >= 2 and len(key) >= 2 and not key.isdigit():
            out.append((key, term))
    for en, zh in _EN_THEN_ZH.findall(text):
        key = _key(" ".join(en.split()[-4:]))
        if len(zh) >= 2 and len(key) >= 2 and not key.isdigit():
            out.append((key, zh))
    return out


@dataclass
class Lexicon:
    cjk_share: float = 0.0  # share of the corpus's letters and digits that are CJK (core.lang)
    # English key -> its Chinese terms, commonest first
    glosses: dict[str, list[str]] = field(default_factory=dict)

    @property
    def longest(self) -> int:
        return max((k.count(" ") + 1 for k in self.glosses), default=0)

    def lookup(self, text: str) -> list[tuple[str, list[str]]]:
        """The English terms of `text` that the lexicon knows, longest match first, each with
        its glosses; a word belongs to at most one matched term."""
        words = [_key(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9.\-/+&']*", text)]
        found: list[tuple[str, list[str]]] = []
        i = 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                key = " ".join(words[i : i + n])
                if key in self.glosses:
                    found.append((key, self.glosses[key]))
                    i += n
                    break
            else:
                i += 1
        return found

    def save(self, folder: Path) -> None:
        (folder / LEXICON_FILE).write_text(
            json.dumps({"cjk_share": self.cjk_share, "glosses": self.glosses}, ensure_ascii=False)
        )

    @classmethod
    def load(cls, folder: Path) -> Lexicon:
        try:
            raw = json.loads((folder / LEXICON_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return cls()
        glosses = {str(k): list(v) for k, v in raw.get("glosses", {}).items()}
        return cls(float(raw.get("cjk_share", 0.0)), glosses)


@dataclass
class TextFacts:
    """What one text adds to the lexicon; kept per record beside the keyword index so a
    rebuild recounts only the texts that changed."""

    cjk: int
    letters: int
    pairs: list[tuple[str, str]]


def facts(text: str) -> TextFacts:
    cjk = cjk_count(text)
    # Both patterns need two CJK characters and a bracket: an English text (most of an English
    # corpus) skips the regular expressions, 0.6 s of a 16 s ingest of 1,006 English chunks.
    glossed = cjk >= 2 and ("(" in text or "（" in text)
    return TextFacts(cjk, sum(1 for c in text if c.isalnum()), pairs(text) if glossed else [])


def combine(cjk: int, letters: int, found: Iterable[tuple[str, str]]) -> Lexicon:
    """The corpus's lexicon from its totals and every glossing pair found in it: the
    commonest glosses kept per term."""
    counts: dict[str, Counter[str]] = {}
    for key, term in found:
        counts.setdefault(key, Counter())[term] += 1
    glosses = {k: [t for t, _ in c.most_common(GLOSSES_PER_TERM)] for k, c in sorted(counts.items())}
    return Lexicon(round(cjk / letters, 4) if letters else 0.0, glosses)


def mine(texts: Iterable[str]) -> Lexicon:
    """The lexicon of `texts`."""
    fs = [facts(t) for t in texts]
    return combine(sum(f.cjk for f in fs), sum(f.letters for f in fs), (p for f in fs for p in f.pairs))
