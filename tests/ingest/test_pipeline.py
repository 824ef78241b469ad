"""Ingest with the real embedder and Chroma: formats, incremental runs, bad input,
interrupted runs."""

import os
from pathlib import Path

import pytest

from core.index import Index
from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval.pipeline import retrieve
from retrieval.state import Plan


def _corpus(root: Path) -> Path:
    d = root / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.md").write_text("# Alpha\n\nThe alpha document talks about glaciers and ice sheets.\n")
    (d / "sub" / "b.txt").write_text("Bravo notes: the quarterly budget was approved on Tuesday.\n")
    (d / "c.html").write_text("<html><body><h1>Charlie</h1><p>Volcanoes erupt molten rock.</p></body></html>")
    (d / "ignored.bin").write_bytes(b"\x00\x01")
    return d


def _consistent(index: Index) -> int:
    ids = set(index.docs.all_ids())
    assert set(index.vectors.all_ids()) == ids
    index.keyword.load()
    assert set(index.keyword.ids) == ids
    return len(ids)


def test_ingest_then_rerun_is_a_no_op(tmp_path: Path, settings: Settings) -> None:
    d = _corpus(tmp_path)
    r1 = ingest([d], settings)
    assert r1.count("added") == 3 and r1.count("failed") == 0 and r1.chunks_written >= 3
    # the folder's file of a type ingest does not read is left out, and the summary says so
    assert r1.skipped == {".bin": 1} and r1.summary()["skipped_types"] == {".bin": 1}
    from app.ingest_lines import report_lines

    line = report_lines(r1, settings, tmp_path)[2]
    assert "1 file of other types left out (.bin 1); ingest.extensions lists the types read" in line
    n = _consistent(Index(settings))
    r2 = ingest([d], settings)
    assert r2.count("unchanged") == 3 and r2.chunks_written == 0 and r2.chunks_embedded == 0
    assert _consistent(Index(settings)) == n


def test_changed_file_replaces_its_chunks_and_prune_removes_deleted(
    tmp_path: Path, settings: Settings
) -> None:
    d = _corpus(tmp_path)
    ingest([d], settings)
    (d / "a.md").write_text("# Alpha\n\nNow the alpha document is about deserts and dunes.\n")
    r = ingest([d], settings)
    assert r.count("changed") == 1 and r.count("unchanged") == 2
    index = Index(settings)
    texts = " ".join(rec.text for rec in index.docs.iter_records())
    assert "deserts" in texts and "glaciers" not in texts
    n = _consistent(index)
    hits = retrieve("glaciers and ice sheets", settings, k=3, plan=Plan(mode="bm25")).hits
    assert all("glaciers" not in h.record.text for h in hits)

    os.remove(d / "sub" / "b.txt")
    r = ingest([d], settings)  # without --prune, the deleted file's chunks stay
    assert r.count("removed") == 0 and _consistent(Index(settings)) == n
    r = ingest([d], settings, prune=True)
    assert r.count("removed") == 1
    index = Index(settings)
    assert not any("budget" in rec.text for rec in index.docs.iter_records())
    assert _consistent(index) < n


def test_bad_inputs_are_reported_and_the_rest_indexed(tmp_path: Path, settings: Settings) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "good.md").write_text("A perfectly fine note about lighthouses.")
    (d / "empty.txt").write_text("")
    (d / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (d / "broken.pdf").write_bytes(b"%PDF-1.7 garbage")
    (d / "gbk.txt").write_bytes("灯塔看守人的笔记，记录了每天的天气和航船。".encode("gb18030") * 3)
    (d / "loop").symlink_to(d, target_is_directory=True)
    big = d / "big.txt"
    big.write_text("x " * 600_000)
    s = load_settings(ingest={"max_file_mb": 1})
    r = ingest([d, tmp_path / "missing-folder"], s)
    failed = {Path(f.path).name: f.error for f in r.failed}
    assert set(failed) >= {"empty.txt", "binary.txt", "broken.pdf", "big.txt", "missing-folder"}
    assert "over the 1 MB limit" in (failed["big.txt"] or "")
    assert "no such file" in (failed["missing-folder"] or "")
    assert r.count("added") == 2  # good.md and the GB18030 file
    _consistent(Index(s))
    hits = retrieve("灯塔看守人", s, k=1, plan=Plan(mode="bm25")).hits
    assert hits and "灯塔" in hits[0].record.text


def test_planted_sentence_is_found_by_dense_search(tmp_path: Path, settings: Settings) -> None:
    d = tmp_path / "c"
    d.mkdir()
    for i in range(8):
        (d / f"filler{i}.md").write_text(f"# Note {i}\n\n" + "General remarks about office logistics. " * 10)
    (d / "planted.md").write_text("# Zoo\n\nThe zookeeper feeds the penguins fresh herring every morning.\n")
    ingest([d], settings)
    hits = retrieve("what do penguins eat at the zoo", settings, k=3, plan=Plan(mode="dense")).hits
    assert hits[0].record.source.endswith("planted.md")
    assert 0 < hits[0].scores["dense"] <= 1
    h = hits[0].record
    assert h.start < h.end and Path(h.source).read_text()[h.start : h.end] == h.text


def test_interrupted_run_is_completed_without_duplicates(tmp_path: Path, settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    d = _corpus(tmp_path)
    from core.docstore import DocStore

    real = DocStore.replace_file
    calls = {"n": 0}

    def crash_on_second(self, *a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # vectors were upserted, the manifest was not
        return real(self, *a, **kw)

    monkeypatch.setattr(DocStore, "replace_file", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        ingest([d], settings)
    monkeypatch.setattr(DocStore, "replace_file", real)
    r = ingest([d], settings)
    assert r.count("failed") == 0 and r.count("added") + r.count("unchanged") == 3
    assert r.count("added") >= 2
    _consistent(Index(settings))


def test_two_indexes_side_by_side_do_not_interfere(tmp_path: Path) -> None:
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir()
    d2.mkdir()
    (d1 / "x.md").write_text("Apples grow in orchards.")
    (d2 / "y.md").write_text("Submarines dive deep.")
    s1 = load_settings(index_dir=tmp_path / "i1")
    s2 = load_settings(index_dir=tmp_path / "i2")
    ingest([d1], s1)
    ingest([d2], s2)
    assert [r.text for r in Index(s1).docs.iter_records()] == ["Apples grow in orchards."]
    assert [r.text for r in Index(s2).docs.iter_records()] == ["Submarines dive deep."]
    assert Index(s1).vectors.count() == 1 and Index(s2).vectors.count() == 1



def _paragraphs(topic: str, n: int) -> str:
    body = "The {t} note, part {i}, says something about {t} {i}. " * 30
    return "\n\n".join(f"## Part {i}\n\n" + body.format(t=topic, i=i) for i in range(n))


def test_a_few_files_changed_merge_into_the_saved_keyword_order_as_the_full_read_gives(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an ingest that added, re-chunked and removed files, the keyword rows made from the
    saved order plus those files' chunks equal what reading every row back gives, column for
    column; `rag ingest` takes that path (the full read is never called) and ends consistent."""
    d = tmp_path / "docs"
    d.mkdir()
    for name, n in (("b.md", 3), ("d.md", 2), ("f.md", 4), ("h.md", 1)):
        (d / name).write_text(_paragraphs(name[0], n))
    ingest([d], settings)
    index = Index(settings)
    chunks_before = len(index.docs.all_ids())
    (d / "a.md").write_text(_paragraphs("a", 2))  # added before every file
    (d / "e.md").write_text(_paragraphs("e", 3))  # added between two
    (d / "d.md").write_text(_paragraphs("d2", 5))  # re-chunked: more chunks
    (d / "h.md").unlink()  # removed, the last file
    seen: list[set[str] | None] = []

    def record(self: Index, changed: set[str] | None = None) -> int:
        seen.append(changed)
        return 0

    monkeypatch.setattr(Index, "rebuild_keyword", record)
    ingest([d], settings, prune=True)  # the store changes; the keyword index keeps the old order
    monkeypatch.undo()
    (touched,) = seen
    assert touched is not None and {Path(p).name for p in touched} == {"a.md", "e.md", "d.md", "h.md"}
    index = Index(settings)
    merged = index.keyword.merged_rows(index.docs, touched)
    full = index.docs.keyword_rows(index.keyword.known_digests())
    assert merged is not None and len(merged.ids) != chunks_before
    assert merged.ids == full.ids and merged.groups == full.groups and merged.digests == full.digests
    known = index.keyword.known_digests()
    for text, whole, digest in zip(merged.texts, full.texts, merged.digests, strict=True):
        # a text is left out only where the saved index holds it (the full read, reading most
        # texts anyway, gives them all)
        assert (text is None and digest in known) or text == whole
    # Named too few files, the count does not add up: the caller reads it all.
    assert index.keyword.merged_rows(index.docs, {sorted(touched)[0]}) is None
    index.rebuild_keyword(touched)
    assert _consistent(Index(settings)) == len(full.ids)

    # `rag ingest` merges: one more file, with the full read made to fail.
    (d / "c.md").write_text(_paragraphs("c", 2))
    from core.docstore import DocStore

    def no_full_read(*_: object) -> None:
        raise AssertionError("the full keyword order was read")

    monkeypatch.setattr(DocStore, "keyword_rows", no_full_read)
    assert ingest([d], settings).count("added") == 1
    monkeypatch.undo()
    n = _consistent(Index(settings))
    index = Index(settings)
    index.keyword.load()
    assert index.keyword.ids == index.docs.keyword_rows(index.keyword.known_digests()).ids and n > 0
    hits = retrieve("the c note part 1", settings, k=3, plan=Plan(mode="bm25")).hits
    assert hits and Path(hits[0].record.source).name == "c.md"


def test_the_saved_keyword_order_is_not_merged_where_it_cannot_be_trusted(
        tmp_path: Path, settings: Settings) -> None:
    from core.keyword import SOURCES_FILE
    from core.types import Record

    d = _corpus(tmp_path)
    ingest([d], settings)
    index = Index(settings)
    a = str(d / "a.md")
    assert index.keyword.merged_rows(index.docs, {a}) is not None
    # a record that is not a file's chunk (a derived layer's)
    index.docs._insert([Record("derived-1", "a summary of everything", "", kind="summary")])
    index.docs.conn.commit()
    assert index.keyword.merged_rows(index.docs, {a}) is None
    index.rebuild_keyword()  # read whole: the derived record is ungrouped in the saved order now
    assert index.keyword.merged_rows(index.docs, {a}) is None
    # an index saved before its order was
    index.docs.conn.execute("DELETE FROM records WHERE id='derived-1'")
    index.docs.conn.commit()
    index.rebuild_keyword()
    assert index.keyword.merged_rows(index.docs, {a}) is not None
    (index.keyword.path / SOURCES_FILE).unlink()
    assert index.keyword.merged_rows(index.docs, {a}) is None


def test_changed_chunk_settings_chunk_the_files_again(tmp_path: Path, settings: Settings) -> None:
    """A changed chunk.size had found every file unchanged and changed nothing. The files are
    now chunked again, with a notice, and the next run with the same settings is a no-op."""
    d = _corpus(tmp_path)
    (d / "long.md").write_text("# Long\n\n" + " ".join(f"Sentence {i} is about rivers." for i in range(60)))
    ingest([d], settings)
    before = [r for r in Index(settings).docs.iter_records() if r.source.endswith("long.md")]
    small = settings.model_copy(update={"chunk": settings.chunk.model_copy(update={"size": 40})})
    notes: list[str] = []
    r = ingest([d], small, notice=notes.append)
    assert r.count("changed") == 4 and r.count("unchanged") == 0
    assert notes and f"chunk.size {settings.chunk.size} -> 40" in notes[0]
    index = Index(small)
    after = [r for r in index.docs.iter_records() if r.source.endswith("long.md")]
    assert len(after) > len(before)
    _consistent(index)
    again: list[str] = []
    r = ingest([d], small, notice=again.append)
    assert r.count("unchanged") == 4 and not again
