"""Finding the files to ingest: folders recursively, symlink loops detected, unsupported
and hidden files skipped. Odd entries are reported (a `Found` with an error) and skipped
while the rest is found: names that are not valid UTF-8 (the index stores paths as
UTF-8 text), and symbolic links whose target lies outside the folder being walked
(unless `follow_external_links`)."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Found:
    path: Path | None
    error: str | None = None
    name: str = ""


def printable(path: str | os.PathLike[str]) -> str:
    """The path as text that can be printed and stored: bytes that are not UTF-8 (which
    Python decodes to lone surrogates) are shown as `\\xNN`."""
    s = os.fspath(path)
    try:
        return os.fsencode(s).decode("utf-8", "backslashreplace")
    except UnicodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _valid_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_name(path: str, what: str = "file") -> Found:
    shown = printable(path)
    return Found(None, f"{shown}: {what} name is not valid UTF-8 (undecodable bytes shown as \\xNN), "
                       "skipped; rename it to UTF-8 (e.g. with convmv) to index it", shown)


def _outside(link: str, top: Path) -> Found:
    shown = printable(link)
    return Found(None, f"{shown}: symbolic link points outside {printable(top)}, skipped; "
                       "set ingest.follow_external_links = true to index it", shown)


def _inside(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


class _Walk:
    """One `discover` call: what was found so far, and which resolved paths were seen."""

    def __init__(self, exts: set[str], follow_external_links: bool) -> None:
        self.exts, self.follow = exts, follow_external_links
        self.out: list[Found] = []
        self.seen: set[str] = set()
        # files a folder holds of types not in `exts`, by suffix (how a walk skips them: silently
        # left out, a folder of .pptx looked indexed)
        self.skipped: Counter[str] = Counter()

    def error(self, path: str | os.PathLike[str], message: str) -> None:
        self.out.append(Found(None, f"{printable(path)}: {message}", printable(path)))

    def add(self, rp: Path) -> None:
        if not _valid_name(str(rp)):
            self.out.append(_bad_name(str(rp)))
        elif str(rp) not in self.seen:
            self.seen.add(str(rp))
            self.out.append(Found(rp, name=str(rp)))

    def folder(self, p: Path) -> None:
        top = p.resolve()
        if not _valid_name(str(top)):
            self.out.append(_bad_name(str(top), "folder"))
            return
        visited: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(p, followlinks=True):
            st = os.stat(root)
            key = (st.st_dev, st.st_ino)
            if key in visited:
                self.error(root, "symbolic link loop, skipped")
                dirs[:] = []
                continue
            visited.add(key)
            dirs[:] = [d for d in sorted(dirs) if not d.startswith(".") and self._enter(Path(root) / d, top)]
            for f in sorted(files):
                if f.startswith("."):
                    continue
                if Path(f).suffix.lower() in self.exts:
                    self._file(Path(root) / f, top)
                else:
                    self.skipped[Path(f).suffix.lower() or "(no extension)"] += 1

    def _enter(self, dp: Path, top: Path) -> bool:
        if not _valid_name(str(dp)):
            self.out.append(_bad_name(str(dp), "folder"))
            return False
        if not self.follow and dp.is_symlink() and not _inside(dp.resolve(), top):
            self.out.append(_outside(str(dp), top))
            return False
        return True

    def _file(self, fp: Path, top: Path) -> None:
        try:
            rp = fp.resolve(strict=True)
        except (OSError, RuntimeError):
            self.error(fp, "broken or looping symbolic link")
            return
        if not self.follow and not _inside(rp, top):
            self.out.append(_outside(str(fp), top))
        else:
            self.add(rp)


def discover(paths: list[Path], extensions: list[str], *, follow_external_links: bool = False,
             skipped: Counter[str] | None = None) -> list[Found]:
    """Files under `paths` with one of `extensions`, each once (by resolved path), plus an
    error entry for each thing skipped that the user would expect to be indexed; `skipped`
    counts the folders' other files by suffix."""
    walk = _Walk({e.lower() for e in extensions}, follow_external_links)
    if skipped is not None:
        walk.skipped = skipped
    for p in paths:
        if not p.exists() and not p.is_symlink():
            walk.error(p, "no such file or folder; check the path")
        elif p.is_symlink() and not p.exists():
            walk.error(p, "broken symbolic link")
        elif p.is_file():
            walk.add(p.resolve())
        else:
            walk.folder(p)
    return walk.out


def file_hash(path: Path, data: bytes | None = None) -> str:
    """SHA-256 of the file's content; of `data` (its bytes, already read) when given."""
    if data is not None:
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
