"""End to end on a tiny BEIR set with the real parts (MiniLM, Chroma, bm25s): the corpus gets
its own cached index, chunk hits are aggregated to documents, reports hold every
configuration and the skipped input, and results.json loads in ranx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, load_settings
from eval import report
from eval.datasets import load_dataset, save_beir
from eval.evaluate import EvalResult, corpus_index, evaluate

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ["dense", "bm25", "hybrid"]

LONG = "\n\n".join(
    [
        "The espresso machine needs a pressure of nine bars to extract the coffee properly.",
        "A portafilter holds the ground coffee; tamp it evenly with about fifteen kilograms of force.",
        "Descale the espresso machine every month, because limescale blocks the boiler and the pump.",
        "Steam wands froth milk for cappuccino: purge the wand before and after every use.",
    ]
)
DOCS = {
    "espresso": ("Espresso machines", LONG),
    "tea": ("Green tea", "Green tea should be brewed with water at about eighty degrees for two minutes."),
    "bread": ("Sourdough", "A sourdough starter is fed with flour and water every day and kept warm."),
    "bikes": ("Bicycle care", "Oil the bicycle chain every few hundred kilometres and check tyre pressure."),
}
QUERIES = {
    "q1": "How often should I descale an espresso machine?",
    "q2": "water temperature for green tea",
    "q3": "how do I feed a sourdough starter",
    "q4": "this query has no judgement",
}
QRELS = {"q1": {"espresso": 1}, "q2": {"tea": 2}, "q3": {"bread": 1, "missing-doc": 1}, "q7": {"tea": 1}}


def _settings(root: Path) -> Settings:
    s = load_settings(index_dir=root / "user-index")
    s.chunk.size = 30  # the espresso document splits into several chunks
    return s


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("evalset")
    save_beir(root / "set", DOCS, QUERIES, QRELS)
    settings = _settings(root)
    ds = load_dataset(root / "set")
    result = evaluate(ds, settings, CONFIGS, name="tiny", cache_dir=root / "cache")
    paths = report.write(result, root / "reports" / "tiny")
    return {"root": root, "settings": settings, "result": result, "paths": paths}


def test_scores_and_skips(setup: dict[str, Any]) -> None:
    r: EvalResult = setup["result"]
    assert [c.name for c in r.configs] == CONFIGS
    assert r.level == "doc"
    assert set(r.queries) == {"q1", "q2", "q3"}
    c = r.issues.counts
    assert (c["qrels_unknown_docs"], c["qrels_unknown_queries"], c["queries_without_judgements"]) == (1, 1, 1)
    for name in CONFIGS:  # four clearly separated documents: every configuration ranks them right
        assert r.metrics[name]["mrr@10"] == pytest.approx(1.0), name
    dense = next(x for x in r.configs if x.name == "dense").latency()
    assert {"embed", "dense", "total"} <= set(dense)
    assert not (setup["root"] / "user-index").exists()  # the user's index is never touched


def test_chunk_hits_are_aggregated_to_documents_by_best_rank(setup: dict[str, Any]) -> None:
    from retrieval.pipeline import retrieve

    r: EvalResult = setup["result"]
    ds = load_dataset(setup["root"] / "set")
    target = corpus_index(ds, setup["settings"], setup["root"] / "cache")
    assert target.info["reused"] is True
    chunks = [
        x for x in target.index.docs.iter_records(("chunk",)) if target.doc_of_source(x.source) == "espresso"
    ]
    assert len(chunks) >= 2  # several chunks of one document ...
    dense = next(x for x in r.configs if x.name == "dense")
    run = dense.run["q1"]
    assert set(run) <= set(DOCS)  # ... scored as documents
    s = setup["settings"].model_copy(deep=True)
    s.search.mode, s.search.coarse, s.search.ltr = "dense", False, False
    chunked = s.model_copy(deep=True)
    chunked.search.window_tokens = 0  # chunk hits, not passage windows (which merge neighbours)
    raw = [target.doc_of(h) for h in retrieve(QUERIES["q1"], chunked, index=target.index, k=100).hits]
    assert len(raw) > len(set(raw))  # the raw list names a document more than once
    hits = retrieve(QUERIES["q1"], s, index=target.index, k=100).hits  # as the configuration ran
    docs = [target.doc_of(h) for h in hits]
    first: dict[str | None, int] = {}
    for rank, d in enumerate(docs, 1):
        first.setdefault(d, rank)
    assert run == {d: pytest.approx(1 / rank) for d, rank in first.items()}


def test_report_files_hold_every_configuration_and_the_skips(setup: dict[str, Any]) -> None:
    paths = setup["paths"]
    html, md = paths["html"].read_text(), paths["md"].read_text()
    data = json.loads(paths["json"].read_text())
    for name in CONFIGS:
        assert f"<td>{name}</td>" in html
        assert f"| {name} |" in md
        assert name in data["metrics"] and name in data["runs"] and name in data["latency_ms"]
    assert "data:image/png;base64," in html
    for key in ("qrels_unknown_docs", "qrels_unknown_queries", "queries_without_judgements"):
        assert f"| {key} | 1 |" in md
        assert data["skipped"][key]["count"] == 1
    assert "| dense |" in report.summary(setup["result"])


def test_results_json_loads_in_ranx(setup: dict[str, Any]) -> None:
    from ranx import Qrels, Run
    from ranx import evaluate as rx

    data = json.loads(setup["paths"]["json"].read_text())
    qrels = Qrels.from_dict(data["qrels"])
    run = Run.from_dict(data["runs"]["hybrid"])
    assert rx(qrels, run, "ndcg@10") == pytest.approx(data["metrics"]["hybrid"]["ndcg@10"])
    trec = Run.from_file(str(setup["paths"]["json"].parent / "runs" / "bm25.trec"), kind="trec")
    assert rx(qrels, trec, "mrr@10") == pytest.approx(data["metrics"]["bm25"]["mrr@10"])


def test_chunk_id_qrels_are_scored_directly(setup: dict[str, Any]) -> None:
    ds = load_dataset(setup["root"] / "set")
    target = corpus_index(ds, setup["settings"], setup["root"] / "cache")
    chunk = next(x for x in target.index.docs.iter_records(("chunk",)) if "Descale" in x.text)
    ds.qrels = {"q1": {chunk.id: 1}}
    r = evaluate(ds, setup["settings"], ["dense"], cache_dir=setup["root"] / "cache")
    assert r.level == "chunk"
    run = r.configs[0].run["q1"]
    assert chunk.id in run and not set(run) & set(DOCS)
    assert r.metrics["dense"]["recall@10"] == 1.0


def _rag(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_INDEX_DIR"] = str(cwd / "idx")
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_prints_the_table_and_writes_the_report(setup: dict[str, Any], tmp_path: Path) -> None:
    env_cwd = tmp_path
    p = _rag(
        "eval",
        str(setup["root"] / "set"),
        "--configs",
        "bm25,typo",
        "--name",
        "cli",
        "--limit",
        "2",
        "--reports-dir",
        str(tmp_path / "rep"),
        "--no-progress",
        cwd=env_cwd,
    )
    assert p.returncode == 0, p.stderr
    assert "| bm25 |" in p.stdout and "typo" in p.stderr
    assert (tmp_path / "rep" / "cli" / "index.html").exists()
    data = json.loads((tmp_path / "rep" / "cli" / "results.json").read_text())
    assert len(data["queries"]) == 2 and data["skipped"]["configs_unknown"]["count"] == 1


def test_cli_mistyped_path_is_one_clear_line(tmp_path: Path) -> None:
    p = _rag(
        "eval",
        "--corpus",
        str(tmp_path / "corpus.jsonl"),
        "--queries",
        "q.jsonl",
        "--qrels",
        "r.tsv",
        cwd=tmp_path,
    )
    assert p.returncode == 1
    assert "corpus file" in p.stderr and "does not exist" in p.stderr
    assert "Traceback" not in p.stderr


def test_folder_corpus_scores_file_stems(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is brewed at eighty degrees.\n")
    (docs / "bikes.txt").write_text("Oil the bicycle chain every few hundred kilometres.\n")
    (tmp_path / "q.jsonl").write_text(
        '{"_id": "1", "text": "bicycle chain oil"}\n{"_id": "2", "text": "green tea"}\n'
    )
    (tmp_path / "r.tsv").write_text("query-id\tcorpus-id\tscore\n1\tbikes\t1\n2\ttea\t1\n")
    ds = load_dataset(corpus=docs, queries=tmp_path / "q.jsonl", qrels=tmp_path / "r.tsv")
    r = evaluate(ds, _settings(tmp_path), ["bm25"], cache_dir=tmp_path / "cache")
    assert r.configs[0].run["1"] == {"bikes": 1.0} and r.metrics["bm25"]["ndcg@10"] == 1.0


def test_default_run_leaves_out_llm_configurations_and_counts_them(setup: dict[str, Any]) -> None:
    from eval import configs as cfgs

    ds = load_dataset(setup["root"] / "set")
    r = evaluate(ds, setup["settings"], None, limit=1, cache_dir=setup["root"] / "cache")
    ran = {c.name for c in r.configs}
    llm = {n for n, c in cfgs.REGISTRY.items() if c.uses_llm}
    assert {"bm25", "hybrid", "default"} <= ran and not ran & llm
    assert r.issues.counts["configs_not_default"] == len(cfgs.not_default()) >= len(llm)
    assert not any(any(c.llm_calls) for c in r.configs)  # no configuration that ran called the LLM


def test_a_moved_cache_folder_still_maps_hits_to_documents(setup: dict[str, Any]) -> None:
    """A copied or moved reports cache is reused (same key), but its index names the files
    where they were first written: hits must still map to the dataset's documents, not to
    None (which scored every query 0 without a word)."""
    import shutil

    ds = load_dataset(setup["root"] / "set")
    moved = setup["root"] / "moved-cache"
    shutil.copytree(setup["root"] / "cache", moved)
    target = corpus_index(ds, setup["settings"], moved)
    assert target.info["reused"] is True
    assert target.info["built_from"].startswith(str((setup["root"] / "cache").resolve()))
    sources = {x.source for x in target.index.docs.iter_records(("chunk",))}
    assert {target.doc_of_source(src) for src in sources} == set(DOCS)
    assert target.info["path"] == str(target.index.path) and str(moved) in target.info["path"]
    r = evaluate(ds, setup["settings"], ["bm25"], cache_dir=moved)
    assert r.metrics["bm25"]["mrr@10"] == pytest.approx(1.0)
    assert f"built from {target.info['built_from']}" in "\n".join(report._header(r))
    # the cache where it was built needs no remapping
    assert "built_from" not in corpus_index(ds, setup["settings"], setup["root"] / "cache").info
