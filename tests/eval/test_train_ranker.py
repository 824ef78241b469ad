"""Training the LTR model for real (LightGBM lambdarank) on a small labelled set built
from standard-library docstrings (BEIR format), and via `rag train-ranker`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from core.settings import Settings, load_settings
from eval import labelled
from eval.datasets import load_dataset
from eval.train_labelled import train_dataset
from eval.train_ranker import collect, fit, ndcg, predict, split
from retrieval import rerank
from retrieval.pipeline import retrieve

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    roots = [STDLIB / n for n in ("json", "email", "http", "logging", "concurrent", "importlib", "xml")]
    data = labelled.docstrings(roots, max_docs=150, max_queries=90, seed=0, prefix="t")
    assert len(data.queries) >= 60
    return labelled.write_beir(data, tmp_path_factory.mktemp("beir") / "stdlib")


@pytest.fixture(scope="module")
def trained(beir_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Settings, Path]:
    root = tmp_path_factory.mktemp("train")
    settings = load_settings(index_dir=str(root / "index"))
    report = train_dataset(
        load_dataset(beir_dir), settings, seed=0, holdout=0.3, cache_dir=root / "reports" / ".cache"
    )
    return report, settings, root


def test_beir_builder_round_trips(beir_dir: Path) -> None:
    back = labelled.load_beir(beir_dir)
    assert len(back.corpus) == 150 and len(back.queries) == len(back.qrels) >= 60
    ds = load_dataset(beir_dir)  # the evaluation loader reads the same folder
    assert set(ds.queries) == set(back.queries)


def test_ranker_trains_and_beats_a_random_order(trained: tuple[dict, Settings, Path]) -> None:
    report, settings, _ = trained
    nd = report["heldout_ndcg@10"]
    assert report["heldout_queries"] >= 20 and report["train_queries_with_positive"] >= 20
    assert nd["with_ranker"] > nd["random_order"] + 0.1
    # and no worse than the pipeline's own order without it (coarse stage), on the held-out queries
    assert nd["with_ranker"] >= nd["without_ranker"] - 0.02, nd
    assert report["feature_importance_gain"]
    model = Path(report["model"])
    assert model == settings.index_path / "ranker"
    man = json.loads((model / rerank.MANIFEST_FILE).read_text())
    assert man["report"]["heldout_ndcg@10"] == nd and man["embedding_model"] == "all-MiniLM-L6-v2"
    assert (model / rerank.BOOSTER_FILE).read_text().startswith("tree")  # LightGBM text format, no pickle


def test_training_is_reproducible(trained: tuple[dict, Settings, Path], beir_dir: Path) -> None:
    report, settings, root = trained
    ds = load_dataset(beir_dir)
    from eval.evaluate import corpus_index

    target = corpus_index(ds, settings, root / "reports" / ".cache")
    qids = list(ds.queries)[:40]
    groups = collect(
        {q: ds.queries[q] for q in qids}, ds.qrels, target.index, target.index.settings, target.doc_of
    )
    train, test = split(groups, 0.25, seed=3)
    assert split(groups, 0.25, seed=3)[1][0].qid == test[0].qid
    a, b = fit(train, seed=3), fit(train, seed=3)
    assert a.model_to_string() == b.model_to_string()
    assert ndcg(test, predict(a, test)) == ndcg(test, predict(b, test))


def test_trained_model_is_used_by_retrieval(trained: tuple[dict, Settings, Path]) -> None:
    report, settings, _ = trained
    on_training_index = settings.model_copy(
        update={
            "index_dir": Path(report["index"]),
            "collection": "eval",  # the collection the training index holds
            "search": settings.search.model_copy(update={"ltr_model": report["model"]}),
        }
    )
    res = retrieve("Serialize an object to a JSON formatted string", on_training_index, k=5)
    assert res.hits and all("ltr" in h.scores for h in res.hits)
    assert [t.stage for t in res.trace if t.stage in ("coarse", "ltr")] == ["coarse", "ltr"]


def test_cli_trains_from_a_beir_folder(
    beir_dir: Path, trained: tuple[dict, Settings, Path], tmp_path: Path
) -> None:
    reports = trained[2] / "reports"  # the corpus index built for the fixture is reused
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "index")}
    out = tmp_path / "model"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "train-ranker",
            "--beir",
            str(beir_dir),
            "--out",
            str(out),
            "--json",
            "--reports-dir",
            str(reports),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["model"] == str(out) and (out / rerank.BOOSTER_FILE).exists()
    assert set(report["heldout_ndcg@10"]) == {"without_ranker", "with_ranker", "random_order"}
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "train-ranker", "--beir", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert bad.returncode == 1 and "missing" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_synthetic_questions_train_a_ranker(settings: Settings, tmp_path: Path) -> None:
    from ingest.pipeline import ingest

    sample = Path(__file__).resolve().parents[2] / "data" / "sample"
    ingest([sample], settings)
    s = settings.model_copy(update={"llm": settings.llm.model_copy(update={"provider": "llamacpp"})})
    from eval.synthetic import build_synthetic, synthetic_dataset

    folder = build_synthetic(s, 10, tmp_path / "synthetic", seed=0, max_tokens=40)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["tried"] >= meta["kept"] and sum(meta["filter"].values()) == meta["tried"]
    ds = synthetic_dataset(folder)
    # one to train on, one to hold out (measured: SmolLM2-135M keeps 2 of the 14 it tries here)
    assert len(ds.queries) >= 2, (
        f"the small LLM wrote only {len(ds.queries)} usable questions ({meta['filter']})"
    )
    report = train_dataset(ds, s, tmp_path / "model", seed=0, holdout=0.3, cache_dir=tmp_path / "cache")
    assert report["level"] == "chunk" and (tmp_path / "model" / rerank.BOOSTER_FILE).exists()
    assert np.isfinite(report["heldout_ndcg@10"]["with_ranker"])


_SAME_AS_LGBMRANKER = """
import sys
import numpy as np
import lightgbm as lgb  # a plain import: scikit-learn loads, LGBMRanker exists
from eval.train_ranker import MONOTONE, PARAMS, Group, fit
from retrieval import features
rng = np.random.default_rng(3)
groups = []
for i in range(60):
    n = int(rng.integers(5, 30))
    x = rng.normal(size=(n, len(features.FEATURES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = ((x[:, 0] + rng.normal(size=n)) > 1).astype(float)
    y[0] = 1.0
    groups.append(Group(f"q{i}", x, y, [f"d{i}-{j}" for j in range(n)], {}))
ours = fit(groups, seed=5)
p = {**PARAMS, "random_state": 5,
     "monotone_constraints": [MONOTONE.get(f, 0) for f in features.FEATURES],
     "monotone_constraints_method": "advanced"}
model = lgb.LGBMRanker(**p).fit(np.vstack([g.x for g in groups]), np.concatenate([g.y for g in groups]),
                                group=[len(g.y) for g in groups], feature_name=list(features.FEATURES))
x = np.vstack([g.x for g in groups])
assert np.array_equal(ours.predict(x, num_threads=1), model.booster_.predict(x, num_threads=1))
print("same")
"""


def test_fit_trains_the_booster_lgbmranker_would() -> None:
    """fit() calls lightgbm.train (no scikit-learn needed); the model is LGBMRanker's, bit for bit."""
    out = subprocess.run([sys.executable, "-c", _SAME_AS_LGBMRANKER], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "same"


_LOAD_WITHOUT_SKLEARN = """
import sys
from pathlib import Path
from core.boosting import lightgbm
from retrieval.rerank import BOOSTER_FILE
booster = lightgbm().Booster(model_file=str(Path(sys.argv[1]) / BOOSTER_FILE))
assert booster.num_trees() > 0
assert "sklearn" not in sys.modules and "pandas" not in sys.modules, "loading a ranker imported them"
import pandas, sklearn  # still importable afterwards
print("ok")
"""


def test_loading_a_ranker_does_not_import_scikit_learn(trained: tuple[dict, Settings, Path]) -> None:
    """LightGBM (the trainer; the scorer of a model core/forest.py does not read) loads a booster
    without scikit-learn and pandas: importing them with lightgbm cost a cold `rag search` 0.8 s."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("lightgbm is imported as it is on this platform (core/boosting.py)")
    _, settings, _ = trained
    out = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_SKLEARN, str(rerank.ranker_path(settings))],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_the_gate_holds_out_every_query_once_and_ranks_as_the_query_path_mixes() -> None:
    """cross_validate: each query scored by a model fitted without it, the ranker's scores mixed
    with the prior order as retrieval/rerank.fine mixes them. Feature 0 marks the relevant
    candidate, which the prior puts last: the ranker learns it, the prior alone never."""
    from eval.train_ranker import Group, cross_validate
    from retrieval import features
    from retrieval.rerank import mixed

    rng = np.random.default_rng(0)
    groups = []
    for q in range(40):
        n = 6
        x = rng.random((n, len(features.FEATURES)))
        y = np.zeros(n, dtype=np.int32)
        y[-1] = 1
        x[:, 0] = y  # the one feature that tells
        ids: list[str | None] = [f"d{q}-{i}" for i in range(n)]
        groups.append(Group(f"q{q:02d}", x, y, ids, {f"d{q}-{n - 1}": 1}, np.arange(n, 0, -1.0)))
    cv = cross_validate(groups, folds=5, seed=0, mix=1.0)
    assert cv["folds"] == 5 and cv["queries"] == 40 and len(cv["gain_per_fold"]) == 5
    assert cv["without_ranker"] == pytest.approx(ndcg(groups), abs=1e-4)  # relevant one last: 1/log2(7)
    assert cv["with_ranker"] == pytest.approx(1.0)
    # mixed by hand: 0.3 z(ranker) + 0.7 z(prior); at mix 1 the ranker's own scores
    pred, prior = np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    assert np.allclose(mixed(pred, prior, 0.3), 0.3 * z(pred) + 0.7 * z(prior))
    assert np.array_equal(mixed(pred, None, 0.3), pred) and np.array_equal(mixed(pred, prior, 1.0), pred)
    # a mix that leaves the prior in charge: the prior's order stands (no gain)
    low = cross_validate(groups, folds=5, seed=0, mix=0.01)
    assert low["with_ranker"] < 0.5
    # a subset (the LLM-written questions, in self-training) is scored over its own held-out queries
    even = {g.qid for g in groups[::2]}
    sub = cross_validate(groups, folds=5, seed=0, mix=0.01, subsets={"even": even})["subsets"]["even"]
    assert sub["queries"] == 20 and sub["without_ranker"] == pytest.approx(ndcg(groups[::2]), abs=1e-4)
    # folds fitted in threads (self_train's, after an ingest): the same models, the same gate
    noisy = [Group(g.qid, g.x + rng.normal(0, 0.3, g.x.shape), g.y, g.ids, g.judged, g.prior) for g in groups]
    threaded = cross_validate(noisy, folds=5, seed=0, mix=0.5, workers=3)
    assert threaded == cross_validate(noisy, folds=5, seed=0, mix=0.5)


def test_the_gates_folds_keep_the_queries_of_one_chunk_together() -> None:
    from eval.train_ranker import Group, fold_groups

    x, y = np.zeros((2, 3)), np.array([1, 0], dtype=np.int32)
    groups = [Group(f"q{i}", x, y, ["a", "b"], {f"chunk{i % 4}": 2, "other": 1}) for i in range(12)]
    parts = fold_groups(groups, 5, seed=0)
    assert len(parts) == 4  # four chunks: four folds, not five
    assert sorted(g.qid for p in parts for g in p) == sorted(g.qid for g in groups)
    for p in parts:  # each fold holds every query of its chunk, and only those
        assert len({next(k for k, v in g.judged.items() if v == 2) for g in p}) == 1 and len(p) == 3


_FOLDS_IN_THREADS = """
import sys
import numpy as np
from eval.train_ranker import Group, cross_validate
from retrieval import features
rng = np.random.default_rng(1)
groups = []
for q in range(30):
    x = rng.random((5, len(features.FEATURES)))
    y = np.array([0, 0, 0, 0, 1], dtype=np.int32)
    x[:, 0] = y
    groups.append(Group(f"q{q}", x, y, [f"d{q}-{i}" for i in range(5)], {f"d{q}-4": 1}))
assert "lightgbm" not in sys.modules
cv = cross_validate(groups, folds=5, seed=0, workers=5)
print(cv["folds"], "sklearn" in sys.modules)
"""


def test_folds_fitted_in_threads_import_lightgbm_once() -> None:
    """The first fits of a process, started at once in threads, each asked for lightgbm while
    another was importing it, and got the half-made module ("partially initialized module
    'lightgbm' has no attribute 'Dataset'"): core/boosting.py imports it under a lock."""
    out = subprocess.run([sys.executable, "-c", _FOLDS_IN_THREADS], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "5"
