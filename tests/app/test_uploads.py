"""Uploaded files: names sanitised, only accepted formats under the size limit, written only
inside <index_dir>/uploads/."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.uploads import MAX_NAME_BYTES, Upload, accepted_types, sanitise_name, save_uploads, upload_dir
from core.settings import Settings, load_settings


@pytest.mark.parametrize(("name", "safe"), [
    ("notes.md", "notes.md"),
    ("../../etc/passwd.md", "passwd.md"),
    ("..\\..\\win\\evil.txt", "evil.txt"),
    ("/abs/path/report.pdf", "report.pdf"),
    ("..", "upload"),
    (".hidden.md", "hidden.md"),
    ("a b;rm -rf $(x).md", "a b_rm -rf _x.md"),
    ("bad\x00name\n.txt", "badname.txt"),
    ("绿茶 指南.txt", "绿茶 指南.txt"),
    ("ＦＵＬＬ.md", "FULL.md"),
    ("x" * 300 + ".docx", "x" * 115 + ".docx"),
])
def test_sanitise_name(name: str, safe: str) -> None:
    assert sanitise_name(name) == safe
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")


def test_save_uploads_checks_type_and_size_and_stays_inside(tmp_path: Path) -> None:
    settings = load_settings(index_dir=tmp_path / "idx", ui={"max_upload_mb": 0.001})  # ~1 KB
    assert {".md", ".text", ".pdf", ".docx"} <= set(accepted_types(settings))
    files = [Upload("../../../escape.md", b"# Hi\n\nsmall"), Upload("tool.exe", b"MZ"),
             Upload("noext", b"x"), Upload("big.txt", b"x" * 5000), Upload("dir/ok.TXT", b"fine")]
    got = save_uploads(files, settings)
    folder = upload_dir(settings).resolve()
    assert [p.name for p in got.paths] == ["escape.md", "ok.TXT"]
    assert all(p.parent == folder for p in got.paths)
    assert sorted(p.name for p in folder.iterdir()) == ["escape.md", "ok.TXT"]
    assert not (tmp_path / "escape.md").exists() and not (tmp_path.parent / "escape.md").exists()
    assert len(got.errors) == 3
    assert got.errors[0].startswith("tool.exe: '.exe' files are not accepted; upload one of:")
    assert "no extension" in got.errors[1]
    assert "big.txt is 0.00 MB, over the 0.001 MB upload limit" in got.errors[2]
    # re-uploading replaces the file (the index then sees it as changed)
    save_uploads([Upload("escape.md", b"# Hi\n\nnew")], settings)
    assert (folder / "escape.md").read_bytes() == b"# Hi\n\nnew"


def test_upload_dir_is_beside_the_index(settings: Settings) -> None:
    assert upload_dir(settings) == settings.index_path / "uploads"


def test_long_names_are_cut_by_utf8_bytes_on_a_character_boundary(tmp_path: Path) -> None:
    cjk = "绿" * 120 + ".md"  # 363 bytes of UTF-8: over the 255-byte limit of file systems
    safe = sanitise_name(cjk)
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES and safe.endswith(".md")
    assert safe == "绿" * ((MAX_NAME_BYTES - 3) // 3) + ".md"
    mixed = sanitise_name("a" + "𠀀" * 100 + ".txt")  # 4-byte characters after an ASCII one
    assert mixed == "a" + "𠀀" * ((MAX_NAME_BYTES - 5) // 4) + ".txt"
    settings = load_settings(index_dir=tmp_path / "idx")
    got = save_uploads([Upload(cjk, b"# Tea\n\ngreen"), Upload(cjk, b"# Tea\n\nsecond")], settings)
    assert got.errors == []
    names = [p.name for p in got.paths]
    assert names[0] == safe and names[1].endswith("-2.md")
    assert all(len(n.encode("utf-8")) <= MAX_NAME_BYTES for n in names)
    assert [p.read_bytes() for p in got.paths] == [b"# Tea\n\ngreen", b"# Tea\n\nsecond"]


def test_names_that_sanitise_alike_in_one_batch_are_all_kept(tmp_path: Path) -> None:
    settings = load_settings(index_dir=tmp_path / "idx")
    files = [Upload("a/b.txt", b"one"), Upload("a\\b.txt", b"two"), Upload("x?.md", b"three"),
             Upload("x*.md", b"four"), Upload("X.md", b"five")]
    got = save_uploads(files, settings)
    assert got.errors == []
    assert [p.name for p in got.paths] == ["b.txt", "b-2.txt", "x.md", "x-2.md", "X-3.md"]
    assert [p.read_bytes() for p in got.paths] == [b"one", b"two", b"three", b"four", b"five"]
    # a later batch with the same name replaces the file, as documented
    again = save_uploads([Upload("b.txt", b"updated")], settings)
    assert [p.name for p in again.paths] == ["b.txt"]
    assert (upload_dir(settings) / "b.txt").read_bytes() == b"updated"
    assert (upload_dir(settings) / "b-2.txt").read_bytes() == b"two"


def test_a_file_that_cannot_be_written_does_not_stop_the_rest(tmp_path: Path) -> None:
    settings = load_settings(index_dir=tmp_path / "idx")
    folder = upload_dir(settings)
    (folder / "a.md").mkdir(parents=True)  # a folder where the file should go: rename fails
    got = save_uploads([Upload("a.md", b"# A"), Upload("b.md", b"# B")], settings)
    assert [p.name for p in got.paths] == ["b.md"] and (folder / "b.md").read_bytes() == b"# B"
    assert len(got.errors) == 1 and got.errors[0].startswith("a.md: could not be saved as")
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]  # no temporary file left


def test_temporary_files_are_unique_per_upload(tmp_path: Path) -> None:
    settings = load_settings(index_dir=tmp_path / "idx")
    folder = upload_dir(settings)
    folder.mkdir(parents=True)
    other = folder / ".note.md.part"  # another upload of note.md, still being written
    other.write_bytes(b"half of the other upload")
    got = save_uploads([Upload("note.md", b"# Note")], settings)
    assert got.errors == [] and (folder / "note.md").read_bytes() == b"# Note"
    assert other.read_bytes() == b"half of the other upload"
    assert sorted(p.name for p in folder.iterdir()) == [".note.md.part", "note.md"]
