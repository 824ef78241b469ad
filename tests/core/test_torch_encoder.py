"""The direct torch encoder reproduces sentence-transformers' vectors for batches, and an
ingest-sized batch is encoded without importing sentence-transformers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import torch_encoder
from core.models import SentenceTransformerEmbedder, resolve_model_path
from core.settings import EmbeddingSettings
from tests.core.test_query_encoder import TEXTS as QUERY_TEXTS

# The query encoder's texts (Chinese, mixed, empty, one past max_seq_length) and two long
# ones: lengths far apart in one batch, so padding is exercised.
TEXTS = [
    *QUERY_TEXTS,
    "Coffee beans taste best between four days and four weeks after roasting. " * 6,
    "向量数据库是一种专门存储和检索向量的数据库，" * 10,
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return resolve_model_path("minilm")


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> np.ndarray:
    st = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False, direct_batches=False))
    return np.asarray(st.model.encode(TEXTS, batch_size=4, normalize_embeddings=True), dtype=np.float32)


def test_vectors_match_sentence_transformers(model_dir: Path, reference: np.ndarray) -> None:
    enc = torch_encoder.load(str(model_dir))
    assert enc is not None and enc.dim == 384
    for batch in (1, 3, 32):  # padded batches and unpadded single texts alike
        got = enc.encode(TEXTS, batch)
        assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
        cos = (got * reference).sum(1)
        assert cos.min() >= 0.9999, list(zip(TEXTS, cos.tolist(), strict=True))
    assert torch_encoder.verify(enc, TEXTS, reference) >= 0.9999
    # the rows come back in the order of the texts, not the order they were batched in
    assert enc.encode(TEXTS[::-1], 4)[0] @ reference[-1] >= 0.9999


def test_embedder_routes_batches_to_the_direct_encoder(model_dir: Path, reference: np.ndarray) -> None:
    emb = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False))
    assert emb.torch_encoder() is not None
    assert (emb.embed(TEXTS) * reference).sum(1).min() >= 0.9999
    off = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False, direct_batches=False))
    assert off.torch_encoder() is None
    assert SentenceTransformerEmbedder(EmbeddingSettings(device="cuda")).torch_encoder() is None


def test_an_ingest_sized_batch_does_not_import_sentence_transformers(tmp_path: Path) -> None:
    """The point of the module: a process that encodes a batch pays torch's import, not
    sentence-transformers' (and transformers'), and gets the same vectors."""
    code = (
        "import sys, numpy as np\n"
        "from core.models import SentenceTransformerEmbedder\n"
        "from core.settings import EmbeddingSettings\n"
        "emb = SentenceTransformerEmbedder(EmbeddingSettings())\n"
        "v = emb.embed([f'text number {i}' for i in range(300)])\n"
        "assert v.shape == (300, 384), v.shape\n"
        "print(sorted(m for m in ('sentence_transformers', 'transformers', 'torch') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['torch']"


def test_bfloat16_linear_layers_keep_the_vectors(model_dir: Path, reference: np.ndarray) -> None:
    """`embedding.precision = "bfloat16"`: the linear layers multiply in bfloat16 (the rest stays
    float32), and the vectors still match sentence-transformers' float32 ones to 0.9999, the
    NumPy query encoder's bar. Measured 0.99996 at worst on these texts."""
    import torch

    enc = torch_encoder.load(str(model_dir), "cpu", "bfloat16")
    assert enc is not None and enc.precision == "bfloat16"
    layer = enc.layers[0]
    assert layer["ff_w"].dtype == torch.bfloat16 and layer["qkv_b"].dtype == torch.bfloat16
    assert layer["ln1_w"].dtype == torch.float32 and enc.word.dtype == torch.float32
    full = torch_encoder.load(str(model_dir), "cpu", "float32")
    assert full is not None
    for batch in (1, 3, 32):
        got = enc.encode(TEXTS, batch)
        assert got.dtype == np.float32
        cos = (got * reference).sum(1)
        assert cos.min() >= 0.9999, list(zip(TEXTS, cos.tolist(), strict=True))
        # ... and it is another computation, not the float32 one under a new name
        assert np.abs(got - full.encode(TEXTS, batch)).max() > 1e-5


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert torch_encoder.resolve_precision("float32", "cpu") == "float32"
    assert torch_encoder.resolve_precision("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setattr(torch_encoder, "native_bf16", lambda: True)
    assert torch_encoder.resolve_precision("auto", "cpu") == "bfloat16"
    assert torch_encoder.resolve_precision("auto", "cuda") == "float32"
    monkeypatch.setattr(torch_encoder, "native_bf16", lambda: False)
    assert torch_encoder.resolve_precision("auto", "cpu") == "float32"
    with pytest.raises(ValueError, match="embedding.precision"):
        torch_encoder.resolve_precision("fp8", "cpu")


def test_the_embedder_encodes_in_the_configured_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    forced = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False, precision="float32"))
    enc = forced.torch_encoder()
    assert enc is not None and enc.precision == "float32"
    monkeypatch.setattr(torch_encoder, "native_bf16", lambda: True)
    enc = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False)).torch_encoder()
    assert enc is not None and enc.precision == "bfloat16"
    monkeypatch.setattr(torch_encoder, "native_bf16", lambda: False)
    enc = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False)).torch_encoder()
    assert enc is not None and enc.precision == "float32"
