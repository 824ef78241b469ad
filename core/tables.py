"""Tables found at ingest, kept as real SQLite tables in `<index dir>/tables.sqlite`.

Ingest writes (`replace_source`, `remove_source`); the query path only reads, through
connections opened read-only (`file:...?mode=ro`). A catalogue (`rag_catalog`) names every
table with its source file, page, caption and the column names as found; each table has a
`_row` column (its row number in the source table, from 1) so an answer can cite the rows it
used. Values are stored as INTEGER or REAL when the whole column parses as numbers, else TEXT.

`run_readonly` is the one way a model-written query reaches SQLite: a single statement,
authorised action by action (`set_authorizer`: reading and functions only, so no ATTACH,
PRAGMA, DDL or DML is even prepared), on a read-only connection, stopped past a time limit
(`set_progress_handler`), with capped value sizes and at most `max_rows` rows returned."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import SqlError
from core.sqlite_file import connect
from core.types import hashed

log = logging.getLogger(__name__)

CATALOG = "rag_catalog"
ROW = "_row"  # every stored table's row-number column
MAX_VALUE_BYTES = 1_000_000  # SQLITE_LIMIT_LENGTH for model queries: no zeroblob(1e9)
PROGRESS_OPS = 1000  # VM instructions between time-limit checks

_CATALOG_SQL = f"""
CREATE TABLE IF NOT EXISTS {CATALOG} (
    name TEXT PRIMARY KEY, source TEXT NOT NULL, page INTEGER, caption TEXT NOT NULL,
    columns TEXT NOT NULL, sql_columns TEXT NOT NULL, types TEXT NOT NULL, n_rows INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {CATALOG}_source ON {CATALOG}(source);
"""

# Words a column may not be named as (a model writes them unquoted); such names get a "_".
_KEYWORDS = frozenset(
    "all and as asc between by case cast check collate column constraint create cross current_date "
    "current_time current_timestamp default delete desc distinct do drop else end escape except exists "
    "filter foreign from full glob group having if in index inner insert intersect into is join key left "
    "like limit match natural not nothing null offset on or order outer over primary range recursive "
    "references replace right row rows select set table then to transaction union unique update using "
    "values when where window with".split()
)
_NON_WORD = re.compile(r"\W+")
_INT = re.compile(r"^[+-]?\d{1,18}$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

# Authorizer: what a model-written SELECT may do. Everything else (ATTACH, PRAGMA, INSERT,
# UPDATE, DELETE, CREATE, DROP, ALTER, transactions, ...) is denied before it runs.
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


@dataclass
class FoundTable:
    """A table as a loader found it: the header and the data rows (cells as text), where it was."""

    header: list[str]
    rows: list[list[str]]
    page: int | None = None
    caption: str = ""


@dataclass
class TableInfo:
    """One stored table, as the catalogue lists it."""

    name: str
    source: str
    page: int | None
    caption: str
    columns: list[str]  # as found in the document
    sql_columns: list[str]  # the safe identifiers they are stored under
    types: list[str]  # INTEGER | REAL | TEXT per column
    n_rows: int

    def original(self, sql_column: str) -> str:
        """The column's name as found (a result column that is not one of ours: itself)."""
        lookup = dict(zip(self.sql_columns, self.columns, strict=True))
        return lookup.get(sql_column, sql_column)


@dataclass
class SqlResult:
    """What a read-only query returned: column names, at most `max_rows` rows, whether more
    were there, and the tables it read (from the authorizer)."""

    sql: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    tables: list[str] = field(default_factory=list)
    ms: float = 0.0


def safe_identifier(name: str, taken: set[str], fallback: str) -> str:
    """`name` as an identifier a model can write unquoted: word characters only (letters of any
    script kept), lower case, not starting with a digit, not a keyword, not in `taken`."""
    s = _NON_WORD.sub("_", name.strip().lower()).strip("_") or fallback
    if s[0].isdigit():
        s = f"c_{s}"
    if s in _KEYWORDS or s == ROW or s.startswith("sqlite_"):
        s += "_"
    base, n = s, 2
    while s in taken:
        s, n = f"{base}_{n}", n + 1
    return s


def _number(value: str) -> int | float | None:
    v = value.strip()
    if _THOUSANDS.match(v):
        v = v.replace(",", "")
    if _INT.match(v):
        return int(v)
    if _FLOAT.match(v):
        return float(v)
    return None


def column_type(values: list[str]) -> str:
    """INTEGER or REAL when every non-empty value parses as a number of that kind, else TEXT."""
    parsed = [_number(v) for v in values if v.strip()]
    if not parsed or any(p is None for p in parsed):
        return "TEXT"
    return "INTEGER" if all(isinstance(p, int) for p in parsed) else "REAL"


def _cell(value: str, kind: str) -> Any:
    if not value.strip():
        return None
    if kind == "TEXT":
        return value
    n = _number(value)
    return float(n) if kind == "REAL" and n is not None else n


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class TableStore:
    """`tables.sqlite`: written by ingest, read (read-only connections) by the query path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rw: sqlite3.Connection | None = None
        self._cache: tuple[tuple[int, int], list[TableInfo]] | None = None
        self._values: dict[tuple[tuple[int, int], str], list[str]] = {}

    # --- writing (ingest) ---------------------------------------------------------
    def _writer(self) -> sqlite3.Connection:
        if self._rw is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: explicit BEGIN/COMMIT, so DDL and DML of one file commit together
            self._rw = connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._rw.executescript(_CATALOG_SQL)
        return self._rw

    def close(self) -> None:
        if self._rw is not None:
            self._rw.close()
            self._rw = None

    def replace_source(self, source: str, tables: list[FoundTable]) -> list[str]:
        """Swap the tables of `source` for `tables` in one transaction; their names."""
        usable = [t for t in tables if t.rows and any(h.strip() for h in t.header)]
        if not usable and not any(t.source == source for t in self.catalogue()):
            return []  # nothing to store, nothing stored: no write (and no file made)
        conn = self._writer()
        names: list[str] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._drop(conn, source)
            taken = {r[0] for r in conn.execute(f"SELECT name FROM {CATALOG}")} | {CATALOG}
            for seq, t in enumerate(usable):
                name = self._name(source, t, seq, len(usable), taken)
                taken.add(name)
                self._create(conn, name, source, seq, t)
                names.append(name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            self._cache = None  # this process's reads see the write even within one mtime tick
        return names

    def remove_source(self, source: str) -> int:
        """Drop every table of `source`; how many went."""
        if not self.path.exists():
            return 0
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = self._drop(conn, source)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            self._cache = None
        return n

    def _drop(self, conn: sqlite3.Connection, source: str) -> int:
        old = [r[0] for r in conn.execute(f"SELECT name FROM {CATALOG} WHERE source=?", (source,))]
        for name in old:
            conn.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        conn.execute(f"DELETE FROM {CATALOG} WHERE source=?", (source,))
        return len(old)

    @staticmethod
    def _name(source: str, t: FoundTable, seq: int, count: int, taken: set[str]) -> str:
        stem = Path(source).stem
        base = safe_identifier(stem, set(), "table")
        if count > 1:
            base += f"_{seq + 1}"
        if base in taken:  # another file of the same name: its path's hash tells them apart
            base += "_" + hashed((source,), length=6)
        return safe_identifier(base, taken, "table")

    @staticmethod
    def _create(conn: sqlite3.Connection, name: str, source: str, seq: int, t: FoundTable) -> None:
        width = max(len(t.header), *(len(r) for r in t.rows))
        header = [h.strip() for h in t.header] + [""] * (width - len(t.header))
        rows = [[(c or "") for c in r] + [""] * (width - len(r)) for r in t.rows]
        cols: list[str] = []
        for i, h in enumerate(header):
            cols.append(safe_identifier(h, set(cols), f"column_{i + 1}"))
        header = [h or f"column_{i + 1}" for i, h in enumerate(header)]
        types = [column_type([r[i] for r in rows]) for i in range(width)]
        defs = ", ".join(f"{quote(c)} {k}" for c, k in zip(cols, types, strict=True))
        conn.execute(f"CREATE TABLE {quote(name)} ({ROW} INTEGER PRIMARY KEY, {defs})")
        marks = ",".join("?" * (width + 1))
        conn.executemany(
            f"INSERT INTO {quote(name)} VALUES ({marks})",
            [(i, *(_cell(v, k) for v, k in zip(r, types, strict=True))) for i, r in enumerate(rows, 1)],
        )
        conn.execute(
            f"INSERT INTO {CATALOG}(name, source, page, caption, columns, sql_columns, types, n_rows, seq) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (name, source, t.page, t.caption, json.dumps(header, ensure_ascii=False),
             json.dumps(cols, ensure_ascii=False), json.dumps(types), len(rows), seq),
        )

    # --- reading (query path, read-only) -------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reader(self, timeout_s: float = 5.0) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)

    def catalogue(self) -> list[TableInfo]:
        """Every stored table; [] when there is no table file. Read again only when it changed."""
        stamp = self.stamp()
        if stamp is None:
            return []
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        conn = self._reader()
        try:
            rows = conn.execute(f"SELECT name, source, page, caption, columns, sql_columns, types, n_rows "
                                f"FROM {CATALOG} ORDER BY source, seq").fetchall()
        except sqlite3.OperationalError:  # a file without the catalogue yet
            rows = []
        finally:
            conn.close()
        out = [TableInfo(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), json.loads(r[6]), r[7])
               for r in rows]
        self._cache = (stamp, out)
        return out

    def info(self, name: str) -> TableInfo | None:
        return next((t for t in self.catalogue() if t.name == name), None)

    def text_values(self, table: TableInfo, limit: int = 500) -> list[str]:
        """Distinct text values of the table's TEXT columns (at most `limit` per column), for
        the router; cached until the file changes."""
        stamp = self.stamp()
        if stamp is None:
            return []
        key = (stamp, table.name)
        if key not in self._values:
            conn = self._reader()
            out: list[str] = []
            try:
                for col, kind in zip(table.sql_columns, table.types, strict=True):
                    if kind == "TEXT":
                        c = quote(col)
                        q = (f"SELECT DISTINCT {c} FROM {quote(table.name)} WHERE {c} IS NOT NULL "
                             f"LIMIT {int(limit)}")
                        out += [str(r[0]) for r in conn.execute(q)]
            finally:
                conn.close()
            self._values = {k: v for k, v in self._values.items() if k[0] == stamp}
            self._values[key] = out
        return self._values[key]

    def sample(self, name: str, n: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        conn = self._reader()
        try:
            cur = conn.execute(f"SELECT * FROM {quote(name)} ORDER BY {ROW} LIMIT {int(n)}")
            return [d[0] for d in cur.description], cur.fetchall()
        finally:
            conn.close()

    def schema_prompt(self, names: list[str] | None = None, limit_rows: int = 3) -> str:
        """The tables (all, or `names`) as the SQL prompt shows them: the CREATE statement with
        each column's name as found in a comment, where it came from, and a few rows."""
        parts = []
        for t in self.catalogue():
            if names is not None and t.name not in names:
                continue
            where = Path(t.source).name + (f", page {t.page}" if t.page is not None else "")
            cap = f" ({t.caption})" if t.caption else ""
            cols = [(f"{ROW} INTEGER", "row number in the source table")]
            named = zip(t.sql_columns, t.types, t.columns, strict=True)
            cols += [(f"{c} {k}", f'"{o}"') for c, k, o in named]
            body = [f"  {d}{',' if i < len(cols) - 1 else ''}  -- {note}" for i, (d, note) in enumerate(cols)]
            lines = [f"-- table {t.name}: {t.n_rows} rows, from {where}{cap}",
                     f"CREATE TABLE {t.name} (\n" + "\n".join(body) + "\n);"]
            if limit_rows > 0:
                head, rows = self.sample(t.name, limit_rows)
                lines.append("-- sample rows: " + " | ".join(head))
                lines += ["--   " + " | ".join("NULL" if v is None else str(v)[:60] for v in r) for r in rows]
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    def run_readonly(self, sql: str, max_rows: int, timeout_s: float) -> SqlResult:
        """Run one model-written SELECT read-only (module docstring); SqlError with SQLite's
        message (or ours) when it is refused, fails or runs past `timeout_s`."""
        text = sql.strip().rstrip(";").strip()
        if not text:
            raise SqlError("the reply holds no SQL statement")
        if not sqlite3.complete_statement(text + ";"):
            raise SqlError("incomplete SQL statement (unbalanced quotes or parentheses?)")
        if not self.exists():
            raise SqlError(f"no table file at {self.path}; ingest a file with a table first")
        read: list[str] = []

        def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _t: str | None) -> int:
            if action not in _ALLOWED:
                return sqlite3.SQLITE_DENY
            if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
                return sqlite3.SQLITE_DENY
            if action == sqlite3.SQLITE_READ and arg1 and arg1 not in read:
                read.append(arg1)
            return sqlite3.SQLITE_OK

        deadline = time.monotonic() + timeout_s
        conn = self._reader(timeout_s=max(timeout_s, 0.1))
        t0 = time.perf_counter()
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.set_authorizer(authorize)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_OPS)
            cur = conn.execute(text)
            if cur.description is None:
                raise SqlError("the statement returns no rows; write a SELECT")
            rows = cur.fetchmany(max_rows + 1)
        except SqlError:
            raise
        except sqlite3.Error as e:
            if time.monotonic() > deadline and "interrupt" in str(e).lower():
                raise SqlError(f"the query ran past the {timeout_s:g} s time limit (sql.timeout_s); "
                               "write a simpler query") from e
            raise SqlError(f"{type(e).__name__}: {e}") from e
        finally:
            conn.close()
        cols = [d[0] for d in cur.description]
        tables = [t for t in read if t != CATALOG and not t.startswith("sqlite_")]
        return SqlResult(text, cols, rows[:max_rows], len(rows) > max_rows, tables,
                         (time.perf_counter() - t0) * 1000)
