"""Which script a text is written in: the one definition of "CJK" that tokenisation,
chunking, reranking and generation share (mixed Chinese-English text is the normal case)."""

from __future__ import annotations

import functools
import re

# CJK Unified Ideographs (+ extension A, compatibility), Japanese kana, Hangul syllables.
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK = re.compile(f"[{CJK_RANGES}]")


def is_cjk(ch: str) -> bool:
    """True for one CJK character (ideograph, kana or Hangul)."""
    return bool(_CJK.match(ch))


def cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


@functools.lru_cache(maxsize=1 << 14)
def cjk_share(text: str) -> float:
    """Share of CJK characters among the letters and digits of `text` (0 for English,
    1 for pure Chinese; "Transformer架构" is 2/13). Cached: reranking asks it of the same
    candidate texts query after query."""
    chars = sum(map(str.isalnum, text))
    return cjk_count(text) / chars if chars else 0.0


# For token estimates CJK punctuation and full-width forms count as CJK too: the chunker's
# sizes (and so every chunk id) depend on this exact set.
_WIDE = re.compile(
    "[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u3040-\u30ff\uac00-\ud7af]"
)


def is_wide(ch: str) -> bool:
    """True for a character `approx_tokens` counts as one token (CJK, CJK punctuation)."""
    return bool(_WIDE.match(ch))


def approx_tokens(s: str, chars_per_token: int = 4) -> int:
    """Approximate model tokens: one per CJK character, one per `chars_per_token` other
    characters (rounded up). The default sizes chunks, so every chunk id depends on it; a
    backend without a tokenizer at hand counts conservatively with 3 (core/llm.py)."""
    wide = len(_WIDE.findall(s))
    return wide + (len(s) - wide + chars_per_token - 1) // chars_per_token


# Text with fewer Latin letters than this share of its letters (Latin + CJK) is "CJK-only": the
# English MiniLM reads next to nothing of it (zh-prose, a classical novel, has at most 0.032 per
# document; the Chinese notes, full of English terms, at least 0.072). Digits do not count: news
# text is full of years and figures that say nothing about its language.
CJK_ONLY_LATIN_MAX = 0.05
_LATIN = re.compile("[A-Za-z]")


def cjk_only(text: str) -> bool:
    """Whether `text` is CJK with (almost) no English in it (see CJK_ONLY_LATIN_MAX)."""
    cjk = cjk_count(text)
    if not cjk:
        return False
    latin = len(_LATIN.findall(text))
    return latin < CJK_ONLY_LATIN_MAX * (latin + cjk)


def token_prefix(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` within `max_tokens` approximate tokens (`approx_tokens`'
    count: one per CJK character, one per 4 other characters)."""
    if max_tokens <= 0 or len(text) <= max_tokens:
        return text
    budget = max_tokens * 4  # in quarter tokens
    for i, ch in enumerate(text):
        budget -= 4 if is_wide(ch) else 1
        if budget < 0:
            return text[:i]
    return text
