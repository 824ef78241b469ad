"""Finding the files to ingest: folders recursively, symlink loops detected, unsupported
and hidden files skipped."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Found:
    path: Path | None
    error: str | None = None
    name: str = ""


def discover(paths: list[Path], extensions: list[str]) -> list[Found]:
    exts = {e.lower() for e in extensions}
    out: list[Found] = []
    seen: set[str] = set()
    for p in paths:
        if not p.exists() and not p.is_symlink():
            out.append(Found(None, f"{p}: no such file or folder; check the path", str(p)))
            continue
        if p.is_symlink() and not p.exists():
            out.append(Found(None, f"{p}: broken symbolic link", str(p)))
            continue
        if p.is_file():
            rp = p.resolve()
            if str(rp) not in seen:
                seen.add(str(rp))
                out.append(Found(rp, name=str(rp)))
            continue
        visited: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(p, followlinks=True):
            st = os.stat(root)
            key = (st.st_dev, st.st_ino)
            if key in visited:
                out.append(Found(None, f"{root}: symbolic link loop, skipped", root))
                dirs[:] = []
                continue
            visited.add(key)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.startswith(".") or Path(f).suffix.lower() not in exts:
                    continue
                fp = Path(root) / f
                try:
                    rp = fp.resolve(strict=True)
                except (OSError, RuntimeError):
                    out.append(Found(None, f"{fp}: broken or looping symbolic link", str(fp)))
                    continue
                if str(rp) not in seen:
                    seen.add(str(rp))
                    out.append(Found(rp, name=str(rp)))
    return out


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
