"""The one query path (retrieval/pipeline.py) on a small real index: its stages run in order
over one state, a caller leaves stages out by name (unknown names are refused), `rag eval`
configurations compose pipelines that way, and a caller's own plan (queries, filter, merge,
retrievers) is what gets searched."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.index import Index
from core.settings import Settings, load_settings
from eval import configs as cfgs
from eval.runners import run_query
from ingest.pipeline import ingest
from retrieval.pipeline import retrieve
from retrieval.state import FIRST_STAGE, Plan, Query, QueryState
from tests.files import write_docs

DOCS = {
    "press.md": "# French press\n\nSteep coarse coffee for four minutes, then press the plunger slowly.\n\n"
    + "The French press needs a coarse, even grind. " * 30,
    "espresso.md": "# Espresso\n\nEspresso machines push hot water through finely ground coffee at pressure.",
    "milk.md": "# Milk\n\nSteam milk to about sixty degrees for a silky latte texture.",
    "kettle.md": "# Kettles\n\nAn electric kettle boils water quickly. Descale it monthly with vinegar.",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("pipeline")
    docs = write_docs(root / "docs", DOCS)
    s = load_settings(index_dir=str(root / "index"), chunk={"size": 60, "overlap": 0})
    ingest([docs], s)
    return s


def _stages(trace: list) -> list[str]:  # type: ignore[type-arg]
    return [t.stage for t in trace]


def test_stages_run_in_order_over_one_state(settings: Settings) -> None:
    res = retrieve("how long to steep a french press", settings, k=3)
    order = [s for s in _stages(res.trace) if s in ("embed", "dense", "bm25", "fuse", "parents", "coarse",
                                                     "window")]
    # dedupe, keeping the first occurrence: one query, one entry per stage
    assert order == ["embed", "dense", "bm25", "fuse", "parents", "coarse", "window"]
    assert Path(res.hits[0].record.source).name == "press.md"
    assert res.query_vector is not None and len(res.hits) == 3


def test_a_caller_leaves_stages_out_by_name(settings: Settings) -> None:
    plain = retrieve("how long to steep a french press", settings, k=3, skip=FIRST_STAGE | {"window"})
    stages = set(_stages(plain.trace))
    assert not stages & {"coarse", "ltr", "window"} and {"dense", "bm25", "fuse"} <= stages
    assert all("coarse" not in h.scores for h in plain.hits)
    assert all("window" not in h.record.extra for h in plain.hits)  # the chunks themselves


def test_an_unknown_stage_name_is_refused(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="coarse.*ltr"):  # the message lists the stages that can go
        retrieve("coffee", settings, skip={"rerank"})
    with pytest.raises(ConfigError, match="rerank"):
        QueryState("coffee", settings, Index(settings), 3, skip={"rerank"})


def test_a_plan_is_what_gets_searched(settings: Settings) -> None:
    """The caller's queries are searched, not the question; `mode` picks the retrievers; the
    filter applies to both of them."""
    plan = Plan([Query("steam milk latte")], mode="bm25")
    res = retrieve("an unrelated question text", settings, k=2, plan=plan)
    assert Path(res.hits[0].record.source).name == "milk.md"
    assert "dense" not in _stages(res.trace)
    only = str(next(p for p in Index(settings).docs.files() if p.endswith("kettle.md")))
    filtered = retrieve("coffee", settings, k=3, plan=Plan(where={"source": only}))
    assert filtered.hits and {h.record.source for h in filtered.hits} == {only}


def test_eval_configurations_compose_the_pipeline(settings: Settings) -> None:
    """`rag eval` runs each configuration through the same pipeline, leaving out its stages."""
    q = "how long to steep a french press"
    index = Index(settings)
    hybrid = run_query(cfgs.REGISTRY["hybrid"], q, cfgs.apply(settings, cfgs.REGISTRY["hybrid"].overrides),
                       index, 3)
    sbert_cfg = cfgs.REGISTRY["hybrid+sbert"]
    sbert = run_query(sbert_cfg, q, cfgs.apply(settings, sbert_cfg.overrides), index, 3)
    assert "coarse" not in _stages(hybrid.trace) and "coarse" in _stages(sbert.trace)
    assert "ltr" not in _stages(sbert.trace)
    assert Path(sbert.hits[0].record.source).name == "press.md"


def test_a_cold_search_opens_the_store_while_the_question_is_encoded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new process's first dense search finds the store opened, and its graph loaded, by a
    thread started before the question was encoded (given the index's vector dimension); a
    keyword-only search starts none."""
    import threading

    from core.store import ChromaStore

    started: list[tuple[int | None, threading.Thread | None]] = []
    real = ChromaStore.prefetch

    def spy(self: ChromaStore, dim: int | None) -> threading.Thread | None:
        t = real(self, dim)
        started.append((dim, t))
        return t

    monkeypatch.setattr(ChromaStore, "prefetch", spy)
    retrieve("how long to steep a french press", settings, k=3, index=Index(settings), plan=Plan(mode="bm25"))
    assert started == []
    index = Index(settings)
    res = retrieve("how long to steep a french press", settings, k=3, index=index)
    assert [d for d, _ in started] == [384]
    thread = started[0][1]
    assert thread is not None
    thread.join(timeout=1.0)  # it released the store to the dense search: at most moments left
    assert not thread.is_alive()
    assert Path(res.hits[0].record.source).name == "press.md"
    retrieve("descale a kettle", settings, k=3, index=index)  # the store is open: nothing started
    assert len(started) == 2 and started[1][1] is None
