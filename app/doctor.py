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
    from core.models import get_embedder

    try:
        emb = get_embedder(settings.embedding)
        dim = emb.dim
        return {"name": "embedding model", "state": "ok",
                "detail": f"{emb.name} ({dim} dims) on {settings.embedding.device}"}
    except Exception as e:
        return {"name": "embedding model", "state": "fail", "detail": str(e)}


@check
def vector_store(settings: Settings) -> Check:
    from core.index import Index

    idx = Index(settings)
    try:
        n = idx.vectors.count()
        where = settings.chroma_url or str(settings.index_path / "chroma")
        return {"name": "vector store", "state": "ok", "detail": f"Chroma {idx.vectors.mode} at {where}, {n} vectors"}
    except Exception as e:
        return {"name": "vector store", "state": "fail", "detail": str(e)}


@check
def index(settings: Settings) -> Check:
    from core.index import Index

    st = Index(settings).status()
    if not st["exists"]:
        return {"name": "index", "state": "warn", "detail": f"none at {st['index_dir']}; run `rag ingest PATH`"}
    return {"name": "index", "state": "ok",
            "detail": f"{st['index_dir']}: {st['documents']} documents, {st['chunks']} chunks ({st['embedding_model']})"}


@check
def gpu(settings: Settings) -> Check:
    try:
        import torch

        if torch.cuda.is_available():
            return {"name": "GPU", "state": "ok", "detail": torch.cuda.get_device_name(0)}
    except Exception:
        pass
    return {"name": "GPU", "state": "warn", "detail": "no CUDA device visible to torch; running on CPU"}


def run_checks(settings: Settings) -> list[Check]:
    return [c(settings) for c in CHECKS]
