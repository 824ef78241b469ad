"""`--trace` lines for routing and translation: the route with its scores, every query, and
the candidates each query retrieved shown by file location."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.trace_view import Locator, format_entry
from core.llm import get_llm
from core.types import TraceEntry
from retrieval.pipeline import plan_question, retrieve
from retrieval.state import Query
from tests.retrieval.routing_corpus import build, settings_for


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("trace_view"))


def test_route_queries_and_candidates_are_readable(dirs: dict[str, Path]) -> None:
    s = settings_for(dirs, collections=True)
    s.route.collections = s.route.collections[:1]  # one collection: no LLM call for the route
    trace: list[TraceEntry] = []
    t = plan_question("What grind does espresso need?", "none", s, get_llm(s), trace)
    t.queries.append(Query("steaming milk", "variant"))  # a second query, as multi-query would add
    trace += retrieve(t.question, t.settings, plan=t.plan()).trace
    loc = Locator(s, trace)
    text = {e.stage: "\n".join(format_entry(e, loc) or []) for e in trace}
    assert "collection=coffee" in text["route"] and "templates:" in text["route"]
    assert "[original] What grind does espresso need?" in text["translate"]
    cand = text["candidates"]
    assert "[original] What grind does espresso need?" in cand and "[variant] steaming milk" in cand
    assert "1. espresso.md [" in cand and "1. milk.md [" in cand  # ids resolved to locations
    assert "calls=0" in text["llm_calls"]
    assert format_entry(TraceEntry("fuse", 1.0, {"n": 3}), loc) is None
