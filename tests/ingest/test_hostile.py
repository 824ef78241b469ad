"""Hostile or odd input: file names that are not UTF-8, zip bombs, endless PDFs, symlinks
out of the folder, files rewritten while they are ingested, and huge plain-text files."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from core.errors import LoaderError
from core.index import Index
from core.settings import ChunkSettings, IngestSettings, Settings
from ingest.discover import discover
from ingest.doc import LoadedDoc
from ingest.loaders import load
from ingest.pipeline import ingest

EXTS = IngestSettings().extensions


def _raw_file(folder: Path, name: bytes, content: bytes) -> None:
    """A file whose name is raw bytes (not necessarily UTF-8), as another program may write it."""
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


# 1. file names that are not valid UTF-8


def test_non_utf8_names_are_reported_and_the_rest_indexed_on_every_run(
    tmp_path: Path, settings: Settings
) -> None:
    d = tmp_path / "names"
    d.mkdir()
    (d / "good.md").write_text("A note about lighthouses and their keepers.")
    _raw_file(d, b"bad\xff.txt", b"Latin-1 named file about harbours.")
    os.mkdir(os.fsencode(d) + b"/sub\xfe")
    _raw_file(d, b"sub\xfe/inner.md", b"Inside a folder whose name is not UTF-8.")

    for run in range(2):
        r = ingest([d], settings)
        failed = {f.path: f.error or "" for f in r.failed}
        assert r.count("added" if run == 0 else "unchanged") == 1, r.files
        assert len(failed) == 2, failed
        bad_file = next(p for p in failed if p.endswith("bad\\xff.txt"))
        bad_dir = next(p for p in failed if p.endswith("sub\\xfe"))
        assert "not valid UTF-8" in failed[bad_file] and "bad\\xff.txt" in failed[bad_file]
        assert "folder name" in failed[bad_dir]
        for p, e in failed.items():  # printable and storable: no lone surrogates left
            p.encode("utf-8")
            e.encode("utf-8")
    index = Index(settings)
    assert [Path(p).name for p in index.docs.files()] == ["good.md"]


# 2. size limits on what a file inflates to


def _docx(path: Path, padding: int = 0) -> Path:
    """A real DOCX; `padding` spaces inside an XML comment of word/document.xml (what a zip
    bomb does: tiny on disk, huge when inflated, and read by the parser)."""
    import docx

    d = docx.Document()
    d.add_heading("Harbour report", level=1)
    d.add_paragraph("The harbour master logged twelve ships.")
    buf = io.BytesIO()
    d.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml" and padding:
                head, sep, tail = data.partition(b"?>")
                data = head + sep + b"<!--" + b" " * padding + b"-->" + tail
            out.writestr(info.filename, data)
    return path


def test_docx_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    ok = load(_docx(tmp_path / "ok.docx"), IngestSettings())
    assert "twelve ships" in ok.text
    bomb = _docx(tmp_path / "bomb.docx", padding=8_000_000)
    assert bomb.stat().st_size < 200_000  # under every file-size limit
    with pytest.raises(LoaderError) as e:
        load(bomb, IngestSettings())
    assert "bomb.docx" in str(e.value) and "ingest.max_compression_ratio" in str(e.value)
    with pytest.raises(LoaderError) as e:
        load(bomb, IngestSettings(max_uncompressed_mb=5, max_compression_ratio=1e9))
    assert "ingest.max_uncompressed_mb" in str(e.value) and "MB" in str(e.value)
    doc = load(bomb, IngestSettings(max_uncompressed_mb=100, max_compression_ratio=1e9))
    assert "twelve ships" in doc.text  # the limits were the only thing in the way


def _pdf(path: Path, n_pages: int) -> Path:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path))
    for i in range(1, n_pages + 1):
        c.drawString(72, 720, f"Page {i} of the logbook: the tide was recorded at noon as usual.")
        c.showPage()
    c.save()
    return path


def test_pdf_page_cap_keeps_the_pages_read_and_warns(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "long.pdf", 5)
    events: list[tuple[str, int]] = []
    doc = load(pdf, IngestSettings(ocr="never", max_pdf_pages=3), progress=lambda e, n: events.append((e, n)))
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert "Page 3 of the logbook" in doc.text and "Page 4" not in doc.text
    cut = [w for w in doc.warnings if "read 3 of 5 pages" in w and "raise ingest.max_pdf_pages" in w]
    assert cut, doc.warnings
    assert ("pages_total", 3) in events and sum(n for e, n in events if e == "page") == 3


def test_pdf_time_budget_keeps_the_pages_read_and_warns(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "slow.pdf", 4)
    doc = load(pdf, IngestSettings(ocr="never", max_file_seconds=0))
    assert [p.number for p in doc.pages] == [1]  # the first page is always read
    cut = [w for w in doc.warnings if "read 1 of 4 pages" in w and "raise ingest.max_file_seconds" in w]
    assert cut, doc.warnings
    full = load(pdf, IngestSettings(ocr="never"))
    assert [p.number for p in full.pages] == [1, 2, 3, 4] and not full.warnings


# 3. symbolic links that leave the folder


def test_symlinks_out_of_the_folder_are_skipped_unless_allowed(tmp_path: Path) -> None:
    d, outside = tmp_path / "notes", tmp_path / "elsewhere"
    (outside / "sub").mkdir(parents=True)
    d.mkdir()
    (d / "good.md").write_text("inside")
    (outside / "secret.md").write_text("outside")
    (outside / "sub" / "deep.md").write_text("outside, deeper")
    (d / "link.md").symlink_to(outside / "secret.md")
    (d / "linkdir").symlink_to(outside / "sub", target_is_directory=True)
    (d / "alias.md").symlink_to(d / "good.md")  # inside the folder: fine (found once)
    (d / "self").symlink_to(d, target_is_directory=True)  # a loop inside: still detected

    found = discover([d], EXTS)
    assert [f.path for f in found if f.path] == [(d / "good.md").resolve()]
    errors = {Path(f.name).name: f.error or "" for f in found if f.path is None}
    assert set(errors) == {"link.md", "linkdir", "self"}, errors
    for name in ("link.md", "linkdir"):
        assert f"points outside {d.resolve()}" in errors[name]
        assert "ingest.follow_external_links = true" in errors[name]
    assert "loop" in errors["self"]

    allowed = discover([d], EXTS, follow_external_links=True)
    assert {f.path for f in allowed if f.path} == {
        (d / "good.md").resolve(), (outside / "secret.md").resolve(), (outside / "sub" / "deep.md").resolve()}


# 4. a file rewritten while it is ingested


def test_file_rewritten_during_ingest_is_stored_with_the_hash_of_the_text_indexed(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.pipeline as pipeline

    d = tmp_path / "live"
    d.mkdir()
    f = d / "log.md"
    before = b"# Log\n\nThe ferry left at seven with forty passengers.\n"
    after = b"# Log\n\nThe ferry was cancelled because of the storm.\n"
    f.write_bytes(before)
    real_load = pipeline.load

    def rewritten_first(*a, **kw):  # type: ignore[no-untyped-def]
        f.write_bytes(after)  # another program saves the file after it was hashed
        return real_load(*a, **kw)

    monkeypatch.setattr(pipeline, "load", rewritten_first)
    r = ingest([d], settings)
    assert r.count("added") == 1
    index = Index(settings)
    entry = index.docs.files()[str(f.resolve())]
    text = " ".join(rec.text for rec in index.docs.iter_records())
    assert entry.hash == hashlib.sha256(before).hexdigest()
    assert "forty passengers" in text and "storm" not in text

    monkeypatch.setattr(pipeline, "load", real_load)
    r = ingest([d], settings)  # the file on disk differs from what was indexed: it is re-read
    assert r.count("changed") == 1
    text = " ".join(rec.text for rec in Index(settings).docs.iter_records())
    assert "storm" in text and "forty passengers" not in text


# 5. huge plain-text files: the work grows linearly with the text


def _unit_kind_reads(monkeypatch: pytest.MonkeyPatch, n_lines: int) -> int:
    """How often chunking looks at a unit's kind for a file of `n_lines` heading lines."""
    import ingest.chunking as chunking

    reads = [0]

    class Counted(chunking.Unit):
        def __getattribute__(self, name: str) -> object:
            if name == "kind":
                reads[0] += 1
            return object.__getattribute__(self, name)

    monkeypatch.setattr(chunking, "Unit", Counted)
    text = "".join(f"# line {i} some words\n" for i in range(n_lines))
    records = chunking.chunk_document(LoadedDoc(text=text, title="log"), "log.txt", ChunkSettings())
    assert records and records[-1].text.endswith(f"line {n_lines - 1} some words")
    return reads[0]


def test_a_file_of_heading_lines_is_chunked_with_work_linear_in_its_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each heading used to rescan the whole group of headings before it: n^2 / 2 reads.
    small, double = _unit_kind_reads(monkeypatch, 2000), _unit_kind_reads(monkeypatch, 4000)
    assert small <= 10 * 2000, small
    assert double <= 2.2 * small, (small, double)


def test_a_heading_with_a_long_run_of_spaces_does_not_hang_the_parser(tmp_path: Path) -> None:
    # The heading pattern backtracked cubically on such a line (5,000 spaces: over a minute);
    # run in a child process so a regression fails by its timeout instead of hanging the suite.
    import subprocess
    import sys

    code = (
        "from core.settings import ChunkSettings\n"
        "from ingest.chunking import chunk_document\n"
        "from ingest.doc import LoadedDoc\n"
        "text = '# Tide ' + ' ' * 200_000 + 'table ##\\n\\nHigh water at noon.'\n"
        "r = chunk_document(LoadedDoc(text=text, title='t'), 's', ChunkSettings())\n"
        "print(repr(r[-1].title[-30:]))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("table'")  # the closing '##' stripped, the text kept


def test_ingest_skips_links_leaving_the_folder_unless_the_setting_allows(tmp_path: Path) -> None:
    from core.index import Index
    from core.settings import load_settings
    from ingest.pipeline import ingest

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("The vault code is swordfish.\n")
    d = tmp_path / "docs"
    d.mkdir()
    (d / "own.md").write_text("Our own note about tea.\n")
    (d / "link.md").symlink_to(outside / "secret.md")
    s = load_settings(index_dir=tmp_path / "i1")
    r = ingest([d], s)
    assert r.count("added") == 1 and "points outside" in (r.failed[0].error or "")
    assert "swordfish" not in " ".join(x.text for x in Index(s).docs.iter_records())
    s2 = load_settings(index_dir=tmp_path / "i2")
    s2.ingest.follow_external_links = True
    assert ingest([d], s2).count("added") == 2
