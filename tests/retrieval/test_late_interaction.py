"""Late interaction (ColBERT MaxSim): the score against a hand computation, the stage in the
query path with the shipped MiniLM's token vectors, and a ColBERT checkpoint in PyLate's
folder layout (built here from the shipped MiniLM with a projection layer) read without
PyLate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from core.index import Index
from core.models import resolve_model_path
from core.settings import Settings, load_settings
from core.token_vectors import colbert_folder
from ingest.pipeline import ingest
from retrieval import late_interaction
from retrieval.pipeline import retrieve
from tests.files import write_docs


def test_maxsim_matches_a_hand_computation() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[0.6, 0.8], [1.0, 0.0], [-1.0, 0.0]])
    # query token 1: best of (0.6, 1.0, -1.0) = 1.0; token 2: best of (0.8, 0.0, 0.0) = 0.8
    assert late_interaction.maxsim(q, d) == pytest.approx((1.0 + 0.8) / 2)
    assert late_interaction.maxsim(q, d[2:]) == pytest.approx((-1.0 + 0.0) / 2)
    assert late_interaction.maxsim(q, np.zeros((0, 2))) == 0.0


DOCS = {
    # Both mention lava and rock; only one says what the question's every term asks.
    "a.md": "# Volcano notes\n\nBasalt is a dark volcanic rock that forms when lava cools quickly.",
    "b.md": "# Rocks\n\nGranite is a light rock that cools slowly underground, far from any lava.",
    "c.md": "# Reefs\n\nCoral reefs grow in warm, shallow, clear water.",
    "d.md": "# Glaciers\n\nGlaciers are rivers of ice that carve valleys.",
}


@pytest.fixture
def indexed(tmp_path: Path) -> Settings:
    s = load_settings(overrides={"search": {"window_tokens": 0, "ltr": False}})
    ingest([write_docs(tmp_path / "docs", DOCS)], s)
    return s


def test_stage_orders_the_head_by_maxsim_and_says_so(indexed: Settings) -> None:
    q = "which dark rock forms when lava cools quickly"
    s = indexed.model_copy(update={"search": indexed.search.model_copy(
        update={"late": True, "late_weight": 100.0, "late_keep": 4})})
    res = retrieve(q, s, k=4)
    late = [t for t in res.trace if t.stage == "late"]
    assert late and late[0].detail["n"] == 4 and late[0].detail["weight"] == pytest.approx(100.0)
    scores = [h.scores["maxsim"] for h in res.hits]
    assert scores == sorted(scores, reverse=True)  # MaxSim decides at this weight
    assert res.hits[0].record.source.endswith("a.md")
    # the hand computation, from the same token vectors the stage used
    enc = late_interaction.encoder(Index(s), s)
    qv = enc.query(q)
    dv = enc.documents([res.hits[0].record.index_text()])[0]
    assert scores[0] == pytest.approx(late_interaction.maxsim(qv, dv), abs=2e-3)  # float16 cache
    zh = retrieve("玄武岩是什么", s, k=4)  # the English encoder's tokens cannot read it: skipped, said
    assert "late_max_cjk" in next(t for t in zh.trace if t.stage == "late").detail["skipped"]
    assert all("maxsim" not in h.scores for h in zh.hits)
    off = retrieve(q, indexed, k=4)
    assert not any(t.stage == "late" for t in off.trace) and "maxsim" not in off.hits[0].scores


def _pylate_folder(root: Path, out_dim: int = 96) -> Path:
    """A ColBERT checkpoint as PyLate saves one: the transformer at the root, a Dense
    projection in 1_Dense, the prefixes in config_sentence_transformers.json."""
    from safetensors.numpy import save_file

    src = resolve_model_path("minilm")
    root.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "vocab.txt", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, root / name)
    (root / "1_Dense").mkdir()
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((out_dim, 384)) / np.sqrt(out_dim)).astype(np.float32)
    save_file({"linear.weight": w}, str(root / "1_Dense" / "model.safetensors"))
    (root / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 384, "out_features": out_dim, "bias": False, "activation_function": "identity"}))
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]))
    (root / "config_sentence_transformers.json").write_text(json.dumps({
        "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 16, "document_length": 64,
        "do_query_expansion": True}))
    return root


def test_a_pylate_folder_loads_and_ranks(tmp_path: Path) -> None:
    enc = colbert_folder(str(_pylate_folder(tmp_path / "colbert")), "cpu")
    q = enc.query("dark volcanic rock from lava")
    assert q.shape[1] == 96 and np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    # query expansion: padded to query_length with [MASK] tokens, [CLS]/[SEP] left out
    assert q.shape[0] == 16 - 2
    docs = enc.documents([DOCS["a.md"], DOCS["c.md"], DOCS["d.md"]])
    assert [d.shape[1] for d in docs] == [96, 96, 96]
    s = [late_interaction.maxsim(q, d) for d in docs]
    assert s[0] > max(s[1:])


def test_a_folder_that_is_not_colbert_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        colbert_folder(str(tmp_path / "missing"), "cpu")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="PyLate"):
        colbert_folder(str(tmp_path / "plain"), "cpu")
    shutil.copy(resolve_model_path("minilm") / "modules.json", tmp_path / "plain" / "modules.json")
    with pytest.raises(ConfigError, match="Dense"):
        colbert_folder(str(tmp_path / "plain"), "cpu")
