"""Writing a test's small corpus to disk."""

from __future__ import annotations

from pathlib import Path


def write_docs(folder: Path, files: dict[str, str]) -> Path:
    """Each `name: text` of `files` as a UTF-8 file in `folder` (made if missing); the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
