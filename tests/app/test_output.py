"""app.output.stage_bars: the one `(stage, done, total)` progress display (`rag eval`,
`rag train-ranker`, the ranker self-training after `rag ingest`)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from app import output


def test_one_bar_per_stage_known_and_unknown_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buf, width=100, force_terminal=False), raising=False)
    with output.stage_bars(width=10) as cb:
        assert cb is not None
        cb("questions", 1, 4)
        cb("questions", 4, 4)  # done is the count so far when the total is known
        cb("index", 2, 0)
        cb("index", 3, 0)  # ... and an increment when it is not
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("questions  ") and " 4/4 " in lines[0]
    assert lines[1].startswith("index      ") and " 5/? " in lines[1]  # 2 + 3, total unknown


def test_disabled_bars_give_no_callback() -> None:
    with output.stage_bars(enabled=False) as cb:
        assert cb is None
