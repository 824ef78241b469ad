"""The one record type that flows through ingest, the stores and retrieval."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.lang import cjk_only, token_prefix

Kind = Literal["chunk", "summary", "question", "raptor"]


def hashed(parts: tuple[str, ...], algorithm: str = "sha1", length: int = 24) -> str:
    """A hex digest of `parts`, NUL-separated so ("ab", "c") and ("a", "bc") differ."""
    h = hashlib.new(algorithm)
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:length]


def stable_id(*parts: str) -> str:
    """A record's id (hash of source path + content): stable across runs, so re-ingesting the
    same text finds the same records."""
    return hashed(parts)


def index_text(kind: str, title: str, text: str) -> str:
    """What the embedder and BM25 see of a record: a chunk's section title, then its text."""
    return f"{title}\n{text}" if title and kind == "chunk" else text


def text_digest(text: str) -> int:
    """A 64-bit hash of a text, as a signed integer (what SQLite stores): the document store
    keeps each record's digest of its index text, so a keyword rebuild knows which records it
    already holds without reading their text back."""
    raw = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


@dataclass
class KeywordRows:
    """What the keyword index is built from, column by column (one entry per record, in
    index order): the index text, None where the index already holds a text of that digest
    and need not read it again; the document group (neighbouring chunks share one, "" for
    none); the text's digest (`text_digest`). Columns, not row objects: 100k rows a rebuild."""

    ids: list[str]
    texts: list[str | None]
    groups: list[str]
    digests: list[int]

    @classmethod
    def of(cls, items: Iterable[tuple[str, str] | tuple[str, str, str]]) -> KeywordRows:
        """From `(id, text)` or `(id, text, group)` items, digests computed here."""
        rows = [(i[0], i[1], i[2] if len(i) > 2 else "") for i in items]  # type: ignore[misc]
        return cls([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                   [text_digest(r[1]) for r in rows])


def location(source: str, page_start: int | None = None, page_end: int | None = None) -> str:
    """Human-readable citation location, e.g. `report.pdf`, `report.pdf p. 3`, `report.pdf pp. 3-4`;
    `(derived)` for a record without a source file."""
    from pathlib import Path

    name = Path(source).name if source else "(derived)"
    if page_start is not None:
        if page_end is not None and page_end != page_start:
            return f"{name} pp. {page_start}-{page_end}"
        return f"{name} p. {page_start}"
    return name


@dataclass
class Record:
    """A unit of text in the index: a chunk, or a representation pointing to a parent."""

    id: str
    text: str
    source: str  # absolute path of the source file ("" for derived nodes spanning files)
    kind: Kind = "chunk"
    level: int = 0
    parent_id: str | None = None
    start: int = 0  # character offsets into the loaded source text
    end: int = 0
    title: str = ""  # heading path, e.g. "Guide > Install"
    page_start: int | None = None
    page_end: int | None = None
    children: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def index_text(self) -> str:
        return index_text(self.kind, self.title, self.text)

    def embed_text(self, titles: bool = True, cjk_max_tokens: int = 0) -> str:
        """What the embedder sees: the index text, or the text alone (`embedding.titles`); of
        CJK-only text (`core.lang.cjk_only`) its first `cjk_max_tokens` tokens (0: all)."""
        text = self.index_text() if titles else self.text
        if cjk_max_tokens > 0 and len(text) > cjk_max_tokens and cjk_only(text):
            return token_prefix(text, cjk_max_tokens)
        return text

    def location(self) -> str:
        """Human-readable citation location, e.g. `report.pdf p. 3` (see `location`)."""
        return location(self.source, self.page_start, self.page_end)


@dataclass
class Hit:
    """A retrieved record and the scores every stage gave it."""

    record: Record
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    matched: str | None = None  # id of the representation that matched, when not the chunk itself

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r.id,
            "score": self.score,
            "scores": self.scores,
            "source": r.source,
            "title": r.title,
            "kind": r.kind,
            "level": r.level,
            "start": r.start,
            "end": r.end,
            # the chunk that matched, inside a passage window (retrieval/window.py): where a
            # preview should start; the record's own offsets when it was not widened
            "hit_start": r.extra.get("hit_start", r.start),
            "hit_end": r.extra.get("hit_end", r.end),
            "page_start": r.page_start,
            "page_end": r.page_end,
            "location": r.location(),  # citation form, e.g. "report.pdf p. 3"
            "text": r.text,
            "matched": self.matched,
        }


@dataclass
class TraceEntry:
    stage: str
    ms: float
    detail: dict[str, Any] = field(default_factory=dict)
