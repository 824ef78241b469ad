"""Several short units in one LLM call (multi-representation, `ingest.represent_batch`): the
texts numbered in one prompt, the reply read back line by line by number.

Parsed defensively: a line counts for unit N only when it starts with N (`1:`, `2.`, `[3]`,
`Text 4 -`), lines under it continue it, and every summary or question is kept only when
its words occur in its own text at least as much as in any other text of the batch (a
model that numbers its questions instead of the texts, or swaps two texts, gives items that
fail this). A unit the reply leaves without a usable item is asked alone by the caller, so
no unit is lost to a malformed reply."""

from __future__ import annotations

import re

from core.keyword import tokenize
from ingest.llm_text import clean_summary, parse_questions

VERSION = "batch-1"
MIN_COVER = 0.3  # share of an item's terms that must occur in its own text

_NUM = re.compile(
    r"^\s*[*#>\-]*\s*(?:text|passage)?\s*(?:\[(\d{1,2})\]|\((\d{1,2})\)|(\d{1,2})\s*\**\s*[:.)\-–])"
    r"\s*\**\s*[:\-–]?\s*(.*)$", re.I
)


def messages(kind: str, texts: list[str], n: int) -> list[dict[str, str]]:
    body = "\n\n".join(f"Text {i}:\n{t}" for i, t in enumerate(texts, 1))
    if kind == "summary":
        ask = ('Summarise each text above in one sentence. Write one line per text, starting with its '
               'number, like "1: ...".')
    else:
        ask = (f"For each text above, write {n} questions that it answers. Write one line per question, "
               'starting with the number of its text, like "1: ...".')
    return [{"role": "user", "content": f"{body}\n\n{ask}"}]


def numbered(raw: str, k: int) -> dict[int, list[str]]:
    """Lines of the reply by the unit number (1..k) they start with or continue."""
    out: dict[int, list[str]] = {}
    cur: int | None = None
    for line in (raw or "").splitlines():
        m = _NUM.match(line)
        num = int(next(g for g in m.groups()[:3] if g)) if m else 0
        if m and 1 <= num <= k:
            cur = num
            rest = m.group(4).strip().strip("*").strip()
            if rest:
                out.setdefault(cur, []).append(rest)
        elif line.strip() and cur is not None and not m:
            out.setdefault(cur, []).append(line.strip())
    return out


def _cover(terms: set[str], text_terms: set[str]) -> float:
    return len(terms & text_terms) / len(terms) if terms else 0.0


def parse(kind: str, raw: str, texts: list[str], n: int) -> list[list[str]]:
    """Per text, the summary (one item) or up to `n` questions the reply gives it ([] where it
    gives nothing usable)."""
    lines = numbered(raw, len(texts))
    own_terms = [set(tokenize(t)) for t in texts]
    out: list[list[str]] = []
    for i in range(len(texts)):
        got = lines.get(i + 1, [])
        if kind == "summary":
            s = clean_summary(" ".join(got), max_chars=600) if got else None
            items = [s] if s else []
        else:
            items = parse_questions("\n".join(got), n)
        keep = []
        for it in items:
            terms = set(tokenize(it))
            cover = [_cover(terms, t) for t in own_terms]
            if cover[i] >= MIN_COVER and cover[i] >= max(cover):
                keep.append(it)
        out.append(keep)
    return out
