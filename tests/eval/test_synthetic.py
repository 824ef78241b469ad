"""Synthetic questions: the cleaning/filtering rules on fixed replies, and (slow) a real
set written by the embedded SmolLM2 over a tiny index, saved, reused and evaluated at
chunk level. Plus the docstring set built from this Python's own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import RagError
from eval.datasets import load_dataset, validate
from eval.synthetic import build_synthetic, clean_question, general_set, synthetic_dataset

PASSAGE = "Green tea should be brewed with water at about eighty degrees. Boiling water makes it bitter."
ZH = "绿茶适合用八十度左右的水冲泡，水温太高茶汤发苦。"


@pytest.mark.parametrize(
    ("raw", "want", "why"),
    [
        (
            "Sure! Here is a question:\nWhat temperature suits green tea?",
            "What temperature suits green tea?",
            "ok",
        ),
        ("Q: how hot should the water be for green tea", "how hot should the water be for green tea?", "ok"),
        (
            '"Why does boiling water make green tea bitter?"',
            "Why does boiling water make green tea bitter?",
            "ok",
        ),
        ("绿茶应该用多少度的水", "绿茶应该用多少度的水？", "ok"),  # checked against ZH
        ("", None, "empty"),
        ("Sure!", None, "empty"),
        ("Why?", None, "too_short"),
        ("Green tea is brewed with warm water.", None, "not_a_question"),
        ("Green tea should be brewed with water at about eighty degrees?", None, "copy_of_passage"),
        ("What " + "very " * 60 + "long question?", None, "too_long"),
        ("What is the answer to this question?", None, "about_the_passage"),
        ("What are the benefits of regular exercise?", None, "off_topic"),
        ("茶叶应该怎么保存才好？", None, "off_topic"),
        ("What is the best way to prepare for a marathon?", None, "off_topic"),
    ],
)
def test_clean_question(raw: str, want: str | None, why: str) -> None:
    passage = ZH if any("\u4e00" <= ch <= "\u9fff" for ch in raw) else PASSAGE
    assert clean_question(raw, passage) == (want, why)


def test_docstring_set_is_a_valid_beir_set(tmp_path: Path) -> None:
    folder = general_set("docstrings", tmp_path, max_queries=20, max_docs=200)
    ds = validate(load_dataset(folder))
    assert len(ds.queries) == 20 and len(ds.corpus.docs) == 200
    assert not ds.issues.counts  # every judgement names a document of the set
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == "docstrings" and meta["python"]
    assert general_set("docstrings", tmp_path, max_queries=20, max_docs=200) == folder  # reused


def _tiny_index(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ingest.pipeline import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text(
        "# Tea\n\n" + PASSAGE + "\n\n## Storage\n\nKeep tea leaves in a dry, dark jar.\n"
    )
    (docs / "bikes.md").write_text("# Bikes\n\nOil the bicycle chain every few hundred kilometres.\n")
    ingest([docs], settings)


@pytest.mark.slow
def test_synthetic_set_from_the_current_index(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.index import Index
    from eval.evaluate import evaluate

    _tiny_index(settings, tmp_path)
    settings.llm.provider = "llamacpp"
    out = tmp_path / "synthetic"
    folder = build_synthetic(settings, 3, out, max_tokens=32)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["tried"] == sum(meta["filter"].values()) and 1 <= meta["kept"] <= 3, meta
    assert meta["filter"]["ok"] == meta["kept"]  # measured: SmolLM2 keeps 3 of 3 here
    stamp = (folder / "meta.json").stat().st_mtime_ns
    assert build_synthetic(settings, 3, out) == folder  # saved: the same set again, no generation
    assert (folder / "meta.json").stat().st_mtime_ns == stamp
    ds = synthetic_dataset(folder)
    assert len(ds.queries) == meta["kept"] and set(ds.qrels) == set(ds.queries)
    records = {r.id: r for r in Index(settings).docs.iter_records(kinds=("chunk",))}
    for qid, q in ds.queries.items():
        (chunk, grade), = ds.qrels[qid].items()  # one relevant chunk of the index, the one asked about
        assert chunk in records and grade == 1
        assert clean_question(q, records[chunk].text) == (q, "ok")  # what was kept passes the filter
    ids = set(Index(settings).docs.all_ids())
    r = evaluate(ds, settings, ["dense", "bm25"], cache_dir=tmp_path / "cache")
    assert r.level == "chunk" and len(r.queries) == meta["kept"]
    assert all(set(run) <= ids for c in r.configs for run in c.run.values())


def test_a_set_with_nothing_kept_is_a_clear_error(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A model that writes nothing usable (scripted: chatter only): every sample is rejected
    and counted, and evaluating the empty set is a clear error, not a crash."""
    from tests.ollama_server import OllamaTestServer

    _tiny_index(settings, tmp_path)
    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        srv.reply = "Sure! Here is a question:"
        settings.llm.provider, settings.llm.model, settings.ollama_url = "ollama", "smollm2:135m", srv.url
        folder = build_synthetic(settings, 2, tmp_path / "synthetic")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kept"] == 0 and meta["filter"] == {"empty": meta["tried"]} and meta["tried"] >= 2
    with pytest.raises(RagError, match=r"no usable question: all \d+ LLM replies were rejected \(.*empty"):
        synthetic_dataset(folder)
