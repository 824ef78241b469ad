"""Relevance feedback from the chat UI: thumbs up / down on an answer's sources, kept as
labelled (query, chunk_id, label) pairs in `<index_dir>/feedback.jsonl`, one JSON object a
line, appended as the user clicks:

    {"format": 1, "query": "How coarse for a French press?", "chunk_id": "f973f456a9bead6f705f78c5",
     "label": 1, "question": "and for a french press?", "source": "/docs/grind.md",
     "ts": "2025-01-01T12:00:00+0000"}

`label` is 1 (relevant, thumbs up), 0 (not relevant, thumbs down) or null (the user took the
vote back). `query` is the standalone question retrieval searched (a follow-up rewritten
with the chat history); `question` is what the user typed. A later line for the same
(query, chunk_id) replaces an earlier one. `load_feedback` returns the pairs in force,
`feedback_qrels` the same as BEIR-style qrels ({query: {chunk_id: label}}) for
`rag train-ranker`. Lines that are not valid JSON objects are skipped with a warning."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.settings import Settings

log = logging.getLogger(__name__)

FEEDBACK_FILE = "feedback.jsonl"
FORMAT = 1
_lock = threading.Lock()


@dataclass
class Feedback:
    query: str
    chunk_id: str
    label: int | None  # 1 relevant, 0 not relevant, None withdrawn
    question: str = ""
    source: str = ""
    ts: str = ""


def feedback_path(settings: Settings) -> Path:
    """Where the index at `settings.index_dir` keeps its feedback."""
    return settings.index_path / FEEDBACK_FILE


def record_feedback(path: Path, fb: Feedback) -> None:
    """Append one vote (thread-safe within the process; one short write per line)."""
    if fb.label not in (0, 1, None):
        raise ValueError(f"feedback label must be 0, 1 or None, not {fb.label!r}")
    if not fb.ts:
        fb.ts = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    line = json.dumps({"format": FORMAT, **asdict(fb)}, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, path.open("a", encoding="utf-8") as f:
        f.write(line)


def _parse(line: str) -> Feedback | None:
    d = json.loads(line)
    if not isinstance(d, dict):
        return None
    q, cid, label = d.get("query"), d.get("chunk_id"), d.get("label")
    if not isinstance(q, str) or not q.strip() or not isinstance(cid, str) or not cid:
        return None
    if label is not None and (isinstance(label, bool) or label not in (0, 1)):
        return None
    return Feedback(q, cid, None if label is None else int(label), str(d.get("question", "")),
                    str(d.get("source", "")), str(d.get("ts", "")))


def load_feedback(path: Path) -> list[Feedback]:
    """The votes in force: the last one per (query, chunk_id), withdrawn ones dropped, in the
    order they were first given. A missing file is no feedback."""
    if not path.exists():
        return []
    latest: dict[tuple[str, str], Feedback] = {}
    bad = 0
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fb = _parse(line)
        except json.JSONDecodeError:
            fb = None
        if fb is None:
            bad += 1
            log.debug("%s line %d is not a feedback record", path, n)
            continue
        latest[(fb.query, fb.chunk_id)] = fb
    if bad:
        log.warning("%s: skipped %d malformed line(s)", path, bad)
    return [fb for fb in latest.values() if fb.label is not None]


def feedback_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR-style qrels from the feedback: {query: {chunk_id: 1 | 0}}."""
    out: dict[str, dict[str, int]] = {}
    for fb in load_feedback(path):
        assert fb.label is not None
        out.setdefault(fb.query, {})[fb.chunk_id] = fb.label
    return out
