"""Ending a command's process without the interpreter's teardown.

When `rag search`, `rag ask` or `rag ingest` has printed its result, Python still tears down
every module and object it loaded before the process ends: 0.2 s of a cold `rag search` over a
100k-chunk index (chromadb's modules, NumPy, the tokenizer's tables), while the user waits for
the prompt. `quick_exit` ends the process with `os._exit` instead, after closing what holds
state outside the process: each open SQLite connection (its write-ahead log is folded back into
the database, as a normal close does) and Chroma's clients (stopped, as at a normal exit: the
vector segment writes what it holds). What must be closed registers with `close_at_exit`,
which holds it weakly: registering keeps nothing alive.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from typing import Any, NoReturn

log = logging.getLogger(__name__)

_closers: list[weakref.ref[Any]] = []
_PRUNE_AT = 256  # a long-lived process (the UI, `rag serve`) opens many connections: drop dead refs


def close_at_exit(target: Any) -> None:
    """Close `target` (an object with `close()`, or a function to call) before `quick_exit` ends
    the process, if it is still alive then; the last registered is closed first."""
    if len(_closers) >= _PRUNE_AT:
        _closers[:] = [r for r in _closers if r() is not None]
    if not any(r() is target for r in _closers):
        _closers.append(weakref.ref(target))


def close_all() -> None:
    """Close everything registered that is still alive; one that fails is logged and the rest
    are still closed."""
    while _closers:
        target = _closers.pop()()
        if target is None:
            continue
        try:
            target.close() if hasattr(target, "close") else target()
        except Exception as e:  # noqa: BLE001 - the process is ending: close what else we can
            log.debug("closing %r at exit: %s", target, e)


def quick_exit(code: int) -> NoReturn:
    """Close what is registered, flush the output, and end the process with `code`."""
    close_all()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)
