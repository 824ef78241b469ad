"""Query encoding without PyTorch: the shipped MiniLM (a BERT encoder with mean pooling and
L2 normalisation) run in NumPy from its own safetensors weights and tokenizer.json.

Why: a `rag search` or `rag ask` process encodes one short question. Importing torch and
sentence-transformers to do so costs seconds at every start, while the forward pass of a
6-layer, 384-wide encoder on ~20 tokens is a few milliseconds of NumPy. Ingest encodes in
torch (batched: core/torch_encoder.py, the same weights, or sentence-transformers); a query
vector from here matches the torch one to cosine >= 0.9999 (tests/core/test_query_encoder.py;
`rag doctor` compares the two for the configured model). `embedding.numpy_queries = false`
turns it off.

Only the architecture the shipped model has is supported (BERT, absolute positions, GELU,
mean pooling, Normalize); `load` returns None for any other model folder and the caller
keeps sentence-transformers."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_ST = "sentence_transformers.models."


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (3 * hidden, hidden): query, key, value stacked, (out, in) as torch keeps them
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    in_w: np.ndarray
    in_b: np.ndarray
    ff_w: np.ndarray
    ff_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _erf(x: np.ndarray) -> np.ndarray:
    """erf with fractional error < 1.2e-7 (the Chebyshev fit of erfc in Numerical Recipes):
    NumPy has no erf, and SciPy would cost an import at every start."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


_INV_SQRT2 = np.float32(1.0 / np.sqrt(2.0))


def _gelu(x: np.ndarray) -> np.ndarray:
    # A float32 constant: NumPy 2 keeps an array's dtype against a Python float but promotes it
    # against a float64 scalar such as np.sqrt(2.0), and every later matmul then ran in float64.
    return 0.5 * x * (1.0 + _erf(x * _INV_SQRT2))


@dataclass
class NumpyEncoder:
    """A BERT sentence encoder in NumPy: `encode(text)` -> L2-normalised float32 vector."""

    tokenizer: object  # tokenizers.Tokenizer
    word: np.ndarray
    position: np.ndarray
    token_type: np.ndarray
    emb_ln: tuple[np.ndarray, np.ndarray]
    layers: list[_Layer]
    heads: int
    eps: float

    @property
    def dim(self) -> int:
        return int(self.word.shape[1])

    def encode(self, text: str) -> np.ndarray:
        enc = self.tokenizer.encode(text)  # type: ignore[attr-defined]
        ids = np.asarray(enc.ids, dtype=np.int64)
        types = np.asarray(enc.type_ids, dtype=np.int64)
        x = self.word[ids] + self.position[: len(ids)] + self.token_type[types]
        x = _layer_norm(x, *self.emb_ln, self.eps)
        n, hidden = x.shape
        d = hidden // self.heads
        scale = np.float32(1.0 / np.sqrt(d))  # float32: see _gelu
        for L in self.layers:
            qkv = x @ L.qkv_w.T + L.qkv_b
            q, k, v = (qkv[:, i * hidden:(i + 1) * hidden].reshape(n, self.heads, d).transpose(1, 0, 2)
                       for i in range(3))
            s = (q @ k.transpose(0, 2, 1)) * scale  # one sequence, no padding: no mask needed
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = _layer_norm(x + ctx @ L.out_w.T + L.out_b, L.ln1_w, L.ln1_b, self.eps)
            h = _gelu(x @ L.in_w.T + L.in_b)
            x = _layer_norm(x + h @ L.ff_w.T + L.ff_b, L.ln2_w, L.ln2_b, self.eps)
        v = x.mean(0)  # mean pooling over every token (a single unpadded sequence)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only view of the file mapped in memory.
    The format: an 8-byte little-endian header length, a JSON header (per tensor: dtype,
    shape, byte offsets into the data that follows), then the data. `safetensors.numpy`
    copies all 90 MB of MiniLM into memory (0.07 s) where a question reads a few rows of its
    word-embedding table; a cold `rag search` paid that and 0.07 s of transposed copies."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        out[name] = data[start:end].view(dtype).reshape(spec["shape"])
    return out


def _supported(folder: Path) -> tuple[dict, int] | None:
    """The BERT config and max_seq_length when `folder` is a model this encoder reproduces."""
    try:
        modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        if modules != [_ST + "Transformer", _ST + "Pooling", _ST + "Normalize"]:
            return None
        cfg = json.loads((folder / "config.json").read_text())
        pool = json.loads((folder / "1_Pooling" / "config.json").read_text())
        st = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    other_pooling = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v
                     and k != "pooling_mode_mean_tokens"]
    ok = (cfg.get("model_type") == "bert" and cfg.get("hidden_act") == "gelu"
          and cfg.get("position_embedding_type", "absolute") == "absolute"
          and pool.get("pooling_mode_mean_tokens") and not other_pooling
          and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())
    return (cfg, int(st.get("max_seq_length") or 256)) if ok else None


@functools.lru_cache(maxsize=2)
def load(folder: str) -> NumpyEncoder | None:
    """The NumPy encoder for a sentence-transformers folder, or None when it is another kind of
    model (or its files cannot be read), in which case the caller uses sentence-transformers."""
    path = Path(folder)
    spec = _supported(path)
    if spec is None:
        return None
    cfg, max_len = spec
    try:
        from tokenizers import Tokenizer

        w = read_safetensors(path / "model.safetensors")
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as e:  # a broken or unexpected file: torch handles it, or says why
        log.warning("NumPy query encoder unavailable for %s (%s); using sentence-transformers", folder, e)
        return None
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    pre = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

    def g(name: str) -> np.ndarray:
        # float32 weights stay views of the mapped file: only the pages a question touches
        # are read (a handful of rows of the 47 MB word-embedding table)
        return np.asarray(w[pre + name], dtype=np.float32)

    layers = []
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        # Linear weights are (out, in) as torch stores them; the forward pass multiplies by
        # their transposed views, which BLAS reads without a copy.
        layers.append(_Layer(
            qkv_w=np.concatenate([g(a + f"self.{n}.weight") for n in ("query", "key", "value")]),
            qkv_b=np.concatenate([g(a + f"self.{n}.bias") for n in ("query", "key", "value")]),
            out_w=g(a + "output.dense.weight"), out_b=g(a + "output.dense.bias"),
            ln1_w=g(a + "output.LayerNorm.weight"), ln1_b=g(a + "output.LayerNorm.bias"),
            in_w=g(p + "intermediate.dense.weight"), in_b=g(p + "intermediate.dense.bias"),
            ff_w=g(p + "output.dense.weight"), ff_b=g(p + "output.dense.bias"),
            ln2_w=g(p + "output.LayerNorm.weight"), ln2_b=g(p + "output.LayerNorm.bias"),
        ))
    return NumpyEncoder(
        tokenizer=tok, word=g("embeddings.word_embeddings.weight"),
        position=g("embeddings.position_embeddings.weight"),
        token_type=g("embeddings.token_type_embeddings.weight"),
        emb_ln=(g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias")),
        layers=layers, heads=int(cfg["num_attention_heads"]), eps=float(cfg.get("layer_norm_eps", 1e-12)),
    )


def verify(encoder: NumpyEncoder, texts: list[str], reference: np.ndarray) -> float:
    """The smallest cosine between this encoder's vectors and `reference` (the torch model's,
    normalised) for `texts`."""
    got = np.stack([encoder.encode(t) for t in texts])
    return float((got * reference).sum(1).min())
