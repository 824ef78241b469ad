"""Pseudo-relevance feedback (retrieval/prf.py): each piece against a hand computation, and
the coarse stage with feedback on, on a real index (the candidate that shares the feedback
passages' words, not the question's, is pulled up)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.index import Index
from core.keyword import KeywordIndex
from core.settings import load_settings
from core.types import Hit
from ingest.pipeline import ingest
from retrieval import prf, rerank
from tests.files import write_docs


def test_feedback_rows_skip_rows_without_a_vector() -> None:
    order = np.array([2, 0, 3, 1])
    usable = np.array([True, True, False, True])
    assert prf.feedback_rows(order, usable, 2) == [0, 3]  # row 2 is first but has no vector
    assert prf.feedback_rows(order, np.zeros(4, dtype=bool), 2) == []


def test_rocchio_cosines_against_the_normalised_mean() -> None:
    e = np.eye(3, dtype=np.float32)
    emb = np.stack([e[0], e[1], (e[0] + e[2]) / np.sqrt(2), np.full(3, np.nan, dtype=np.float32)])
    cos = prf.rocchio_cosines(emb, [0, 1])  # mean (0.5, 0.5, 0) -> (1/sqrt 2, 1/sqrt 2, 0)
    assert cos[0] == pytest.approx(1 / math.sqrt(2)) and cos[1] == pytest.approx(1 / math.sqrt(2))
    assert cos[2] == pytest.approx(0.5)  # (1/sqrt 2)(1/sqrt 2)
    assert math.isnan(cos[3])
    assert np.isnan(prf.rocchio_cosines(emb, [])).all()


def test_expansion_terms_weigh_term_share_by_idf() -> None:
    docs = [["lava", "magma", "magma", "erupt"], ["magma", "crust", "lava", "erupt"], ["lava", "rare"]]
    df = {"lava": 50, "magma": 5, "erupt": 10, "crust": 20, "rare": 1}
    # lava is the question's; crust and rare are in one feedback document only.
    # magma: (2/4 + 1/4) * log(1 + 100/5) = 0.75 * log 21 = 2.283
    # erupt: (1/4 + 1/4) * log(1 + 100/10) = 0.5 * log 11 = 1.199
    assert prf.expansion_terms(docs, {"lava"}, df, 100, 5) == ["magma", "erupt"]
    assert prf.expansion_terms(docs, {"lava"}, df, 100, 1) == ["magma"]
    # one feedback document: its single-document terms count; a term the index lacks never does
    one = prf.expansion_terms([["magma", "crust", "ghost"]], set(), df, 100, 5)
    assert one == ["magma", "crust"]  # (1/3) log 21 = 1.015 > (1/3) log 6 = 0.597


def test_feedback_is_blended_as_the_coarse_blend_z_scores() -> None:
    cos = np.array([1.0, 0.0, np.nan])  # NaN counts as the pool's lowest: (1, 0, 0)
    bm25 = np.array([0.0, 2.0, 4.0])
    z_cos = np.array([2.0, -1.0, -1.0]) / math.sqrt(2)  # mean 1/3, sd sqrt(2)/3
    z_bm = np.array([-1.0, 0.0, 1.0]) * math.sqrt(1.5)  # mean 2, sd sqrt(8/3)
    assert rerank.blend(cos, bm25, 0.25) == pytest.approx(0.25 * z_cos + 0.75 * z_bm)
    assert rerank.blend(np.full(3, np.nan), np.ones(3), 0.5) == pytest.approx(np.zeros(3))


def test_term_scores_use_the_tokens_as_given(tmp_path: Path) -> None:
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build([("a", "coffee coffee beans"), ("b", "tea leaves"), ("c", "coffee cups")])
    # "coffe" is the stem of coffee: given as a token it is not stemmed again
    got = kw.term_scores(["coffe", "unknown"], ["c", "b", "a", "zz"])
    assert got[1] == 0.0 and got[3] == 0.0 and got[2] > got[0] > 0
    assert np.array_equal(got[:3], kw.score_ids("coffee", ["c", "b", "a"]))


DOCS = {
    "a.md": "# Eruptions\n\nVolcanoes erupt magma from the mantle through the crust.",
    "b.md": "# Magma\n\nMagma chambers under volcanoes feed eruptions with molten rock.",
    "c.md": "# Mantle plumes\n\nMantle plumes bring molten rock and magma up under hotspots.",
    "d.md": "# Reefs\n\nCoral reefs grow in warm, shallow, clear water near volcanoes.",
    "e.md": "# Deserts\n\nDeserts get less than 250 mm of rain a year.",
}


def test_feedback_in_the_coarse_stage_on_a_real_index(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", DOCS)
    off = load_settings(index_dir=str(tmp_path / "index"))
    ingest([tmp_path / "docs"], off)
    on = off.model_copy(update={"search": off.search.model_copy(update={"prf_weight": 1.0, "prf_docs": 2})})
    index = Index(off)
    pool = list(index.docs.get(index.docs.all_ids()).values())
    vec = {"original": index.embedder.embed_query("volcanoes erupt")}
    rerank.clear_cache()
    plain, _ = rerank.coarse(index, "volcanoes erupt", [Hit(r, 0.0, {}) for r in pool], vec, off)
    fed, detail = rerank.coarse(index, "volcanoes erupt", [Hit(r, 0.0, {}) for r in pool], vec, on)
    assert "prf_bm25" not in {k for h in plain for k in h.scores}
    assert "magma" in detail["prf_terms"] and "volcano" not in detail["prf_terms"]  # not the question's
    rank = {h.record.source.split("/")[-1]: i for i, h in enumerate(fed)}
    plain_rank = {h.record.source.split("/")[-1]: i for i, h in enumerate(plain)}
    # the mantle-plume passage names neither word of the question but shares the feedback's
    assert rank["c.md"] < plain_rank["c.md"] and rank["c.md"] < rank["e.md"]
    assert all("prf_bm25" in h.scores for h in fed)
