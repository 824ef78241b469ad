"""Batch encoding in torch from the model's own weights, without sentence-transformers.

Why: importing sentence-transformers (and the parts of transformers it pulls in) costs ~4.5 s
of every process that encodes a batch (an ingest, a UI upload, the ranker's training), on top
of torch's own ~1.5 s, and its `encode` orders a batch by characters rather than tokens. The
shipped MiniLM is a plain BERT (core/query_encoder.py says which models qualify): the forward
pass here is the same arithmetic in the same torch kernels (linear layers, scaled dot-product
attention over a padding mask, GELU, layer norm, mean pooling over the real tokens, L2
normalisation), fed the same tokenizer.json truncated at the model's max_seq_length, so the
vectors match sentence-transformers' to cosine >= 0.9999 (tests/core/test_torch_encoder.py;
`rag doctor` checks the configured model). Texts are sorted by token count before batching, so
a batch carries almost no padding. `embedding.direct_batches = false` keeps sentence-transformers.

On a CPU that multiplies bfloat16 in hardware (AVX512-BF16 or AMX: `native_bf16`), the linear
layers, nearly all of the arithmetic, take bfloat16 inputs and weights and accumulate in float32,
while embeddings, attention, GELU, layer norms and pooling stay float32
(`embedding.precision`). On the 2 cores of an AVX512-BF16 EPYC that encoded 640 sci-en chunks
1.5x faster, the vectors at cosine >= 0.99995 to the float32 ones, above the 0.9999 that the
NumPy query encoder is held to (README, Ingest speed). Without that hardware bfloat16 is
emulated and slower, so `auto` keeps float32 there and on other devices.

The weights come from the NumPy encoder's arrays (one reading of the safetensors file and one
list of which tensors exist); only its architecture is supported."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from core import query_encoder
from core.settings import Precision

if TYPE_CHECKING:
    import torch

    from core.query_encoder import NumpyEncoder


@dataclass
class TorchEncoder:
    """A BERT sentence encoder in torch: `encode(texts, batch_size)` -> L2-normalised rows."""

    tokenizer: Any  # tokenizers.Tokenizer, truncating at the model's max_seq_length
    word: torch.Tensor
    position: torch.Tensor
    token_type: torch.Tensor
    emb_ln: tuple[torch.Tensor, torch.Tensor]
    layers: list[dict[str, torch.Tensor]]  # query_encoder._Layer's fields
    heads: int
    eps: float
    device: str
    precision: str = "float32"  # of the linear layers' inputs and weights; "bfloat16" or "float32"

    @property
    def dim(self) -> int:
        return int(self.word.shape[1])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        import torch

        encs = self.tokenizer.encode_batch(texts)
        # longest first (the first batch shows at once whether memory suffices), by tokens
        order = sorted(range(len(texts)), key=lambda i: -len(encs[i].ids))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), max(1, batch_size)):
            rows = order[start:start + max(1, batch_size)]
            width = max(len(encs[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros((len(rows), width), dtype=np.bool_)
            for r, i in enumerate(rows):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                types[r, :n] = encs[i].type_ids
                mask[r, :n] = True
            vecs = self._forward(*(torch.from_numpy(a).to(self.device) for a in (ids, types, mask)))
            out[rows] = vecs.float().cpu().numpy()
        return out

    def _forward(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            # bfloat16 weights: the input is rounded to them and the float32-accumulated
            # product comes back as float32, so the residual stream never leaves float32
            return F.linear(x, w, b) if w.dtype == x.dtype else F.linear(x.to(w.dtype), w, b).float()

        with torch.inference_mode():
            b, n = ids.shape
            hidden = self.dim
            d = hidden // self.heads
            x = self.word[ids] + self.position[:n] + self.token_type[types]
            x = F.layer_norm(x, (hidden,), *self.emb_ln, self.eps)
            attend = mask[:, None, None, :]  # keys that are real tokens, for every query and head
            for L in self.layers:
                qkv = linear(x, L["qkv_w"], L["qkv_b"])
                q, k, v = (t.view(b, n, self.heads, d).transpose(1, 2) for t in qkv.split(hidden, dim=-1))
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
                ctx = ctx.transpose(1, 2).reshape(b, n, hidden)
                x = F.layer_norm(x + linear(ctx, L["out_w"], L["out_b"]), (hidden,), L["ln1_w"],
                                 L["ln1_b"], self.eps)
                h = F.gelu(linear(x, L["in_w"], L["in_b"]))
                x = F.layer_norm(x + linear(h, L["ff_w"], L["ff_b"]), (hidden,), L["ln2_w"],
                                 L["ln2_b"], self.eps)
            m = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)  # the mean over real tokens
            return F.normalize(pooled, dim=-1)


# the fields of query_encoder._Layer that a linear layer multiplies by (weights and biases)
_LINEAR = ("qkv_w", "qkv_b", "out_w", "out_b", "in_w", "in_b", "ff_w", "ff_b")
PRECISIONS: tuple[str, ...] = get_args(Precision)


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16, or AMX tiles), as torch's
    own kernels detect it. Where torch lacks the probes, no."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, p, lambda: False)()) for p in probes)


def resolve_precision(precision: str, device: str) -> str:
    """`embedding.precision` made concrete: `auto` is bfloat16 on a CPU that has it in
    hardware, else float32 (emulated bfloat16 is slower; a GPU keeps sentence-transformers)."""
    if precision not in PRECISIONS:
        raise ValueError(f"embedding.precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and native_bf16() else "float32"


def from_numpy(enc: NumpyEncoder, device: str = "cpu", precision: str = "float32") -> TorchEncoder:
    """The torch encoder with `enc`'s weights (copied: the NumPy arrays are read-only views of
    the mapped file, which torch will not wrap); the linear layers' in `precision`."""
    import torch

    def t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).to(device=device, dtype=dtype)

    lin = torch.bfloat16 if precision == "bfloat16" else torch.float32
    layers = [{f: t(getattr(L, f), lin if f in _LINEAR else torch.float32) for f in L.__dataclass_fields__}
              for L in enc.layers]
    return TorchEncoder(
        tokenizer=enc.tokenizer, word=t(enc.word), position=t(enc.position), token_type=t(enc.token_type),
        emb_ln=(t(enc.emb_ln[0]), t(enc.emb_ln[1])), layers=layers, heads=enc.heads, eps=enc.eps,
        device=device, precision=precision,
    )


@functools.lru_cache(maxsize=2)
def load(folder: str, device: str = "cpu", precision: str = "float32") -> TorchEncoder | None:
    """The torch encoder for a sentence-transformers folder, or None when it is a model the
    NumPy encoder does not reproduce (the caller keeps sentence-transformers). `precision` is
    float32 or bfloat16 (`resolve_precision` turns `auto` into one of them)."""
    enc = query_encoder.load(folder)
    return from_numpy(enc, device, precision) if enc is not None else None


def verify(encoder: TorchEncoder, texts: list[str], reference: np.ndarray) -> float:
    """The smallest cosine between this encoder's vectors and `reference` (normalised rows)."""
    return float((encoder.encode(texts) * reference).sum(1).min())
