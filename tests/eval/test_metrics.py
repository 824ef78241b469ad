"""Metrics on a tiny run whose values are worked out by hand below."""

from __future__ import annotations

import math

import pytest

from eval.metrics import best_rank, paired_tests, percentiles, score

QRELS = {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 2}, "q3": {"d9": 1}}
# q1 ranks d1, d4, d2; q2 ranks d5, d3; q3 retrieves nothing.
RUN = {"q1": {"d1": 0.9, "d4": 0.8, "d2": 0.7}, "q2": {"d5": 1.0, "d3": 0.5}, "q3": {}}


def test_metrics_match_hand_computation() -> None:
    means, per_q = score(QRELS, {"a": RUN})
    pq = per_q["a"]
    # nDCG@10, gain = grade, discount = log2(rank + 1):
    #   q1: DCG = 1/log2(2) + 1/log2(4) = 1.5;  IDCG = 1 + 1/log2(3)
    #   q2: DCG = 2/log2(3);                    IDCG = 2
    q1 = 1.5 / (1 + 1 / math.log2(3))
    q2 = (2 / math.log2(3)) / 2
    assert pq["ndcg@10"]["q1"] == pytest.approx(q1)
    assert pq["ndcg@10"]["q2"] == pytest.approx(q2)
    assert pq["ndcg@10"]["q3"] == 0.0
    assert means["a"]["ndcg@10"] == pytest.approx((q1 + q2 + 0) / 3)
    # Recall@5: q1 finds both, q2 its one, q3 none.
    assert means["a"]["recall@5"] == pytest.approx(2 / 3)
    assert means["a"]["recall@100"] == pytest.approx(2 / 3)
    # MRR@10: first relevant at rank 1, 2, never.
    assert means["a"]["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    # MAP@100: q1 = (1/1 + 2/3) / 2, q2 = (1/2) / 1, q3 = 0.
    assert means["a"]["map@100"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5 + 0) / 3)


def test_recall_at_5_cuts_the_list() -> None:
    run = {"q1": {f"x{i}": 1 - i / 10 for i in range(5)} | {"d1": 0.1, "d2": 0.05}}
    means, _ = score({"q1": {"d1": 1, "d2": 1}}, {"a": run})
    assert means["a"]["recall@5"] == 0.0  # both relevant at ranks 6 and 7
    assert means["a"]["recall@10"] == 1.0


def test_best_rank_aggregation_keeps_first_place_of_each_document() -> None:
    # chunk hits of documents a, b, a, (unmapped), c
    agg = best_rank(["a", "b", "a", None, "c"])
    assert agg == {"a": 1.0, "b": 0.5, "c": 0.2}
    assert sorted(agg, key=lambda d: -agg[d]) == ["a", "b", "c"]


def test_paired_tests_count_wins_ties_losses() -> None:
    per_query = {
        "base": {"ndcg@10": {"q1": 0.5, "q2": 0.5, "q3": 0.5, "q4": 0.2}},
        "same": {"ndcg@10": {"q1": 0.5, "q2": 0.5, "q3": 0.5, "q4": 0.2}},
        "better": {"ndcg@10": {"q1": 0.9, "q2": 0.8, "q3": 0.5, "q4": 0.1}},
    }
    t = paired_tests(per_query, "base", ["ndcg@10"])
    assert "base" not in t
    assert t["same"]["ndcg@10"] == {"p": 1.0, "wins": 0, "ties": 4, "losses": 0}
    b = t["better"]["ndcg@10"]
    assert (b["wins"], b["ties"], b["losses"]) == (2, 1, 1)
    # diffs 0.4, 0.3, 0, -0.1: mean 0.15, sd 0.2380, t = 0.15 / (0.2380 / 2) = 1.2603, df 3
    assert b["p"] == pytest.approx(0.2966, abs=1e-3)


def test_percentiles() -> None:
    p = percentiles([float(x) for x in range(1, 101)])
    assert p["p50"] == pytest.approx(50.5)
    assert p["p95"] == pytest.approx(95.05)
    assert percentiles([])["n"] == 0


def test_direct_ndcg_matches_the_hand_computation() -> None:
    from eval.metrics import ndcg_at

    assert ndcg_at(RUN["q1"], QRELS["q1"]) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at(RUN["q2"], QRELS["q2"]) == pytest.approx(1 / math.log2(3))
    assert ndcg_at({}, QRELS["q3"]) == 0.0


def test_a_ranx_result_that_disagrees_is_recomputed_or_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """ranx once returned zeros for a whole run; the figures must not be reported so."""
    import ranx

    real = ranx.evaluate
    calls: list[int] = []

    def zeros_first(*args: object, **kwargs: object) -> object:
        calls.append(1)
        out = real(*args, **kwargs)
        return {m: v * 0 for m, v in out.items()} if len(calls) == 1 else out

    monkeypatch.setattr(ranx, "evaluate", zeros_first)
    means, _ = score(QRELS, {"a": RUN})
    assert len(calls) == 2  # the zeros were caught and the run evaluated again
    assert means["a"]["ndcg@10"] == pytest.approx((1.5 / (1 + 1 / math.log2(3)) + 1 / math.log2(3)) / 3)

    monkeypatch.setattr(ranx, "evaluate", lambda *a, **k: {m: v * 0 for m, v in real(*a, **k).items()})
    with pytest.raises(RuntimeError, match="could not be computed reliably"):
        score(QRELS, {"a": RUN})
