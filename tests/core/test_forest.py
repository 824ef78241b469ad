"""core/forest.py scores a LightGBM text model in NumPy exactly as LightGBM does: the same
floats, to the last bit, for every kind of split it reads (missing values as NaN, as zero, or
none, constant trees), and it refuses (None) the models it does not read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core import forest
from core.boosting import lightgbm


def _data(rng: np.random.Generator, n: int = 400, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, d))
    y = ((x[:, 0] + 0.5 * x[:, 1] - 0.3 * np.nan_to_num(x[:, 2])) > 0.2).astype(np.int32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    return x, y + (x[:, 3] > 1.0)


def _model(tmp_path: Path, params: dict[str, object],
           rounds: int = 30) -> tuple[object, forest.Forest | None]:
    lgb = lightgbm()
    x, y = _data(np.random.default_rng(0))
    ranking = params.get("objective") == "lambdarank"
    data = lgb.Dataset(x, y, group=[20] * 20 if ranking else None)
    booster = lgb.train({"verbose": -1, "num_leaves": 15, "min_data_in_leaf": 5, **params}, data,
                        num_boost_round=rounds)
    path = tmp_path / "booster.txt"
    booster.save_model(str(path))
    return lgb.Booster(model_file=str(path)), forest.parse(path.read_text())


def _probe(rng: np.random.Generator) -> np.ndarray:
    x, _ = _data(rng, 300)
    x[:5] = np.array([[np.inf, -np.inf, 1e300, -1e-40, 1e-40, 0.0]] * 5)  # extremes and near-zero
    return x


@pytest.mark.parametrize("params", [
    {"objective": "lambdarank"},  # NaN seen in training: missing type NaN
    {"objective": "lambdarank", "zero_as_missing": True},  # missing type zero
    {"objective": "regression", "use_missing": False},  # missing type none: NaN reads as 0.0
    {"objective": "regression", "min_data_in_leaf": 1000},  # no split possible: constant trees
])
def test_scores_are_lightgbms_to_the_last_bit(tmp_path: Path, params: dict[str, object]) -> None:
    booster, model = _model(tmp_path, params)
    assert model is not None
    x = _probe(np.random.default_rng(1))
    want = np.asarray(booster.predict(x, num_threads=1))  # type: ignore[attr-defined]
    got = model.predict(x)
    assert got.dtype == np.float64 and np.array_equal(got, want)
    assert model.feature_name() == booster.feature_name()  # type: ignore[attr-defined]
    if params.get("min_data_in_leaf") == 1000:
        assert model.constant.all() and model.depth == 0
    else:
        assert model.depth >= 2 and len(np.unique(got)) > 10


def test_missing_value_rules_by_hand() -> None:
    """One split on feature 0 at 1.5, leaves 10 (left) and 20 (right), for each missing type."""
    def one(decision_type: int) -> forest.Forest:
        text = ("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=0\n"
                "objective=regression\nfeature_names=a\n\nTree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\n"
                f"threshold=1.5\ndecision_type={decision_type}\nleft_child=-1\nright_child=-2\n"
                "leaf_value=10 20\nshrinkage=1\n\n\nend of trees\n")
        model = forest.parse(text)
        assert model is not None
        return model

    x = np.array([[1.0], [1.5], [2.0], [np.nan], [0.0]])
    assert one(0).predict(x).tolist() == [10, 10, 20, 10, 10]  # none: NaN is 0.0 <= 1.5
    assert one(2 | 8).predict(x).tolist() == [10, 10, 20, 10, 10]  # NaN missing, default left
    assert one(8).predict(x).tolist() == [10, 10, 20, 20, 10]  # NaN missing, default right
    assert one(4).predict(x).tolist() == [10, 10, 20, 20, 20]  # zero missing (NaN is zero), right


def test_models_it_does_not_read_are_left_to_lightgbm(tmp_path: Path) -> None:
    lgb = lightgbm()
    x = np.random.default_rng(0).integers(0, 5, (300, 3)).astype(float)
    y = (x[:, 0] == 2).astype(int)
    cat = lgb.train({"verbose": -1, "objective": "binary", "min_data_in_leaf": 5},
                    lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=3)
    assert forest.parse(cat.model_to_string()) is None  # a sigmoid output, categorical splits
    reg = lgb.train({"verbose": -1, "objective": "regression", "min_data_in_leaf": 5},
                    lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=3)
    assert "num_cat=1" in reg.model_to_string() and forest.parse(reg.model_to_string()) is None


@pytest.mark.parametrize("text", [
    "", "not a model",
    "tree\nversion=v4\nobjective=lambdarank\n\nTree=0\nnum_leaves=2\n\nend of trees\n",  # no leaves
    "tree\nobjective=lambdarank\n\nTree=0\nnum_leaves=2\nsplit_feature=x\nleaf_value=1 2\n\nend of trees\n",
])
def test_damaged_text_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="LightGBM model"):
        forest.parse(text)
