"""Per-token vectors for late interaction (ColBERT's MaxSim, retrieval/late.py).

Two encoders behind one small protocol:

- `BiEncoderTokens` (the default): the token embeddings of the bi-encoder the index already
  uses (the shipped MiniLM), before its mean pooling, L2-normalised. The same forward pass
  that embeds a text at ingest yields them, so nothing new is downloaded or trained; the
  model was not trained for MaxSim, which is why the stage is measured before it is used.
- `ColbertFolderTokens`: a ColBERT checkpoint in PyLate's folder layout on disk (a
  sentence-transformers Transformer at the root, `modules.json` naming a PyLate `Dense`
  projection in `1_Dense/`, the `[Q] ` / `[D] ` prefixes and query length in
  `config_sentence_transformers.json`). It is read with transformers and safetensors
  directly: PyLate itself pins sentence-transformers 5.3 and a torch 2.11 CUDA build
  (fast-plaid), which cannot be installed beside this project's torch 2.13 CPU wheel.

Special tokens ([CLS], [SEP], padding) are left out of both sides: with a pooled
bi-encoder they carry the sentence as a whole, not a term, and would match everything.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import ConfigError

log = logging.getLogger(__name__)

PYLATE_DENSE = "pylate.models.Dense.Dense"


class TokenEncoder(Protocol):
    name: str

    def query(self, text: str) -> np.ndarray:
        """(tokens x dim) L2-normalised vectors of a question."""
        ...

    def documents(self, texts: list[str]) -> list[np.ndarray]:
        """One (tokens x dim) L2-normalised matrix per text."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _keep(ids: Any, mask: Any, special: set[int]) -> np.ndarray:
    """Rows of real, non-special tokens."""
    ids_a = np.asarray(ids)
    mask_a = np.asarray(mask).astype(bool)
    return mask_a & ~np.isin(ids_a, list(special))


@dataclass
class BiEncoderTokens:
    """Token vectors of a sentence-transformers bi-encoder (see the module docstring)."""

    model: Any  # SentenceTransformer
    batch_size: int = 32
    name: str = "bi-encoder tokens"

    @functools.cached_property
    def _special(self) -> set[int]:
        return set(getattr(self.model.tokenizer, "all_special_ids", []) or [])

    def documents(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        out = self.model.encode(texts, output_value=None, batch_size=self.batch_size,
                                show_progress_bar=False)
        mats = []
        for o in out:
            emb = o["token_embeddings"].float().cpu().numpy()
            n = len(emb)
            ids, mask = o["input_ids"].cpu().numpy()[:n], o["attention_mask"].cpu().numpy()[:n]
            keep = _keep(ids, mask, self._special)
            rows = emb[keep] if keep.any() else emb[:1]
            mats.append(_normalise(rows))
        return mats

    def query(self, text: str) -> np.ndarray:
        return self.documents([text])[0]


@dataclass
class ColbertFolderTokens:
    """A PyLate-layout ColBERT checkpoint read without PyLate (module docstring)."""

    folder: Path
    device: str = "cpu"
    name: str = "colbert"

    @functools.cached_property
    def _parts(self) -> tuple[Any, Any, np.ndarray, dict[str, Any]]:
        import torch
        from safetensors.numpy import load_file
        from transformers import AutoModel, AutoTokenizer

        cfg = _colbert_config(self.folder)
        dense_dir = self.folder / cfg["dense"]
        files = sorted(dense_dir.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"The ColBERT folder {self.folder} has no projection weights in {dense_dir}; "
                              "point search.late_model at a PyLate model saved with `model.save(...)`.")
        weights = load_file(str(files[0]))
        key = next((k for k in weights if k.endswith("weight")), None)
        if key is None:
            raise ConfigError(f"{files[0]} holds no linear weight; is {self.folder} a PyLate model?")
        tok = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).to(self.device).eval()
        torch.set_grad_enabled(False)
        return tok, model, np.asarray(weights[key], dtype=np.float32), cfg

    def _encode(self, texts: list[str], prefix: str, length: int, expand: bool) -> list[np.ndarray]:
        import torch

        tok, model, proj, _ = self._parts
        batch = tok([prefix + t for t in texts], padding="max_length" if expand else True, truncation=True,
                    max_length=length, return_tensors="pt")
        if expand:  # ColBERT's query augmentation: padding becomes [MASK] tokens the model attends to
            pad = batch["attention_mask"] == 0
            batch["input_ids"][pad] = tok.mask_token_id
            batch["attention_mask"][:] = 1
        with torch.no_grad():
            hidden = model(**{k: v.to(self.device) for k, v in batch.items()}).last_hidden_state.cpu().numpy()
        special = set(tok.all_special_ids) - ({tok.mask_token_id} if expand else set())
        out = []
        ids_all, masks = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
        for h, ids, mask in zip(hidden, ids_all, masks, strict=True):
            keep = _keep(ids, mask, special)
            out.append(_normalise((h[keep] if keep.any() else h[:1]) @ proj.T))
        return out

    def query(self, text: str) -> np.ndarray:
        c = self._parts[3]
        return self._encode([text], c["query_prefix"], c["query_length"], c["expand"])[0]

    def documents(self, texts: list[str]) -> list[np.ndarray]:
        c = self._parts[3]
        return self._encode(texts, c["document_prefix"], c["document_length"], False) if texts else []


def _colbert_config(folder: Path) -> dict[str, Any]:
    """What the encoder needs from a PyLate folder, or a ConfigError naming what is missing."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"search.late_model '{folder}' is not a PyLate/ColBERT folder (no readable "
                          f"modules.json: {e}); point it at a model saved by PyLate, or unset it to use "
                          "the bi-encoder's token vectors.") from e
    dense = next((m.get("path") for m in modules if str(m.get("type", "")).endswith("Dense")), None)
    if not dense:
        raise ConfigError(f"{folder}/modules.json names no Dense projection ({PYLATE_DENSE}); "
                          "is it a ColBERT model?")
    try:
        st = json.loads((folder / "config_sentence_transformers.json").read_text())
    except (OSError, ValueError):
        st = {}
    return {
        "dense": dense,
        "query_prefix": st.get("query_prefix", "[Q] "),
        "document_prefix": st.get("document_prefix", "[D] "),
        "query_length": int(st.get("query_length", 32)),
        "document_length": int(st.get("document_length", 180)),
        "expand": bool(st.get("do_query_expansion", True)),
    }


@functools.lru_cache(maxsize=2)
def colbert_folder(path: str, device: str) -> ColbertFolderTokens:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"search.late_model '{path}' is not a folder; point it at a ColBERT model saved "
                          "by PyLate, or unset it to use the bi-encoder's token vectors.")
    _colbert_config(folder)  # fail early, with the message, not at the first query
    return ColbertFolderTokens(folder, device, name=f"colbert {folder}")
