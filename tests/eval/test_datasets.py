"""Dataset loading and bad input: a mistyped path stops with a message naming it (and a
near match); malformed lines, qrels naming unknown ids and queries without judgements
are skipped and counted, and what is valid is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import configs as cfgs
from eval.datasets import DatasetError, load_dataset, save_beir, validate


def _beir(root: Path) -> Path:
    docs = {"d1": ("Coffee", "Brew coffee at 93 degrees."), "d2": ("Tea", "Green tea likes 80 degree water.")}
    queries = {
        "q1": "coffee temperature",
        "q2": "tea water",
        "q3": "a question nobody judged",
        "q4": "judged only as not relevant",
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 2, "d404": 1}, "q9": {"d1": 1}, "q4": {"d2": 0}}
    save_beir(root, docs, queries, qrels)
    with (root / "corpus.jsonl").open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"title": "no id"}) + "\n")
    with (root / "qrels" / "test.tsv").open("a") as f:
        f.write("q1\td2\n")  # missing score
    return root


def test_bad_lines_and_unknown_ids_are_counted_and_skipped(tmp_path: Path) -> None:
    ds = load_dataset(_beir(tmp_path / "set"))
    assert ds.issues.counts["corpus_bad_lines"] == 2
    assert ds.issues.counts["qrels_bad_lines"] == 1
    validate(ds)
    c = ds.issues.counts
    assert c["qrels_unknown_queries"] == 1  # q9
    assert c["qrels_unknown_docs"] == 1  # d404
    assert c["queries_without_judgements"] == 2  # q3 (none), q4 (score 0 only)
    assert ds.level == "doc"
    assert set(ds.queries) == {"q1", "q2"}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    report = ds.issues.to_dict()
    assert "d404" in " ".join(report["qrels_unknown_docs"]["examples"])  # type: ignore[index]


def test_mistyped_path_names_it_and_suggests_the_near_one(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set")
    with pytest.raises(DatasetError) as e:
        load_dataset(corpus=root / "corpus.jsonl", queries=root / "querys.jsonl", qrels=root / "qrels")
    msg = str(e.value)
    assert "querys.jsonl does not exist" in msg and "Did you mean" in msg and "queries.jsonl" in msg
    with pytest.raises(DatasetError, match="dataset folder .*nope does not exist"):
        load_dataset(tmp_path / "nope")


def test_qrels_folder_with_several_files_needs_a_choice(tmp_path: Path) -> None:
    root = _beir(tmp_path / "set")
    (root / "qrels" / "test.tsv").rename(root / "qrels" / "a.tsv")
    (root / "qrels" / "b.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(DatasetError, match="holds 2 .tsv files"):
        load_dataset(root)


def test_folder_corpus_ids_are_file_stems(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "alpha.md").write_text("# Alpha\n\ntext")
    (docs / "sub" / "beta.txt").write_text("beta text")
    (docs / "sub" / "alpha.txt").write_text("same stem")
    (docs / "skip.bin").write_bytes(b"\0")
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "alpha?"}\n')
    (tmp_path / "r.tsv").write_text("query-id\tcorpus-id\tscore\n1\talpha\t1\n")
    ds = load_dataset(corpus=docs, queries=tmp_path / "q.jsonl", qrels=tmp_path / "r.tsv")
    assert set(ds.corpus.files) == {"alpha", "beta"}
    assert ds.issues.counts["corpus_duplicate_stems"] == 1
    assert validate(ds).qrels == {"1": {"alpha": 1}}


def test_a_dataset_folder_with_docs_and_no_corpus_jsonl_reads_the_files(tmp_path: Path) -> None:
    root = tmp_path / "pages"
    (root / "docs").mkdir(parents=True)
    (root / "qrels").mkdir()
    (root / "docs" / "slices.html").write_text("<main><p>Slices borrow part of a collection.</p></main>")
    (root / "docs" / "boxes.html").write_text("<main><p>A box puts a value on the heap.</p></main>")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "What is a slice?"}\n')
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tslices\t2\n")
    ds = validate(load_dataset(root))
    assert ds.corpus.kind == "folder" and set(ds.corpus.files) == {"slices", "boxes"}
    assert ds.qrels == {"q1": {"slices": 2}}
    # corpus.jsonl, where there is one, is still the corpus
    save_beir(root, {"d1": ("", "text")}, {"q1": "x"}, {"q1": {"d1": 1}})
    assert load_dataset(root).corpus.kind == "beir"


def test_chunk_id_qrels_make_the_set_chunk_level(tmp_path: Path) -> None:
    ds = load_dataset(_beir(tmp_path / "set"))
    ds.qrels = {"q1": {"chunk-a": 1}, "q2": {"chunk-b": 1, "d2": 1}}
    validate(ds, known_chunks={"chunk-a", "chunk-b"})
    assert ds.level == "chunk"
    assert ds.qrels == {"q1": {"chunk-a": 1}, "q2": {"chunk-b": 1}}
    assert ds.issues.counts["qrels_unknown_docs"] == 1  # d2 is a document, not a chunk


def test_config_selection_notes_unknown() -> None:
    chosen, notes = cfgs.select(["dense", "typo", "hybrid"])
    assert [c.name for c in chosen] == ["dense", "hybrid"]
    assert "typo" in dict(notes)["configs_unknown"]


def test_configs_compose_stages() -> None:
    """A configuration names the stages it leaves out; first-stage ones skip the reranking."""
    assert {"coarse", "ltr"} <= set(cfgs.REGISTRY["hybrid"].skip)
    assert "ltr" in cfgs.REGISTRY["hybrid+sbert"].skip and "coarse" not in cfgs.REGISTRY["hybrid+sbert"].skip
    assert not cfgs.REGISTRY["default"].skip and not cfgs.REGISTRY["default"].translate
    assert cfgs.REGISTRY["fusion"].translate and cfgs.REGISTRY["fusion"].uses_llm


def test_apply_overrides_is_a_deep_copy(settings) -> None:  # type: ignore[no-untyped-def]
    s = cfgs.apply(settings, {"search": {"mode": "bm25"}, "chunk": {"size": 50}})
    assert s.search.mode == "bm25" and s.chunk.size == 50
    assert s.search.rrf_k == settings.search.rrf_k
    assert settings.search.mode == "hybrid" and settings.chunk.size != 50


def test_default_selection_leaves_out_the_llm_configurations() -> None:
    chosen, notes = cfgs.select(None)
    names = [c.name for c in chosen]
    llm = [n for n, c in cfgs.REGISTRY.items() if c.uses_llm]
    assert llm and not set(llm) & set(names)
    assert {"bm25", "hybrid", "default"} <= set(names)
    note = dict(notes)["configs_not_default"]
    assert all(n in note for n in llm) and "--configs" in note
    every, _ = cfgs.select(["all"])
    assert set(llm) <= {c.name for c in every}
    named, notes = cfgs.select(["hyde"])
    assert [c.name for c in named] == ["hyde"] and "configs_not_default" not in dict(notes)
