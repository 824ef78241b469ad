"""SQLite beside the index: the manifest of ingested files and the text of every record.

The vector store holds vectors; this file holds what a search hit shows and what BM25
indexes. A file's records and its manifest row change in one transaction, so a killed
run leaves either the old or the new state of each file, never a mix.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.sqlite_file import SQLiteFile
from core.types import KeywordRows, Record, index_text, text_digest

SCHEMA_VERSION = 1
RECORD_CACHE_MAX = 50_000  # records kept per DocStore for repeated reads (get)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL,
    n_records INTEGER NOT NULL, ingested_at REAL NOT NULL, text TEXT
);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL, level INTEGER NOT NULL,
    parent_id TEXT, start INTEGER, "end" INTEGER, title TEXT, page_start INTEGER,
    page_end INTEGER, text TEXT NOT NULL, children TEXT, extra TEXT, seq INTEGER, khash INTEGER
);
CREATE INDEX IF NOT EXISTS records_source ON records(source);
CREATE INDEX IF NOT EXISTS records_kind ON records(kind);
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLS = 'id, source, kind, level, parent_id, start, "end", title, page_start, page_end, text, children, extra'
# The keyword index's record order: each file's chunks in reading order, then derived records.
_FILE_ORDER = 'COALESCE(start, 0), COALESCE("end", 0), id'  # a file's records in reading order
_KW_ORDER = f"kind != 'chunk', source, {_FILE_ORDER}"


@dataclass
class FileEntry:
    path: str
    hash: str
    size: int
    n_records: int
    ingested_at: float


def _json(raw: str | None, empty: Callable[[], Any]) -> Any:
    # Most chunks have no children and no extra: skip the JSON decoder for them (two decodes
    # a row were a sixth of a query's time outside the encoder).
    return json.loads(raw) if raw and raw not in ("[]", "{}") else empty()


def _row_to_record(row: tuple[Any, ...]) -> Record:
    return Record(
        id=row[0], source=row[1], kind=row[2], level=row[3], parent_id=row[4], start=row[5] or 0,
        end=row[6] or 0, title=row[7] or "", page_start=row[8], page_end=row[9], text=row[10],
        children=_json(row[11], list), extra=_json(row[12], dict),
    )


class DocStore(SQLiteFile):
    """Thin typed access to the SQLite file; one connection per instance."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, SCHEMA_VERSION)
        self._cache: dict[str, Record] = {}  # id -> record, valid while _cache_version holds
        self._cache_version: tuple[int, int] | None = None
        self._cache_lock = threading.Lock()
        self._khash_checked = False

    # --- files ------------------------------------------------------------------
    def files(self) -> dict[str, FileEntry]:
        rows = self.conn.execute("SELECT path, hash, size, n_records, ingested_at FROM files").fetchall()
        return {r[0]: FileEntry(*r) for r in rows}

    def file_text(self, path: str) -> str | None:
        row = self.conn.execute("SELECT text FROM files WHERE path=?", (path,)).fetchone()
        return None if row is None else row[0]

    def replace_file(self, path: str, digest: str, size: int, text: str, records: list[Record]) -> None:
        """Swap a file's records and manifest row atomically."""
        with self.conn:
            self.conn.execute("DELETE FROM records WHERE source=?", (path,))
            self._insert(records)
            self.conn.execute(
                "INSERT OR REPLACE INTO files(path, hash, size, n_records, ingested_at, text) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (path, digest, size, len(records), time.time(), text),
            )

    def remove_file(self, path: str) -> list[str]:
        ids = [r[0] for r in self.conn.execute("SELECT id FROM records WHERE source=?", (path,))]
        with self.conn:
            self.conn.execute("DELETE FROM records WHERE source=?", (path,))
            self.conn.execute("DELETE FROM files WHERE path=?", (path,))
        return ids

    # --- records ----------------------------------------------------------------
    def _ensure_khash(self) -> None:
        """Add the `khash` column (the digest of a record's index text) to a file written
        before it existed. Done by the writer paths only, so a query never writes; the old
        rows keep NULL until `keyword_rows` fills them in."""
        if self._khash_checked:
            return
        cols = {row[1] for row in self.conn.execute("PRAGMA table_info(records)")}
        if "khash" not in cols:
            with self.conn:
                self.conn.execute("ALTER TABLE records ADD COLUMN khash INTEGER")
        self._khash_checked = True

    def _insert(self, records: Iterable[Record]) -> None:
        self._ensure_khash()
        self.conn.executemany(
            f"INSERT OR REPLACE INTO records({_COLS}, khash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (r.id, r.source, r.kind, r.level, r.parent_id, r.start, r.end, r.title, r.page_start,
                 r.page_end, r.text, json.dumps(r.children), json.dumps(r.extra, ensure_ascii=False),
                 text_digest(r.index_text()))
                for r in records
            ],
        )

    def put_records(self, records: list[Record]) -> None:
        with self.conn:
            self._insert(records)

    def delete_records(self, ids: list[str]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM records WHERE id=?", [(i,) for i in ids])

    def swap_records(self, delete: list[str], records: list[Record]) -> None:
        """Delete some records and insert others in one transaction (e.g. a rebuilt tree)."""
        with self.conn:
            self.conn.executemany("DELETE FROM records WHERE id=?", [(i,) for i in delete])
            self._insert(records)

    def get(self, ids: list[str]) -> dict[str, Record]:
        """The records of `ids` that exist (a shallow copy each). Read through a per-instance
        cache: every query reads the ~150 records of its candidate pool, which from SQLite
        cost ~1.5 ms of a ~20 ms query at 10k chunks. The cache is dropped whenever the file
        may have changed: another connection committed (`PRAGMA data_version`) or this one
        wrote (`total_changes`), so a removed or replaced record is never served."""
        with self._cache_lock:  # one connection, shared by threads: read and fill as one step
            version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes)
            if version != self._cache_version:
                self._cache.clear()
                self._cache_version = version
            out = {i: copy.copy(r) for i in ids if (r := self._cache.get(i)) is not None}
            todo = [i for i in ids if i not in out]
            for n in range(0, len(todo), 500):
                part = todo[n : n + 500]
                q = f"SELECT {_COLS} FROM records WHERE id IN ({','.join('?' * len(part))})"
                for row in self.conn.execute(q, part):
                    rec = out[row[0]] = _row_to_record(row)
                    if len(self._cache) < RECORD_CACHE_MAX:
                        self._cache[row[0]] = copy.copy(rec)
        return out

    def iter_records(self, kinds: tuple[str, ...] | None = None) -> Iterator[Record]:
        q = f"SELECT {_COLS} FROM records"
        args: tuple[str, ...] = ()
        if kinds:
            q += f" WHERE kind IN ({','.join('?' * len(kinds))})"
            args = kinds
        q += " ORDER BY rowid"
        for row in self.conn.execute(q, args):
            yield _row_to_record(row)

    def keyword_rows(self, have: Container[int] = frozenset()) -> KeywordRows:
        """Every record for the keyword index: chunks of each file in reading order, grouped
        by source (so BM25 knows each chunk's neighbours), then derived records, ungrouped.

        The text of a record whose digest is in `have` (the texts the keyword index already
        holds) is not read: after a one-file ingest into 100k chunks, reading and hashing every
        text back was a third of the rebuild. Rows written before digests were kept get theirs
        computed and stored here, once (this runs under the index's writer lock)."""
        self._ensure_khash()
        # The order below is an index's own (created once, here: a writer path): SQLite then
        # reads the rows in order from it instead of sorting the table (100k rows: 0.155 ->
        # 0.085 s of every rebuild; building the index there took 0.18 s, once).
        with self.conn:
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS records_keyword_order ON records({_KW_ORDER}, "
                              "kind, khash)")
        q = f"SELECT id, kind, source, khash FROM records ORDER BY {_KW_ORDER}"
        order = self.conn.execute(q).fetchall()
        need = [rid for rid, _, _, h in order if h is None or h not in have]
        texts: dict[str, str] = {}
        if len(need) > len(order) // 4:  # most texts are needed: one pass beats lookups by id
            q = "SELECT id, kind, title, text FROM records"
            texts = {rid: index_text(kind, title or "", text)
                     for rid, kind, title, text in self.conn.execute(q)}
        else:
            for n in range(0, len(need), 500):
                part = need[n : n + 500]
                q = f"SELECT id, kind, title, text FROM records WHERE id IN ({','.join('?' * len(part))})"
                texts.update((rid, index_text(kind, title or "", text))
                             for rid, kind, title, text in self.conn.execute(q, part))
        missing = [(text_digest(texts[rid]), rid) for rid, _, _, h in order if h is None]
        if missing:
            with self.conn:
                self.conn.executemany("UPDATE records SET khash=? WHERE id=?", missing)
        digests = {rid: d for d, rid in missing}
        ids = [r[0] for r in order]
        return KeywordRows(ids, [texts.get(rid) for rid in ids],
                           [source if kind == "chunk" else "" for _, kind, source, _ in order],
                           [h if h is not None else digests[rid] for rid, _, _, h in order])

    def chunk_rows(self, sources: list[str], have: Container[int] = frozenset()
                   ) -> dict[str, list[tuple[str, int, str | None]]]:
        """Per source of `sources` that has chunks, its chunks in keyword order as (id, digest,
        index text, None where `have` holds the digest): what `keyword_rows` gives of those
        files, read without the other 100k rows (KeywordIndex.merged_rows)."""
        self._ensure_khash()
        out: dict[str, list[tuple[str, int, str | None]]] = {}
        for n in range(0, len(sources), 500):
            part = sources[n : n + 500]
            # By the source index (a `kind` condition made SQLite scan all 100k chunks by kind);
            # within a file the keyword order is start, end, id.
            q = (f"SELECT id, source, khash, kind, title, text FROM records WHERE source IN "
                 f"({','.join('?' * len(part))}) ORDER BY source, {_FILE_ORDER}")
            for rid, source, h, kind, title, text in self.conn.execute(q, part):
                if kind != "chunk":
                    continue
                body = index_text(kind, title or "", text)
                digest = h if h is not None else text_digest(body)
                out.setdefault(source, []).append((rid, digest, None if digest in have else body))
        return out

    def record_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def get_ids_for_source(self, path: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM records WHERE source=?", (path,))]

    def ids_of_kind(self, kind: str) -> list[str]:
        """The ids of the records of one kind, sorted; read without building records (the
        ranker's retraining check asks for every chunk's id after each ingest)."""
        return [r[0] for r in self.conn.execute("SELECT id FROM records WHERE kind=? ORDER BY id", (kind,))]

    def all_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM records ORDER BY rowid")]

    def counts_by_kind(self) -> dict[str, int]:
        return {k: n for k, n in self.conn.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind")}

    def counts_by_level(self, kind: str) -> dict[int, int]:
        q = "SELECT level, COUNT(*) FROM records WHERE kind=? GROUP BY level"
        return {int(lv): n for lv, n in self.conn.execute(q, (kind,))}

    def is_empty(self) -> bool:
        return self.conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    # --- a small key/value cache (LLM outputs, OCR text) --------------------------
    def cache_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM cache WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def cache_put(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO cache(key, value) VALUES (?, ?)", (key, value))
