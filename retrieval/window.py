"""The unit searched is not the unit returned: small chunks match precisely, but the
sentence that answers often sits just across a chunk boundary. Each final hit is widened
to a passage window: the hit chunk, then its neighbours in the document (nearer first,
alternating after / before), while the window stays within `search.window_tokens` and
within the hit's pages (paged formats). A window that ends on a lead-in (a colon: "LangChain
主要由以下 6 个核心组件组成:", "The kernel is given by:") takes the next chunk past the budget, since
what it introduces is the answer. The
window's text is the source text between its first and last chunk, so offsets and
citations stay exact. A hit whose chunk already lies inside a better-ranked window is
dropped: it would show the same text twice.
"""

from __future__ import annotations

from dataclasses import replace

from core.index import Index
from core.keyword import KeywordIndex
from core.lang import approx_tokens
from core.text import leads_in
from core.types import Hit, Record


def _same_pages(hit: Record, nb: Record) -> bool:
    """A neighbour joins only within the hit's pages, so a window cites what the hit cites."""
    if hit.page_start is None:
        return True
    lo, hi = hit.page_start, hit.page_end if hit.page_end is not None else hit.page_start
    a = nb.page_start if nb.page_start is not None else lo
    b = nb.page_end if nb.page_end is not None else a
    return lo <= a and b <= hi


def _around(kw: KeywordIndex, rec: Record, budget: int) -> list[str]:
    """The neighbours a window around `rec` could take, both sides: as many as fit in the
    budget if they were the size of `rec` (chunks of one document are of similar size).
    Fetched for every hit in one SQLite read, where growing window by window would read
    one neighbour at a time."""
    hops = max(1, budget // max(approx_tokens(rec.text), 1))
    ids: list[str] = []
    for side in (0, 1):  # 0: before, 1: after
        cur: str | None = rec.id
        for _ in range(hops):
            cur = kw.neighbours(cur)[side] if cur else None
            if cur is None:
                break
            ids.append(cur)
    return ids


def _neighbour(index: Index, source: str, nid: str, cache: dict[str, dict[str, Record]]) -> Record | None:
    """A neighbouring chunk, from `widen`'s cache (read from the store at most once)."""
    got = cache.setdefault(source, {})
    if nid not in got:
        got.update(index.docs.get([nid]))
    return got.get(nid)


def _span(index: Index, rec: Record, budget: int, cache: dict[str, dict[str, Record]]) -> list[Record]:
    """The hit chunk and the neighbours that fit, in reading order; then the chunk after a
    window that ends on a lead-in, whatever its size (module docstring)."""
    kw = index.keyword
    window = [rec]
    used = approx_tokens(rec.text)
    left, right = rec, rec
    grew = True
    while grew:
        grew = False
        for side in ("next", "prev"):
            edge = right if side == "next" else left
            prev_id, next_id = kw.neighbours(edge.id)
            nid = next_id if side == "next" else prev_id
            if nid is None:
                continue
            nb = _neighbour(index, rec.source, nid, cache)
            if nb is None or used + approx_tokens(nb.text) > budget or not _same_pages(rec, nb):
                continue
            used += approx_tokens(nb.text)
            if side == "next":
                window.append(nb)
                right = nb
            else:
                window.insert(0, nb)
                left = nb
            grew = True
    if leads_in(right.text) and (nid := kw.neighbours(right.id)[1]) is not None:
        nb = _neighbour(index, rec.source, nid, cache)
        if nb is not None and _same_pages(rec, nb):
            window.append(nb)
    return window


def widen(index: Index, hits: list[Hit], budget_tokens: int, k: int | None = None) -> list[Hit]:
    """Hits with passage windows (see module doc), the first `k` of them when given (the
    rest of `hits` stand by for those a better window covers); `budget_tokens` <= 0 returns
    them as they are."""
    if budget_tokens <= 0 or not hits:
        return hits
    k = len(hits) if k is None else k
    out: list[Hit] = []
    covered: set[str] = set()
    texts: dict[str, str | None] = {}
    cache: dict[str, dict[str, Record]] = {}
    kw = index.keyword
    # The neighbours of the first k hits in one read; a stand-by hit reads its own if it is reached.
    want = [i for h in hits[:k] if h.record.kind == "chunk" and h.record.source
            for i in _around(kw, h.record, budget_tokens)]
    for r in index.docs.get(list(dict.fromkeys(want))).values():
        cache.setdefault(r.source, {})[r.id] = r
    for h in hits:
        if len(out) >= k:
            break
        rec = h.record
        if rec.id in covered:
            continue
        if rec.kind != "chunk" or not rec.source:
            out.append(h)
            continue
        span = _span(index, rec, budget_tokens, cache)
        if len(span) == 1:
            covered.add(rec.id)
            out.append(h)
            continue
        if rec.source not in texts:
            texts[rec.source] = index.docs.file_text(rec.source)
        full = texts[rec.source]
        start, end = span[0].start, span[-1].end
        if full is None or end > len(full) or full[rec.start : rec.end] != rec.text:
            out.append(h)  # offsets do not match the stored text (should not happen): keep the chunk
            covered.add(rec.id)
            continue
        covered.update(r.id for r in span)
        pages = [p for r in span for p in (r.page_start, r.page_end) if p is not None]
        wide = replace(
            rec,
            text=full[start:end],
            start=start,
            end=end,
            page_start=min(pages) if pages else rec.page_start,
            page_end=max(pages) if pages else rec.page_end,
            extra={**rec.extra, "window": [r.id for r in span], "hit_start": rec.start, "hit_end": rec.end},
        )
        out.append(Hit(wide, h.score, h.scores, h.matched))
    return out
