"""The reranking stages with real parts: features, the coarse blend, a real LightGBM
booster saved in the ranker format, and refusal of models that do not fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import RankerError
from core.settings import Settings, load_settings
from core.types import Hit, Record
from eval.train_ranker import Group, fit, save
from ingest.pipeline import ingest
from retrieval import features, rerank
from retrieval.pipeline import retrieve
from tests.files import write_docs

DOCS = {
    "a.md": "# Volcanoes\n\nVolcanoes erupt molten rock called lava.",
    "b.md": "# Glaciers\n\nGlaciers are rivers of ice that carve valleys.",
    "c.md": "# Deserts\n\nDeserts get less than 250 mm of rain a year.",
    "d.md": "# Reefs\n\nCoral reefs grow in warm, shallow, clear water.",
}


def _hit(rid: str, text: str, title: str = "", **scores: float) -> Hit:
    return Hit(Record(rid, text, f"/x/{rid}.md", title=title), 0.0, dict(scores))


def test_feature_matrix_follows_the_one_list() -> None:
    hits = [
        _hit(
            "1",
            "Glaciers carve valleys",
            "Glaciers",
            sbert=0.8,
            bm25=4.0,
            bm25_rank=1,
            dense_rank=1,
            rrf=0.03,
        ),
        _hit("2", "Lava flows downhill", "", sbert=0.4, bm25=0.0, dense_rank=2, rrf=0.016),
    ]
    x = features.compute("how do glaciers carve valleys", hits, n_search_queries=2)
    col = {n: i for i, n in enumerate(features.FEATURES)}
    assert x.shape == (2, len(features.FEATURES)) and len(set(features.FEATURES)) == len(features.FEATURES)
    assert x[0, col["dense"]] == pytest.approx(0.8) and x[1, col["dense_gap"]] == pytest.approx(0.4)
    assert x[0, col["bm25_norm"]] == 1.0 and x[1, col["bm25_norm"]] == 0.0
    assert x[0, col["coverage"]] == 1.0 and x[1, col["coverage"]] == 0.0  # glacier, carv, valley
    assert x[0, col["title_match"]] == pytest.approx(1 / 3) and x[1, col["title_match"]] == 0.0
    assert x[0, col["bm25_found"]] == 1.0 and x[1, col["bm25_found"]] == 0.0
    assert x[0, col["n_queries"]] == 0.5  # retrieved by 1 of 2 search queries (default count 1)
    assert math.isnan(x[0, col["step_back"]]) and math.isnan(x[0, col["hyde"]])
    assert x[0, col["query_terms"]] == 3
    assert math.isnan(x[0, col["graph_distance"]]) and math.isnan(x[1, col["graph_shared"]])  # no graph
    assert math.isnan(x[0, col["maxsim"]]) and math.isnan(x[1, col["maxsim_z"]])  # no late interaction
    late = features.compute("glaciers", [_hit("1", "a", maxsim=0.9), _hit("2", "b", maxsim=0.5),
                                         _hit("3", "c")])
    assert list(late[:2, col["maxsim"]]) == pytest.approx([0.9, 0.5])
    assert list(late[:2, col["maxsim_z"]]) == pytest.approx([1.0, -1.0])
    assert math.isnan(late[2, col["maxsim_z"]])


def test_graph_features_mark_the_candidates_the_graph_did_not_reach() -> None:
    hits = [
        _hit("1", "Kessler Institute was founded by Otto Brandt", graph_distance=1.0, graph_shared=2.0),
        _hit("2", "Elena Varga trained at the Kessler Institute", graph_distance=0.0, graph_shared=3.0),
        _hit("3", "Coral reefs grow in warm water"),  # found by BM25 / dense, not by the graph
    ]
    x = features.compute("who founded the institute where Elena Varga trained", hits)
    col = {n: i for i, n in enumerate(features.FEATURES)}
    assert list(x[:, col["graph_distance"]]) == [1.0, 0.0, 2.0]  # not reached: one past the farthest
    assert list(x[:, col["graph_shared"]]) == [2.0, 3.0, 0.0]


def test_blend_normalises_both_scores_over_the_pool() -> None:
    cos = np.array([0.9, 0.5, 0.1])
    bm25 = np.array([0.0, 10.0, 5.0])
    assert rerank.blend(cos, bm25, 0.5, "minmax") == pytest.approx([0.5, 0.25 + 0.5, 0.25])
    no_match = rerank.blend(cos, np.zeros(3), 0.5, "minmax")  # no BM25 match at all
    assert no_match == pytest.approx([0.5, 0.25, 0.0])
    z = rerank.blend(cos, bm25, 0.5)  # z-scores: cos -> [1.22, 0, -1.22], bm25 -> [-1.22, 1.22, 0]
    assert z == pytest.approx([0.0, 0.6124, -0.6124], abs=1e-3)
    assert list(np.argsort(-z)) == [1, 0, 2]
    assert rerank.blend(np.array([np.nan, 0.3]), np.array([1.0, 1.0]), 0.5) == pytest.approx([0.0, 0.0])


def _groups(n: int, rng: np.random.Generator) -> list[Group]:
    """Candidates whose label follows the `dense` feature (with noise)."""
    out = []
    for q in range(n):
        x = rng.random((10, len(features.FEATURES))).astype(np.float32)
        y = (x[:, features.FEATURES.index("dense")] > 0.7).astype(np.int32)
        out.append(
            Group(
                f"q{q}", x, y, [f"d{i}" for i in range(10)], {f"d{i}": int(v) for i, v in enumerate(y) if v}
            )
        )
    return out


@pytest.fixture(scope="module")
def booster():  # type: ignore[no-untyped-def]
    return fit(_groups(60, np.random.default_rng(0)), seed=0)


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("rerank")
    write_docs(root / "docs", DOCS)
    settings = load_settings(index_dir=str(root / "index"))
    ingest([root / "docs"], settings)
    return settings


def _with_model(settings: Settings, booster: object, path: Path, **manifest: object) -> Settings:
    save(booster, path, "all-MiniLM-L6-v2", {"note": "test"})
    if manifest:
        man = json.loads((path / rerank.MANIFEST_FILE).read_text())
        man.update(manifest)
        (path / rerank.MANIFEST_FILE).write_text(json.dumps(man))
    return settings.model_copy(update={"search": settings.search.model_copy(update={"ltr_model": str(path)})})


def test_ltr_stage_scores_the_survivors(small_index: Settings, booster: object, tmp_path: Path) -> None:
    s = _with_model(small_index, booster, tmp_path / "ranker")
    assert not list((tmp_path / "ranker").glob("*.pkl"))
    man = json.loads((tmp_path / "ranker" / rerank.MANIFEST_FILE).read_text())
    assert man["features"] == list(features.FEATURES) and man["versions"]["lightgbm"]
    res = retrieve("where does ice carve valleys", s, k=4)
    assert all("ltr" in h.scores and "sbert" in h.scores for h in res.hits)
    assert [h.scores["ltr"] for h in res.hits] == sorted((h.scores["ltr"] for h in res.hits), reverse=True)
    stages = {t.stage: t.detail for t in res.trace}
    assert stages["ltr"]["model"].endswith("ranker") and stages["ltr"]["candidates"][0]["was"] is not None
    from app.trace_view import Locator, format_entry  # what `rag ask --trace` prints per stage

    loc = Locator(s, res.trace)
    lines = format_entry(next(t for t in res.trace if t.stage == "ltr"), loc)
    assert lines and "model=" in lines[0] and "b.md" in "\n".join(lines) and "->" in lines[1]
    off = retrieve("where does ice carve valleys", s, k=4, skip={"ltr"})
    assert all("ltr" not in h.scores for h in off.hits)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": list(features.FEATURES[:-1])}, "another feature list"),
        ({"features": list(reversed(features.FEATURES))}, "another feature list"),
        ({"embedding_model": "some-other-model"}, "embedding model 'some-other-model'"),
        ({"format_version": 99}, "format 99"),
    ],
)
def test_mismatched_model_is_refused(
    small_index: Settings, booster: object, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    s = _with_model(small_index, booster, tmp_path / "ranker", **change)
    with pytest.raises(RankerError, match=message):
        retrieve("glaciers", s, k=2)
    assert retrieve("glaciers", s, k=2, skip={"ltr"}).hits  # the rest of the pipeline still works


def test_incomplete_or_missing_model_is_refused(
    small_index: Settings, booster: object, tmp_path: Path
) -> None:
    s = _with_model(small_index, booster, tmp_path / "ranker")
    (tmp_path / "ranker" / rerank.BOOSTER_FILE).unlink()
    with pytest.raises(RankerError, match="lacks booster.txt"):
        retrieve("glaciers", s, k=2)
    gone = small_index.model_copy(
        update={"search": small_index.search.model_copy(update={"ltr_model": str(tmp_path / "nowhere")})}
    )
    with pytest.raises(RankerError, match="holds no ranker"):
        retrieve("glaciers", gone, k=2)


def test_booster_trained_on_other_features_is_refused(small_index: Settings, tmp_path: Path) -> None:
    from core.boosting import lightgbm

    lgb = lightgbm()
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 3)), rng.integers(0, 2, 40)
    other = lgb.train({"objective": "lambdarank", "verbose": -1},
                      lgb.Dataset(x, y, group=[10] * 4, feature_name=["a", "b", "c"]), num_boost_round=5)
    s = _with_model(small_index, other, tmp_path / "ranker")  # manifest claims our list
    with pytest.raises(RankerError, match="do not match its manifest"):
        retrieve("glaciers", s, k=2)


def test_cjk_queries_lean_on_bm25_in_the_blend() -> None:
    from retrieval.rerank import blend, cjk_share

    assert cjk_share("how is attention computed") == 0.0
    assert cjk_share("注意力机制是什么") == 1.0
    assert 0.3 < cjk_share("Transformer 的注意力机制") < 0.7
    # A candidate strong on BM25 but weak on cosine wins once the cosine weight drops.
    cos = np.array([0.9, 0.1, 0.5])
    bm25 = np.array([1.0, 9.0, 2.0])
    assert int(np.argmax(blend(cos, bm25, 0.9))) == 0
    assert int(np.argmax(blend(cos, bm25, 0.1))) == 1


def test_a_hit_found_through_a_representation_keeps_its_cosine(settings: Settings) -> None:
    """The coarse stage scores a chunk by its own stored vector, or by the summary / question
    that matched, whichever is closer to the question (by hand: unit vectors)."""
    from core.index import Index

    index = Index(settings)
    chunk_a = Record("a", "Volcanoes erupt lava.", "/x/a.md")
    chunk_b = Record("b", "Glaciers carve valleys.", "/x/b.md")
    summ = Record("s", "How do mountains spit fire?", "/x/a.md", kind="summary", parent_id="a")
    e = np.eye(4, 384, dtype=np.float32)
    q = (e[2] + e[1]) / np.sqrt(2)  # cos(q, a) = 0, cos(q, b) = 0.707, cos(q, s) = 0.8 / sqrt 2
    s_vec = 0.6 * e[0] + 0.8 * e[1]  # a unit vector
    index.vectors.upsert([chunk_a, chunk_b, summ], np.stack([e[0], e[2], s_vec]))
    rerank.clear_cache()
    hits = [Hit(chunk_a, 0.0, {}, matched="s"), Hit(chunk_b, 0.0, {})]
    rerank.score_pool(index, "q", hits, {"original": q})
    assert hits[0].scores["sbert"] == pytest.approx(0.8 / np.sqrt(2), abs=1e-5)  # the summary's, not 0
    assert hits[1].scores["sbert"] == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    far = [Hit(chunk_b, 0.0, {}, matched="s")]  # the chunk's own cosine is the higher: kept
    rerank.score_pool(index, "q", far, {"original": e[2]})
    assert far[0].scores["sbert"] == pytest.approx(1.0, abs=1e-5)


def test_a_large_store_is_read_by_id_a_small_one_whole(settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold `rag search` over 100k vectors spent 4.3 s reading every vector for a pool of 200:
    above PRELOAD_MAX only the pool's vectors are read (and kept), below it the whole store."""
    from core.index import Index

    index = Index(settings)
    recs = [Record(f"r{i}", f"text {i}", f"/x/{i}.md") for i in range(6)]
    vecs = np.eye(6, 384, dtype=np.float32)
    index.vectors.upsert(recs, vecs)
    key = (str(index.path), index.embedder.name)
    monkeypatch.setattr(rerank, "PRELOAD_MAX", 5)
    rerank.clear_cache()
    got = rerank.stored_embeddings(index, ["r4", "r1", "absent"])
    assert sorted(rerank._EMB[key]) == ["r1", "r4"]
    assert np.array_equal(got[:2], vecs[[4, 1]]) and np.isnan(got[2]).all()
    monkeypatch.setattr(rerank, "PRELOAD_MAX", 6)
    rerank.clear_cache()
    got = rerank.stored_embeddings(index, ["r2"])
    assert len(rerank._EMB[key]) == 6 and np.array_equal(got[0], vecs[2])
    rerank.clear_cache()


def test_the_ltr_stage_scores_without_importing_lightgbm(small_index: Settings, booster: object,
                                                         tmp_path: Path) -> None:
    """A cold `rag search` scores with the model's trees in NumPy (core/forest.py), the same
    scores LightGBM gives, and never imports LightGBM (0.15 s of every cold command)."""
    import os
    import subprocess
    import sys

    s = _with_model(small_index, booster, tmp_path / "ranker")
    probe = (
        "import sys, json\n"
        "from core.settings import load_settings\n"
        "from retrieval.pipeline import retrieve\n"
        f"s = load_settings(index_dir={str(s.index_path)!r},\n"
        f"                  search={{'ltr_model': {str(tmp_path / 'ranker')!r}}})\n"
        "res = retrieve('where does ice carve valleys', s, k=4)\n"
        "print(json.dumps([[h.record.id, h.scores['ltr']] for h in res.hits]))\n"
        "print('LIGHTGBM', 'lightgbm' in sys.modules, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LIGHTGBM False" in out.stderr
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    res = retrieve("where does ice carve valleys", s, k=4)
    assert [h.record.id for h in res.hits] == [i for i, _ in scored]
    # LightGBM's own scores for the same candidates, in this process
    lgb_scores = booster.predict(  # type: ignore[attr-defined]
        features.compute("where does ice carve valleys", res.hits, 1), num_threads=1)
    assert np.array_equal(np.asarray([sc for _, sc in scored]), np.asarray(lgb_scores))


def test_a_damaged_model_file_is_one_clear_error(small_index: Settings, booster: object,
                                                 tmp_path: Path) -> None:
    s = _with_model(small_index, booster, tmp_path / "ranker")
    damaged = "tree\nversion=v4\nobjective=lambdarank\n\nTree=0\nsplit_feature=a b\n\nend of trees\n"
    (tmp_path / "ranker" / rerank.BOOSTER_FILE).write_text(damaged)
    with pytest.raises(RankerError, match="booster.txt cannot be read .*retrain it"):
        retrieve("where does ice carve valleys", s, k=4)
