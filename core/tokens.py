"""The one tokeniser for keyword search and every term-level signal (BM25, coverage, the
extractive composer, the support check, dictionary keys): English lower-cased, stop words
dropped, Snowball-stemmed; CJK runs segmented by jieba in search mode; mixed within one text.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from core.lang import CJK_RANGES

# /2: a Latin or digit run no longer swallows the CJK text that follows it
# ("Transformer架构中" was one token); an index written by /1 is rebuilt on the next ingest.
TOKENIZER_VERSION = "en-snowball+jieba-search/2"

# A CJK run, or a run of letters and digits that are not CJK: `[^\W_]` alone also matches
# CJK characters, so "2022年北京" would be one token.
_TOKEN = re.compile(rf"[{CJK_RANGES}]+|[^\W_{CJK_RANGES}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"^[{CJK_RANGES}]+$")

_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves""".split()
)
_ZH_STOP = frozenset(
    "的 了 是 在 和 与 及 或 也 就 都 而 但 这 那 有 个 之 其 为 以 于 上 下 中 把 被 让 等 吗 呢 啊 吧"
    .split()
)


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """Tokens for BM25: stemmed English words without stop words, segmented CJK words."""
    out: list[str] = []
    latin: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if _CJK_RUN.match(tok):
            for w in _jieba().cut_for_search(tok):
                if w.strip() and w not in _ZH_STOP:
                    out.append(w)
        else:
            low = tok.lower()
            if low not in _STOP:
                latin.append(low)
                out.append(low)
    if latin:
        stems = iter(_stemmer().stemWords(latin))
        out = [next(stems) if not _CJK_RUN.match(t) else t for t in out]
    return out
