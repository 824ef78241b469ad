"""Put back the spaces OCR drops between English words ("theinspectioninterval" ->
"the inspection interval", "degrees,so" -> "degrees, so").

A word that is not in the English word list (the Wikipedia unigram list that the
`wordninja` package ships, 126k words by frequency) is segmented by dynamic programming
over Zipf costs; the split is kept only when its pieces are common enough words (cost
per letter), so names and terms the list lacks ("Kubernetes", "sqlite") stay whole.
CJK text is left alone (it has no spaces to restore)."""

from __future__ import annotations

import gzip
import logging
import math
import re
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"\S+")
_LETTERS = re.compile(r"[A-Za-z]+")
# A comma, semicolon or colon glued between two words, or a sentence end glued to a
# capitalised word: "degrees,so", "shortened.The".
_PUNCT_GLUE = re.compile(
    r"(?<=[A-Za-z]{2})([,;:])(?=[A-Za-z])|(?:(?<=[a-z]{2})|(?<=\d))([.!?])(?=[A-Z][a-z])")
_DIGIT_WORD = re.compile(r"(?<=\d)([A-Za-z]{3,})$")
_KEEP_SINGLE = {"a", "i"}
_SKIP = re.compile(r"[/@_\\<>=#]|[a-z][A-Z]|www\.|\.(com|org|net|py|pdf)\b")


@lru_cache(maxsize=1)
def _costs() -> tuple[dict[str, float], int]:
    """Word -> cost (-log p under Zipf's law), and the longest word's length."""
    import wordninja  # noqa: F401  (ships the word list beside its module)

    path = Path(wordninja.__file__).parent / "wordninja" / "wordninja_words.txt.gz"
    with gzip.open(path) as f:
        words = f.read().decode().split()
    logn = math.log(len(words))
    costs: dict[str, float] = {}
    for i, w in enumerate(words):
        if len(w) == 1 and w not in _KEEP_SINGLE:
            continue  # stray letters make any unknown word "segmentable"
        if w.isalpha():
            costs.setdefault(w, math.log((i + 1) * logn))
    return costs, max(len(w) for w in costs)


# A split is kept when it costs at most this much per letter. Glued common words cost
# 1.2-2.0 per letter ("theinspectioninterval" 1.2, "gearboxseals" 2.0); terms the list
# lacks split only into rare pieces and cost more ("kubernetes" 3.5, "sqlite" 3.9).
MAX_COST_PER_LETTER = 2.05
# Short glue of very common words ("onfour" 2.2 per letter) is let through when its
# pieces average at most this cost (a top-600 word); "dataframe" (9.8) stays whole.
SHORT_GLUE = (2.3, 9.0)
# "mis"+"configured", "re"+"ingest": a prefix glued to a word is one word, not two.
_PREFIXES = {"re", "un", "mis", "non", "pre", "sub", "co", "de", "dis", "in", "im", "over", "under",
             "inter", "multi", "micro", "semi", "anti", "auto", "bi", "tri", "post", "out", "up"}


def segment(word: str) -> list[str]:
    """Split a run of letters into words if that is clearly the better reading."""
    costs, longest = _costs()
    low = word.lower()
    if len(word) < 4 or low in costs:
        return [word]
    n = len(low)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for i in range(1, n + 1):
        for k in range(max(0, i - longest), i):
            c = costs.get(low[k:i])
            if c is not None and best[k] + c < best[i]:
                best[i], back[i] = best[k] + c, k
    if best[n] == math.inf:
        return [word]
    out, i = [], n
    while i > 0:
        out.append(word[back[i]:i])
        i = back[i]
    out.reverse()
    per_letter, per_word = best[n] / n, best[n] / len(out)
    if per_letter > MAX_COST_PER_LETTER and not (per_letter <= SHORT_GLUE[0] and per_word <= SHORT_GLUE[1]):
        return [word]
    if len(out) == 2 and out[0].lower() in _PREFIXES:
        return [word]
    return out


def _fix_token(tok: str) -> str:
    if not tok.isascii() or _SKIP.search(tok):
        return tok  # CJK, URLs, paths, e-mail addresses, identifiers: leave as they are
    tok = _PUNCT_GLUE.sub(lambda m: (m.group(1) or m.group(2)) + " ", tok)
    tok = _DIGIT_WORD.sub(lambda m: (" " if m.group(1).lower() in _costs()[0] else "") + m.group(1), tok)
    return _LETTERS.sub(lambda m: " ".join(segment(m.group(0))), tok)


def restore_spaces(text: str) -> str:
    """Restore dropped spaces in every line of `text`; line breaks are kept."""
    return "\n".join(_TOKEN.sub(lambda m: _fix_token(m.group(0)), line) for line in text.split("\n"))
