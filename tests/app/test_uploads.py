"""Uploaded files: names sanitised, only accepted formats under the size limit, written only
inside <index_dir>/uploads/."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.uploads import Upload, accepted_types, sanitise_name, save_uploads, upload_dir
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
