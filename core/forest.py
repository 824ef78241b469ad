"""A LightGBM model evaluated in NumPy, read from LightGBM's own text format (`booster.txt`).

Why: the LTR stage of a `rag search` or `rag ask` process scores a few dozen candidates once.
Importing LightGBM to do so costs ~0.15 s of every cold command (lightgbm imports SciPy's
sparse module and narwhals), more than the scoring itself. Training keeps LightGBM
(eval/train_ranker.py), and a model this module cannot read exactly is scored by LightGBM.

Read: numerical splits with LightGBM's missing-value rules (`NumericalDecision` in its
tree.h: a NaN is 0.0 unless the split's missing type is NaN; a missing value, zero or NaN by
that type, goes the split's default way; otherwise left when value <= threshold), constant
trees, raw-score objectives. Refused (`parse` returns None): categorical splits, linear trees,
averaged output (random forest mode), objectives whose prediction transforms the raw score.
Trees are summed one after another, as LightGBM sums them, so scores are LightGBM's to the
last bit (tests/core/test_forest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZERO = 1e-35  # LightGBM's kZeroThreshold: |value| at or below it counts as zero
RAW_OBJECTIVES = ("lambdarank", "rank_xendcg", "regression", "huber", "fair", "quantile", "mape")
_DEFAULT_LEFT = 2  # decision_type bits: 1 categorical, 2 default left, (>> 2) & 3 missing type
_MISSING_ZERO, _MISSING_NAN = 1, 2


@dataclass(frozen=True)
class Forest:
    """The trees side by side, padded to the largest: per tree and internal node its feature,
    threshold, missing type, default side and children (a child < 0 is leaf ~child)."""

    feature_names: list[str]
    feature: np.ndarray  # (trees, nodes) int64
    threshold: np.ndarray  # (trees, nodes) float64
    missing: np.ndarray  # (trees, nodes) int8: 0 none, 1 zero, 2 NaN
    default_left: np.ndarray  # (trees, nodes) bool
    left: np.ndarray  # (trees, nodes) int64
    right: np.ndarray  # (trees, nodes) int64
    leaf: np.ndarray  # (trees, leaves) float64
    constant: np.ndarray  # (trees,) bool: a tree of one leaf
    depth: int  # the longest path: enough steps for every row to reach a leaf

    def feature_name(self) -> list[str]:
        return list(self.feature_names)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The raw score of each row of `x` (rows x features), as `Booster.predict` gives it."""
        x = np.asarray(x, dtype=np.float64)
        n, trees = x.shape[0], self.leaf.shape[0]
        if not trees:
            return np.zeros(n)
        width = self.feature.shape[1]
        # flat indices into the (trees, nodes) tables and into x: one gather each per step
        base = np.broadcast_to(np.arange(trees) * width, (n, trees))
        row = np.arange(n)[:, None] * x.shape[1]
        flat_x = x.ravel()
        feature, threshold = self.feature.ravel(), self.threshold.ravel()
        left, right = self.left.ravel(), self.right.ravel()
        kinds = self.missing.ravel()
        any_missing = bool(kinds.any())
        node = np.zeros((n, trees), dtype=np.int64)
        node[:, self.constant] = -1  # leaf 0
        for _ in range(self.depth):
            inner = node >= 0
            if not inner.any():
                break
            at = base + np.where(inner, node, 0)
            value = flat_x[row + feature[at]]
            nan = np.isnan(value)
            if any_missing:
                kind = kinds[at]
                value = np.where(nan & (kind != _MISSING_NAN), 0.0, value)
                absent = ((kind == _MISSING_ZERO) & (np.abs(value) <= ZERO)) | ((kind == _MISSING_NAN) & nan)
                go_left = np.where(absent, self.default_left.ravel()[at], value <= threshold[at])
            else:  # missing type none everywhere: a NaN reads as 0.0
                go_left = np.where(nan, 0.0, value) <= threshold[at]
            node = np.where(inner, np.where(go_left, left[at], right[at]), node)
        values = self.leaf[np.arange(trees)[None, :], ~node]
        # one tree after another, as LightGBM adds them (a pairwise sum rounds differently)
        return np.cumsum(values, axis=1)[:, -1]


def _fields(block: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)


def _numbers(text: str, kind: type) -> list:  # type: ignore[type-arg]
    return [kind(v) for v in text.split()] if text else []


def parse(text: str) -> Forest | None:
    """The model in LightGBM's text format, or None for one this module does not evaluate;
    ValueError for text that is not such a model."""
    if not text.startswith("tree\n") or "\nend of trees" not in text:
        raise ValueError("not a LightGBM model in text format")
    try:
        return _parse(text)
    except (KeyError, ValueError, IndexError) as e:
        raise ValueError(f"a damaged LightGBM model ({type(e).__name__}: {e})") from e


def _parse(text: str) -> Forest | None:
    head, _, rest = text.partition("\nTree=")
    meta = _fields(head)
    objective = meta.get("objective", "").split(" ")[0]
    if (meta.get("num_class", "1") != "1" or meta.get("num_tree_per_iteration", "1") != "1"
            or "average_output" in head.split("\n") or objective not in RAW_OBJECTIVES):
        return None
    body = rest.split("\nend of trees", 1)[0]
    trees = [_fields(b) for b in ("Tree=" + body).split("\nTree=") if b.strip()] if rest else []
    parsed = []
    for t in trees:
        if t.get("num_cat", "0") != "0" or t.get("is_linear", "0") != "0":
            return None
        decision = _numbers(t.get("decision_type", ""), int)
        if any(d & 1 for d in decision):
            return None
        parsed.append((
            _numbers(t.get("split_feature", ""), int), _numbers(t.get("threshold", ""), float), decision,
            _numbers(t.get("left_child", ""), int), _numbers(t.get("right_child", ""), int),
            _numbers(t["leaf_value"], float),
        ))
    nodes = max((len(p[0]) for p in parsed), default=0) or 1
    leaves = max((len(p[5]) for p in parsed), default=0) or 1
    k = len(parsed)
    feature = np.zeros((k, nodes), dtype=np.int64)
    threshold = np.zeros((k, nodes), dtype=np.float64)
    missing = np.zeros((k, nodes), dtype=np.int8)
    default_left = np.zeros((k, nodes), dtype=bool)
    left = np.full((k, nodes), -1, dtype=np.int64)
    right = np.full((k, nodes), -1, dtype=np.int64)
    leaf = np.zeros((k, leaves), dtype=np.float64)
    depth = 0
    for i, (feat, thr, dec, lc, rc, lv) in enumerate(parsed):
        m = len(feat)
        feature[i, :m], threshold[i, :m], left[i, :m], right[i, :m] = feat, thr, lc, rc
        missing[i, :m] = [(d >> 2) & 3 for d in dec]
        default_left[i, :m] = [bool(d & _DEFAULT_LEFT) for d in dec]
        leaf[i, : len(lv)] = lv
        depth = max(depth, _depth(lc, rc))
    names = meta.get("feature_names", "").split()
    return Forest(names, feature, threshold, missing, default_left, left, right, leaf,
                  np.asarray([len(p[0]) == 0 for p in parsed], dtype=bool), depth)


def _depth(left: list[int], right: list[int]) -> int:
    """The number of splits on the longest path from the root (0 for a constant tree)."""
    if not left:
        return 0
    deepest, todo = 0, [(0, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo += [(c, d + 1) for c in (left[node], right[node]) if c >= 0]
    return deepest
