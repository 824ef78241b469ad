"""One writer per index at a time, across processes.

Every command that writes an index (ingest, prune, representations, RAPTOR, a UI upload,
train-ranker) holds an exclusive `fcntl` lock on `<index_dir>/write.lock` for the whole
write. Readers (search, ask, status) never take it: SQLite's own locking and the atomic
file swaps of the keyword index keep what they read consistent. The lock file holds who
has it (pid, what, since when) so the second writer is told, in one line, what it waits
for. The kernel drops the lock when the holder dies, so a kill -9 never leaves the index
locked; the stale holder text is simply overwritten by the next writer.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import IndexBusyError

LOCK_FILE = "write.lock"

# flock is per open file description, so two threads of one process (the UI's worker and
# its script thread) would both get it through separate opens; this registry makes another
# thread of the same process see the index as busy too, while the holding thread may nest
# (ingest rebuilds the keyword index, which takes the lock for readers that rebuild it).
@dataclass
class _Held:
    what: str
    thread: int
    depth: int = 1


_held: dict[str, _Held] = {}
_held_guard = threading.RLock()


@dataclass(frozen=True)
class Holder:
    pid: int
    what: str
    started: float

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"{self.what} is running (pid {self.pid}, started {since})"


def holder(index_dir: Path) -> Holder | None:
    """Who writes the index now, or None when nobody does."""
    path = Path(index_dir) / LOCK_FILE
    key = str(path.resolve()) if path.parent.exists() else str(path)
    with _held_guard:
        mine = _held.get(key)
    if mine is not None:
        return Holder(os.getpid(), mine.what, time.time())
    if not path.exists():
        return None
    try:
        with path.open("r+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read(f.read())
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def _read(text: str) -> Holder:
    try:
        d = json.loads(text)
        return Holder(int(d["pid"]), str(d["what"]), float(d["started"]))
    except (ValueError, KeyError, TypeError):
        return Holder(0, "another writer", time.time())


def _enter(key: str, index_dir: Path, what: str) -> bool:
    """Register this thread as the lock's holder in this process; True when it already holds it
    (a nested `write_lock`). Another thread of this process holding it: IndexBusyError."""
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(key)
        if held is not None and held.thread == me:
            held.depth += 1
            return True
        if held is not None:
            raise IndexBusyError(
                f"The index at {index_dir} is being written: {held.what} is running in this process; "
                "try again when it has finished.")
        _held[key] = _Held(what, me)
        return False


def _flock(fd: int, index_dir: Path, wait_s: float) -> None:
    """Take the exclusive file lock, waiting up to `wait_s` seconds; then IndexBusyError naming
    the writer that holds it (read from the lock file)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
                raise IndexBusyError(
                    f"The index at {index_dir} is being written: {_read(text).describe()}; "
                    "try again when it has finished, or use another RAG_INDEX_DIR."
                ) from None
            time.sleep(0.1)


@contextmanager
def write_lock(index_dir: Path, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the index's writer lock for the block. `what` names the work ("an ingest").
    Waits up to `wait_s` seconds for a running writer, then raises IndexBusyError naming it."""
    index_dir = Path(index_dir)
    if index_dir.exists() and not index_dir.is_dir():
        from core.errors import IndexError_

        raise IndexError_(f"{index_dir} is a file, not an index folder; point RAG_INDEX_DIR at a folder.")
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_FILE
    key = str(path.resolve())
    if _enter(key, index_dir, what):  # nested in the holding thread
        try:
            yield
        finally:
            with _held_guard:
                _held[key].depth -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, index_dir, wait_s)
            info = json.dumps({"pid": os.getpid(), "what": what, "started": time.time()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        with _held_guard:
            _held.pop(key, None)
