"""Feedback votes from the chat UI: the JSONL file beside the index and its loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.feedback import Feedback, feedback_path, feedback_qrels, load_feedback, record_feedback
from core.settings import Settings


def test_votes_round_trip_latest_wins_and_withdrawals_drop(settings: Settings) -> None:
    path = feedback_path(settings)
    assert path == settings.index_path / "feedback.jsonl"
    assert load_feedback(path) == [] and feedback_qrels(path) == {}
    record_feedback(path, Feedback("how coarse for a french press?", "c1", 1, "and french press?", "/d/a.md"))
    record_feedback(path, Feedback("how coarse for a french press?", "c2", 1))
    record_feedback(path, Feedback("how coarse for a french press?", "c2", 0))  # changed their mind
    record_feedback(path, Feedback("green tea temperature?", "c3", 1))
    record_feedback(path, Feedback("green tea temperature?", "c3", None))  # took the vote back
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 5 and lines[0]["format"] == 1 and lines[0]["ts"]
    assert lines[0] | {"ts": ""} == {
        "format": 1, "query": "how coarse for a french press?", "chunk_id": "c1", "label": 1,
        "question": "and french press?", "source": "/d/a.md", "ts": ""}
    got = load_feedback(path)
    assert [(f.query, f.chunk_id, f.label) for f in got] == [
        ("how coarse for a french press?", "c1", 1), ("how coarse for a french press?", "c2", 0)]
    assert feedback_qrels(path) == {"how coarse for a french press?": {"c1": 1, "c2": 0}}


def test_malformed_lines_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join([
        "not json", "[1, 2]", json.dumps({"query": "", "chunk_id": "x", "label": 1}),
        json.dumps({"query": "q", "chunk_id": "x", "label": 5}),
        json.dumps({"query": "q", "chunk_id": "x", "label": True}),
        json.dumps({"query": "q", "chunk_id": "ok", "label": 0}), "",
    ]) + "\n")
    got = load_feedback(path)
    assert [(f.query, f.chunk_id, f.label) for f in got] == [("q", "ok", 0)]
    assert "skipped 5 malformed" in caplog.text


def test_bad_label_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label"):
        record_feedback(tmp_path / "f.jsonl", Feedback("q", "c", 2))
