"""Spreadsheet formats: CSV (stdlib `csv`, dialect sniffed) and XLSX (openpyxl, streamed). Each
table becomes a Markdown table in the document's text, so passage search finds it as it finds
HTML and DOCX tables, and a `FoundTable` that ingest stores in SQLite (core/tables.py).

The first row is the header unless every cell of it is a number (then the columns are named
column_1, column_2, ...). At most `ingest.max_table_rows` rows are read per table; the rest is
cut with a warning, as the PDF loader cuts pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.errors import LoaderError
from core.settings import IngestSettings
from core.tables import column_type
from ingest.doc import LoadedDoc, found_table, md_table

SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
MAX_FIELD_CHARS = 1_000_000  # a "cell" longer than this is not a table (csv's default is 131,072)


def _with_header(rows: list[list[str]]) -> list[list[str]]:
    """`rows` whose first row is a header: a first row of numbers only is data, so a header
    of column_1 ... is put before it."""
    first = [c for c in rows[0] if c.strip()]
    if first and column_type(first) != "TEXT":
        width = max(len(r) for r in rows)
        return [[f"column_{i + 1}" for i in range(width)], *rows]
    return rows


def _limited(rows: Iterable[list[str]], limit: int, name: str, warnings: list[str]) -> list[list[str]]:
    """The first `limit` data rows (plus the header) of `rows`; a warning when more were there."""
    out: list[list[str]] = []
    for r in rows:
        if len(out) > limit:  # header + limit rows kept: one more means the table was cut
            warnings.append(f"{name}: only the first {limit} rows are indexed (ingest.max_table_rows = "
                            f"{limit}); raise ingest.max_table_rows to index them all")
            break
        out.append(r)
    return out


def _document(path: Path, tables: list[tuple[str, list[list[str]]]], warnings: list[str]) -> LoadedDoc:
    """The text (a heading, the caption or the file's name, and a Markdown table per table) and
    the found tables."""
    parts, found = [], []
    for caption, rows in tables:
        rows = _with_header(rows)
        t = found_table(rows, caption=caption)
        if t is None:
            continue
        found.append(t)
        parts.append(f"# {caption or path.stem}\n\n{md_table([t.header, *t.rows])}")
    if not found:
        raise LoaderError(f"{path.name} holds no table (a header row and at least one data row)")
    return LoadedDoc(text="\n\n".join(parts), title=path.stem, tables=found, warnings=warnings)


def load_csv(path: Path, settings: IngestSettings, text: str) -> LoadedDoc:
    """A CSV (or TSV, semicolon-separated ...) file, already decoded, as one table."""
    sample = text[:SNIFF_BYTES]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:  # one column, or too irregular to tell: plain commas
        dialect = csv.excel
    old = csv.field_size_limit(MAX_FIELD_CHARS)
    warnings: list[str] = []
    try:
        reader = csv.reader(io.StringIO(text.replace("\r\n", "\n")), dialect)
        rows = _limited((r for r in reader if any(c.strip() for c in r)), settings.max_table_rows,
                        path.name, warnings)
    except csv.Error as e:
        raise LoaderError(f"{path.name} is not a readable CSV file ({e})") from e
    finally:
        csv.field_size_limit(old)
    if not rows:
        raise LoaderError(f"{path.name} has no rows")
    return _document(path, [("", rows)], warnings)  # no caption: the file's name says it


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_rows(ws: Any) -> Iterator[list[str]]:
    """The sheet's non-empty rows as text, trailing empty cells dropped."""
    for values in ws.iter_rows(values_only=True):
        row = [_cell(v) for v in values]
        while row and not row[-1].strip():
            row.pop()
        if row:
            yield row


def load_xlsx(path: Path, settings: IngestSettings, data: bytes) -> LoadedDoc:
    """Every sheet with a table (a header and a data row) as one table, captioned by its name.
    The archive's sizes were checked (`loaders.check_zip`) before this opens it."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a broken file
        raise LoaderError(f"{path.name} is not a readable XLSX file ({type(e).__name__}: {e})") from e
    warnings: list[str] = []
    tables: list[tuple[str, list[list[str]]]] = []
    try:
        for ws in wb.worksheets:
            name = f"{path.name} sheet {ws.title}"
            rows = _limited(_sheet_rows(ws), settings.max_table_rows, name, warnings)
            if rows:
                tables.append((str(ws.title), rows))
    except LoaderError:
        raise
    except Exception as e:
        raise LoaderError(f"{path.name} is not a readable XLSX file ({type(e).__name__}: {e})") from e
    finally:
        wb.close()
    return _document(path, tables, warnings)

