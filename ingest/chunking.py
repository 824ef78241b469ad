"""Structure-aware chunking: headings (Markdown `#` lines, and a plain text's chapter lines such
as 第一回 or "CHAPTER IV.": core.text.heading) open sections, paragraphs and tables are units,
oversized paragraphs split at sentence ends (English `.!?`, CJK `。！？；`), oversized
sentences at whitespace (or between CJK characters). Sizes are approximate model tokens
so a chunk fits the embedder's window; every chunk keeps exact offsets into the text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.lang import approx_tokens, cjk_only, is_wide
from core.settings import ChunkSettings
from core.text import fenced, heading
from core.text import split_sentences as _split_sentences  # one definition, shared with retrieval
from core.types import Record, stable_id
from ingest.doc import LoadedDoc


@dataclass
class Unit:
    start: int
    end: int
    kind: str  # heading | para | table
    section: tuple[str, ...]
    tokens: int


def _units(text: str) -> Iterator[Unit]:
    """Headings, paragraphs (blank-line separated), tables (runs of `|` lines) and fenced code
    blocks (one paragraph each, blank lines and `#` comment lines inside included: a README's
    "# 1. install everything" in a ```bash block had become the heading of every section after
    it)."""
    section: list[tuple[int, str]] = []
    pos = 0
    lines = text.split("\n")
    code = fenced(lines)
    i = 0
    offsets = []
    for ln in lines:
        offsets.append(pos)
        pos += len(ln) + 1
    while i < len(lines):
        ln = lines[i]
        if code[i]:  # the block and its fences (two blocks back to back read as one)
            j = i + 1
            while j < len(lines) and code[j]:
                j += 1
            start, end = offsets[i], offsets[j - 1] + len(lines[j - 1])
            yield Unit(start, end, "para", tuple(s[1] for s in section), approx_tokens(text[start:end]))
            i = j
            continue
        if not ln.strip():
            i += 1
            continue
        h = heading(ln)
        if h:
            level = h[0]
            section = [s for s in section if s[0] < level] + [(level, h[1].strip())]
            yield Unit(offsets[i], offsets[i] + len(ln), "heading", tuple(s[1] for s in section),
                       approx_tokens(ln))
            i += 1
            continue
        is_table = ln.lstrip().startswith("|")
        j = i
        while j < len(lines) and lines[j].strip() and heading(lines[j]) is None:
            if lines[j].lstrip().startswith("|") != is_table:
                break
            j += 1
        start, end = offsets[i], offsets[j - 1] + len(lines[j - 1])
        yield Unit(start, end, "table" if is_table else "para", tuple(s[1] for s in section),
                   approx_tokens(text[start:end]))
        i = j


def _hard_split(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence near `size` tokens: after a line break where there is one in
    the piece's second half, else at whitespace where there is any. Notes written a term and
    its gloss per line, with no sentence ends ("QLoRA 量化+LoRA"), were cut at the space between
    the two, and neither piece said what QLoRA is."""
    out = []
    s = start
    while s < end:
        e, tok = s, 0
        while e < end and tok < size:
            tok += 1 if is_wide(text[e]) else 0.25  # type: ignore[assignment]
            e += 1
        if e < end:
            half = s + (e - s) // 2
            nl = text.rfind("\n", s + 1, e)
            ws = text.rfind(" ", s + 1, e)
            if nl >= half:
                e = nl + 1
            elif ws > half:
                e = ws
        out.append((s, e))
        s = e
    return out


def _pack(text: str, spans: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cur_s, cur_tok = None, 0
    cur_e = 0
    for a, b in spans:
        t = approx_tokens(text[a:b])
        if t > size:
            if cur_s is not None:
                out.append((cur_s, cur_e))
                cur_s, cur_tok = None, 0
            out.extend(_hard_split(text, a, b, size))
            continue
        if cur_s is not None and cur_tok + t > size:
            out.append((cur_s, cur_e))
            cur_s, cur_tok = None, 0
        if cur_s is None:
            cur_s = a
        cur_e, cur_tok = b, cur_tok + t
    if cur_s is not None:
        out.append((cur_s, cur_e))
    return out


def _table_pieces(text: str, u: Unit, size: int) -> list[tuple[int, int, str]]:
    """A long table split between rows; every piece repeats the header row."""
    body = text[u.start : u.end]
    rows = body.split("\n")
    header = rows[:2] if len(rows) > 1 and set(rows[1].replace("|", "").strip()) <= set("-: ") else rows[:1]
    head_txt = "\n".join(header)
    out: list[tuple[int, int, str]] = []
    cur: list[str] = []
    cur_start: int | None = None
    pos = u.start + len(head_txt) + 1
    budget = max(size - approx_tokens(head_txt), size // 4)
    for row in rows[len(header):]:
        if cur and approx_tokens("\n".join(cur + [row])) > budget:
            out.append((cur_start or u.start, pos - 1, head_txt + "\n" + "\n".join(cur)))
            cur, cur_start = [], None
        if cur_start is None:
            cur_start = pos if out else u.start
        cur.append(row)
        pos += len(row) + 1
    if cur:
        out.append((cur_start or u.start, u.end, head_txt + "\n" + "\n".join(cur)))
    return out


def _section_title(doc_title: str, section: tuple[str, ...]) -> str:
    parts = [doc_title] if doc_title else []
    for s in section:
        if not parts or s.strip().lower() != parts[-1].strip().lower():
            parts.append(s)
    return " > ".join(parts)


def _page_range(doc: LoadedDoc, start: int, end: int) -> tuple[int | None, int | None]:
    if not doc.pages:
        return None, None
    hit = [p.number for p in doc.pages if p.start < end and p.end > start]
    if not hit:
        before = [p.number for p in doc.pages if p.start <= start]
        return (before[-1], before[-1]) if before else (doc.pages[0].number, doc.pages[0].number)
    return hit[0], hit[-1]


Piece = tuple[int, int, str | None, tuple[str, ...]]  # start, end, text override (tables), section


def chunk_document(doc: LoadedDoc, source: str, settings: ChunkSettings) -> list[Record]:
    # CJK-only text is sized for the keyword index (ChunkSettings.size_cjk)
    size = settings.size_cjk if cjk_only(doc.text) else settings.size
    pieces = _pieces(doc.text, max(size, 16))
    return _merge_tiny(_records(doc, source, settings, pieces), settings)


def _pieces(text: str, size: int) -> list[Piece]:
    """Units grouped into pieces of up to `size` tokens: a heading starts a new piece once the
    group has a body, an oversized table is cut into pieces of its own."""
    pieces: list[Piece] = []
    group: list[Unit] = []

    def flush() -> None:
        if not group:
            return
        spans: list[tuple[int, int]] = []
        for u in group:
            if u.tokens > size and u.kind == "para":
                spans.extend(_split_sentences(text, u.start, u.end))
            else:
                spans.append((u.start, u.end))
        for a, b in _pack(text, spans, size):
            pieces.append((a, b, None, group[-1].section))
        group.clear()

    # `has_body`: the group holds a unit that is not a heading. Kept as a flag, not recomputed
    # over the group: a run of heading lines (a file of `#` lines) grows one group, and
    # scanning it per unit was quadratic (400k such lines: most of an hour).
    tok, has_body = 0, False
    for u in _units(text):
        if u.kind == "heading":
            if has_body:
                flush()
                tok, has_body = 0, False
        elif u.kind == "table" and u.tokens > size:
            flush()
            tok, has_body = 0, False
            for a, b, t in _table_pieces(text, u, size):
                pieces.append((a, b, t, u.section))
            continue
        elif tok + u.tokens > size and has_body:
            flush()
            tok, has_body = 0, False
        group.append(u)
        tok += u.tokens
        has_body = has_body or u.kind != "heading"
    flush()
    return pieces


def _records(doc: LoadedDoc, source: str, settings: ChunkSettings, pieces: list[Piece]) -> list[Record]:
    """The pieces as chunk records: overlap taken from the text before, whitespace trimmed,
    empty pieces dropped, repeated texts numbered so their ids differ."""
    text = doc.text
    records: list[Record] = []
    seen: dict[str, int] = {}
    for a, b, override, section in pieces:
        if override is None and settings.overlap > 0 and records:
            back = text.rfind(" ", max(0, a - settings.overlap * 4), a)
            a = back + 1 if back >= 0 else a
        body = override if override is not None else text[a:b]
        lead = len(body) - len(body.lstrip())
        body_s = body.strip()
        if not body_s:
            continue
        if override is None:
            a, b = a + lead, a + lead + len(body_s)
        n = seen.get(body_s, 0)
        seen[body_s] = n + 1
        p0, p1 = _page_range(doc, a, b)
        records.append(
            Record(
                id=stable_id(source, body_s, str(n)), text=body_s, source=source, kind="chunk", level=0,
                start=a, end=b, title=_section_title(doc.title, section), page_start=p0, page_end=p1,
            )
        )
    return records


def _merge_tiny(records: list[Record], settings: ChunkSettings) -> list[Record]:
    """Drop chunks that are only a heading: their words already live in the next chunk's title."""
    out = []
    for r in records:
        if approx_tokens(r.text) < settings.min_size and heading(r.text) is not None and "\n" not in r.text:
            continue
        out.append(r)
    return out or records

