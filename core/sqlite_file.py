"""One SQLite file beside the index with a `meta` key/value table: how the document store
(core/docstore.py) and the knowledge graph (core/graph.py) open theirs. WAL, so readers (a
query) and the one writer (an ingest) do not block each other."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core.shutdown import close_at_exit


class _Connection(sqlite3.Connection):
    """sqlite3's connection, which (unlike sqlite3's own class) can be held weakly."""


def connect(path: Path, **kwargs: Any) -> sqlite3.Connection:
    """`sqlite3.connect`, the connection closed before a command's quick exit while it is still
    open (core/shutdown.py): closing folds a WAL file's log back into the database, as a normal
    exit does. Registered is the connection, not its owner: a cursor keeps its connection open
    after the object that made it is gone."""
    conn = sqlite3.connect(str(path), factory=_Connection, **kwargs)
    close_at_exit(conn)
    return conn


class SQLiteFile:
    """One connection per instance, shared by its threads (writes are serialised by callers)."""

    def __init__(self, path: Path, schema: str, schema_version: int) -> None:
        """`schema` must create a `meta(key TEXT PRIMARY KEY, value TEXT)` table."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = connect(path, timeout=30, check_same_thread=False)
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
