"""What the answer check (retrieval/check.py) did to an answer, worded for the person reading
it: `rag ask` and the chat UI show the same line. Read off the trace alone, with no import of
the pipeline: `rag ask` answered by `rag serve` prints it without loading retrieval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def check_note(trace: Sequence[tuple[str, Mapping[str, Any]]]) -> str | None:
    """The check's line from the (stage, detail) pairs of an answer's trace: how many sentences
    it removed, how many a search of their own kept, whether the answer fell back to quoting;
    None when it changed nothing."""
    check = next((d for stage, d in reversed(trace) if stage == "check"), None)
    found = sum(d.get("kept", 0) for stage, d in trace if stage == "claim_retry")
    if not check or not (check.get("dropped") or check.get("fallback") or found):
        return None
    note = f"{len(check.get('dropped', []))} unsupported sentence(s) removed"
    if found:
        note += f"; {found} kept, cited to a passage a search for it found"
    if check.get("fallback"):
        note += "; answer quoted from the passages instead"
    return note
