"""The NumPy query encoder reproduces the shipped MiniLM, and a search process needs no torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import models, query_encoder, torch_encoder
from core.models import NUMPY_MAX_TEXTS, SentenceTransformerEmbedder, resolve_model_path
from core.settings import EmbeddingSettings

TEXTS = [
    "How long should coffee steep in a French press?",
    "绿茶 水温",
    "2022年北京冬奥会的吉祥物是什么？",
    "Transformer架构中的self-attention如何计算？",
    "",
    "a",
    "word " * 400,  # past max_seq_length: truncated the same way as sentence-transformers
    "Ünïcödé, punctuation!? (brackets) [1] — and numbers 3.14159",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return resolve_model_path("minilm")


def test_the_forward_pass_stays_in_float32(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A float64 scalar (np.sqrt(2.0)) once promoted the activations, and every matmul after
    the first GELU ran in float64 with its weights converted (10.3 ms a question against 7.2)."""
    enc = query_encoder.load(str(model_dir))
    assert enc is not None
    seen: list[np.dtype] = []

    class _Np:  # the module's numpy, with exp (softmax and GELU both call it) watched
        def __getattr__(self, name: str) -> object:
            return getattr(np, name)

        @staticmethod
        def exp(x: np.ndarray) -> np.ndarray:
            seen.append(np.asarray(x).dtype)
            return np.exp(x)

    monkeypatch.setattr(query_encoder, "np", _Np())
    v = enc.encode("How long should coffee steep in a French press?")
    assert v.dtype == np.float32 and len(seen) == 2 * len(enc.layers)
    assert set(seen) == {np.dtype(np.float32)}


def test_safetensors_are_read_as_views_of_the_mapped_file(model_dir: Path, tmp_path: Path) -> None:
    """`read_safetensors` gives the same tensors as the safetensors package, bit for bit, but
    as views of the file mapped in memory (nothing read until used), and the encoder keeps its
    word-embedding table that way (a question reads a few of its 30k rows)."""
    from safetensors.numpy import load_file, save_file

    path = model_dir / "model.safetensors"
    ref = load_file(str(path))
    got = query_encoder.read_safetensors(path)
    assert set(got) == set(ref)
    for name, arr in ref.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape, name
        assert np.array_equal(got[name], arr), name
        assert isinstance(got[name].base, np.memmap) and not got[name].flags.writeable, name
    # a file of several dtypes and shapes written by the package itself, metadata included
    mixed: dict[str, np.ndarray] = {
        "a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.array([1.5, -2.0], dtype=np.float16),
        "c": np.ones((2, 2, 2), dtype=np.float32), "d": np.array([True, False]),
    }
    save_file(mixed, str(tmp_path / "m.safetensors"), metadata={"format": "np"})
    back = query_encoder.read_safetensors(tmp_path / "m.safetensors")
    assert set(back) == set(mixed)
    for name, arr in mixed.items():
        assert back[name].dtype == arr.dtype and np.array_equal(back[name], arr), name
    enc = query_encoder.load(str(model_dir))
    assert enc is not None and isinstance(enc.word.base, np.memmap)


def test_numpy_vectors_match_the_torch_model(model_dir: Path) -> None:
    enc = query_encoder.load(str(model_dir))
    assert enc is not None and enc.dim == 384
    torch_model = SentenceTransformerEmbedder(EmbeddingSettings(numpy_queries=False)).model
    ref = torch_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    cos = [float(np.dot(enc.encode(t), r)) for t, r in zip(TEXTS, ref, strict=True)]
    assert min(cos) >= 0.9999, list(zip(TEXTS, cos, strict=True))
    assert query_encoder.verify(enc, TEXTS, ref) == pytest.approx(min(cos))


def test_embedder_uses_numpy_for_few_texts_and_torch_for_batches(model_dir: Path) -> None:
    emb = SentenceTransformerEmbedder(EmbeddingSettings())
    few = emb.embed(TEXTS[:3])
    assert few.shape == (3, 384) and few.dtype == np.float32
    assert np.allclose(np.linalg.norm(few, axis=1), 1.0, atol=1e-5)
    many = [f"sentence number {i}" for i in range(NUMPY_MAX_TEXTS + 1)]
    path = str(model_dir)
    was = set(models._loaded)
    try:  # before torch is loaded, an extractive answer's sentences still go through NumPy
        models._loaded.clear()
        assert emb.numpy_encoder(len(many)) is not None
        assert emb.numpy_encoder(models.NUMPY_MAX_COLD + 1) is None
    finally:
        models._loaded.update(was)
    assert emb.model is not None and (path, "cpu") in models._loaded
    assert emb.numpy_encoder(len(many)) is None  # torch is loaded: a batch goes to it
    batch = emb.embed(many)
    single = np.stack([emb.embed_query(t) for t in many])
    assert (batch * single).sum(1).min() >= 0.9999


def test_other_model_kinds_fall_back_to_sentence_transformers(model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "cls-pooled"
    shutil.copytree(model_dir, other)
    pool = other / "1_Pooling" / "config.json"
    cfg = json.loads(pool.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pool.write_text(json.dumps(cfg))
    assert query_encoder.load(str(other)) is None
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert query_encoder.load(str(broken)) is None  # logged; the caller keeps torch
    # nor the torch encoder of an ingest's batches, which takes the NumPy encoder's weights
    assert torch_encoder.load(str(other)) is None and torch_encoder.load(str(broken)) is None
    assert SentenceTransformerEmbedder(EmbeddingSettings(model=str(other))).torch_encoder() is None


def test_a_search_process_does_not_import_torch(tmp_path: Path) -> None:
    """`rag search` on an index: the question is encoded without torch or sentence-transformers, the
    keyword index is read without bm25s (and the numba it imports), and the answer stages are not
    imported."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Coffee\n\nSteep the coffee for four minutes in a French press.\n")
    (docs / "b.md").write_text("# Tea\n\nGreen tea wants water at about 80 degrees.\n")
    index = tmp_path / "index"
    env = {**os.environ, "RAG_INDEX_DIR": str(index)}
    subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(docs)], cwd=tmp_path, env=env,
                   check=True, capture_output=True, timeout=300)
    probe = (
        "import sys\n"
        "from app.cli import main\n"  # as `rag` runs it, but without its quick exit (app.cli.run)
        "sys.argv = ['rag', 'search', 'how long to steep coffee', '--json']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'bm25s', 'numba')\n"
        "               if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "answer = sorted(m for m in ('retrieval.respond', 'retrieval.table_answer', 'retrieval.translate',\n"
        "                            'retrieval.decompose', 'retrieval.compose',\n"
        "                            'retrieval.late_interaction') if m in sys.modules)\n"
        "print('ANSWER', answer, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stderr, out.stderr[-2000:]
    # nor the answer stages, query translation or late interaction (imported where they run)
    assert "ANSWER []" in out.stderr, out.stderr[-2000:]
    hits = json.loads(out.stdout)
    first = hits[0] if isinstance(hits, list) else hits["hits"][0]
    assert "a.md" in json.dumps(first)


def test_doctor_compares_the_two_encoders() -> None:
    from app.doctor import embedding
    from core.settings import Settings

    check = embedding(Settings())
    assert check["state"] == "ok", check
    cos = float(check["detail"].split("cosine ")[1].split(" ")[0])
    assert cos >= 0.9999
    off = embedding(Settings(embedding=EmbeddingSettings(numpy_queries=False)))
    assert off["state"] == "ok" and "NumPy" not in off["detail"]
