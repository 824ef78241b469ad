"""The document store's read cache: repeated reads are served from memory, and any write (by
this connection or by another process's) drops it, so a removed or replaced record is never
returned."""

from __future__ import annotations

from pathlib import Path

from core.docstore import DocStore
from core.types import Record


def _rec(rid: str, text: str, source: str = "/d/a.md") -> Record:
    return Record(rid, text, source)


def test_reads_are_cached_until_any_connection_writes(tmp_path: Path) -> None:
    path = tmp_path / "docs.sqlite"
    reader, writer = DocStore(path), DocStore(path)  # a query process and an ingest process
    writer.replace_file("/d/a.md", "h1", 10, "one two", [_rec("a1", "one"), _rec("a2", "two")])
    first = reader.get(["a1", "a2", "zz"])
    assert set(first) == {"a1", "a2"} and first["a1"].text == "one"
    first["a1"].text = "changed by a caller"  # a caller's copy: the cache keeps its own
    assert reader.get(["a1"])["a1"].text == "one"
    assert set(reader._cache) == {"a1", "a2"}  # served from memory now

    writer.remove_file("/d/a.md")  # another connection commits: the reader must not serve a1
    assert reader.get(["a1", "a2"]) == {}
    writer.replace_file("/d/a.md", "h2", 10, "uno", [_rec("a1", "uno")])
    assert reader.get(["a1"])["a1"].text == "uno"

    reader.put_records([_rec("a1", "own write")])  # this connection's own write drops it too
    assert reader.get(["a1"])["a1"].text == "own write"
