"""Named pipeline configurations that `rag eval` compares side by side.

A configuration is settings overrides (nested like `rag.toml`) plus the function that
runs one query. Stages that other modules provide (reranking, query translation, RAPTOR,
multi-representation) name the modules they need in `requires`; until those exist the
configuration is listed as unavailable, with a note, instead of failing the run.

To add one: `register(EvalConfig("name", "what it measures", {"search": {...}}, ...))`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.settings import Settings

# First-stage configurations switch the later stages off, so "hybrid" stays plain
# fusion however the defaults change.
_NO_RERANK = {"coarse": False, "ltr": False}


@dataclass(frozen=True)
class EvalConfig:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()  # modules that must be importable
    # "module:function" called as fn(question, settings, index=index, k=k) -> RetrievalResult
    runner: str = "retrieval.pipeline:retrieve"
    uses_llm: bool = False

    def shaping(self) -> dict[str, Any]:
        """The overrides that change what is indexed (so need an index of their own)."""
        return {k: v for k, v in self.overrides.items() if k in ("chunk", "embedding", "ingest")}


REGISTRY: dict[str, EvalConfig] = {}


def register(cfg: EvalConfig) -> EvalConfig:
    REGISTRY[cfg.name] = cfg
    return cfg


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """A copy of `settings` with nested overrides applied (environment not re-read)."""
    return Settings.model_validate(merge(settings.model_dump(), overrides))


def missing_modules(cfg: EvalConfig) -> list[str]:
    out = []
    for mod in cfg.requires:
        try:
            if importlib.util.find_spec(mod) is None:
                out.append(mod)
        except ModuleNotFoundError:
            out.append(mod)
    return out


def runner(cfg: EvalConfig) -> Callable[..., Any]:
    mod, _, fn = cfg.runner.partition(":")
    return getattr(importlib.import_module(mod), fn)  # type: ignore[no-any-return]


def not_default() -> list[str]:
    """The configurations a plain `rag eval` leaves out: those that call the LLM."""
    return [n for n, c in REGISTRY.items() if c.uses_llm]


def select(names: list[str] | None) -> tuple[list[EvalConfig], list[tuple[str, str]]]:
    """The configurations to run, and (kind, message) notes for those skipped.

    By default only the configurations that make no LLM call: the query strategies call it
    for every question and multi-rep / RAPTOR for every chunk at ingest, which with the
    embedded model on a CPU means hours on a set of a few hundred questions or thousands of
    documents. They run when named (or with "all"), and the note names them."""
    notes: list[tuple[str, str]] = []
    if not names:
        left = not_default()
        wanted = [n for n in REGISTRY if n not in left]
        if left:
            notes.append((
                "configs_not_default",
                f"not run by default, as each calls the LLM for every question or chunk: "
                f"{', '.join(left)}; name them with --configs (or --configs all)",
            ))
    elif names == ["all"]:
        wanted = list(REGISTRY)
    else:
        wanted = names
    chosen: list[EvalConfig] = []
    for name in wanted:
        cfg = REGISTRY.get(name)
        if cfg is None:
            notes.append(
                (
                    "configs_unknown",
                    f"configuration {name!r} is not known; choose from: {', '.join(REGISTRY)}",
                )
            )
            continue
        missing = missing_modules(cfg)
        if missing:
            notes.append(
                (
                    "configs_unavailable",
                    f"configuration {name!r} needs {', '.join(missing)}, "
                    "which is not in this installation yet; skipped",
                )
            )
            continue
        chosen.append(cfg)
    return chosen, notes


# --- first-stage search -------------------------------------------------------------
register(
    EvalConfig(
        "dense", "MiniLM embeddings, Chroma nearest neighbours", {"search": {"mode": "dense", **_NO_RERANK}}
    )
)
register(
    EvalConfig(
        "bm25",
        "bm25s keyword search (English stemming, jieba for Chinese)",
        {"search": {"mode": "bm25", **_NO_RERANK}},
    )
)
register(
    EvalConfig(
        "hybrid", "dense + BM25 fused by reciprocal rank fusion", {"search": {"mode": "hybrid", **_NO_RERANK}}
    )
)

register(
    EvalConfig(
        "default",
        "what `rag search` does after `rag ingest`: hybrid, coarse, the self-trained LTR where it "
        "switched itself on, passage windows",
        {},
    )
)

# --- reranking stages (retrieval/rerank.py) -------------------------------------------
register(
    EvalConfig(
        "hybrid+sbert",
        "hybrid, then SBERT coarse rerank",
        {"search": {"mode": "hybrid", "coarse": True, "ltr": False}},
        requires=("retrieval.rerank",),
    )
)
register(
    EvalConfig(
        "hybrid+sbert+ltr",
        "hybrid, SBERT coarse rerank, LightGBM LTR fine rerank",
        {"search": {"mode": "hybrid", "coarse": True, "ltr": True}},
        requires=("retrieval.rerank",),
    )
)

# --- query translation (retrieval/translate.py) ---------------------------------------
for _strategy, _what in (
    ("multi-query", "LLM-written query variants, union of results"),
    ("fusion", "RAG-Fusion: LLM-written query variants fused by RRF"),
    ("decompose", "question split into sub-questions"),
    ("step-back", "question plus a more general step-back question"),
    ("hyde", "dense search with a hypothetical answer passage"),
    ("auto", "the router picks the strategy"),
):
    register(
        EvalConfig(
            _strategy,
            _what,
            {
                "search": {"mode": "hybrid", **_NO_RERANK},
                "answer": {"strategy": _strategy},
                "route": {"collections": []},
            },  # only the evaluation index, never the user's collections
            requires=("retrieval.translate",),
            runner="eval.runners:translated",
            uses_llm=True,
        )
    )

# --- index representations (ingest/represent.py, ingest/raptor.py) ----------------------
register(
    EvalConfig(
        "multi-rep",
        "hybrid over chunks plus LLM summaries/questions mapped to parents",
        {"search": {"mode": "hybrid", **_NO_RERANK}, "ingest": {"multi_representation": True}},
        requires=("ingest.represent",),
        uses_llm=True,
    )
)
register(
    EvalConfig(
        "raptor",
        "hybrid over chunks plus the RAPTOR tree of cluster summaries",
        {"search": {"mode": "hybrid", **_NO_RERANK}, "ingest": {"raptor": True}},
        requires=("ingest.raptor",),
        uses_llm=True,
    )
)
