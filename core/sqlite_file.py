"""One SQLite file beside the index with a `meta` key/value table: how the document store
(core/docstore.py) and the knowledge graph (core/graph.py) open theirs. WAL, so readers (a
query) and the one writer (an ingest) do not block each other."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SQLiteFile:
    """One connection per instance, shared by its threads (writes are serialised by callers)."""

    def __init__(self, path: Path, schema: str, schema_version: int) -> None:
        """`schema` must create a `meta(key TEXT PRIMARY KEY, value TEXT)` table."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(schema)
        if self.get_meta("schema_version") is None:
            self.set_meta("schema_version", str(schema_version))

    def close(self) -> None:
        self.conn.close()

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
