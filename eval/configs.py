"""Named pipeline configurations that `rag eval` compares side by side.

A configuration composes the query path (`retrieval/pipeline.py`): settings overrides (nested
like `rag.toml`), the stages it leaves out (`skip`, names from `retrieval.state.SKIPPABLE`)
and whether query translation runs (`translate`: the LLM-side stages, routing included, with
`answer.strategy`). `eval/runners.py` runs one query of a configuration.

To add one: `register(EvalConfig("name", "what it measures", {"search": {...}}, skip=...))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.settings import Settings
from retrieval.state import FIRST_STAGE


@dataclass(frozen=True)
class EvalConfig:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    # Stages left out. First-stage configurations leave the reranking stages out, so "hybrid"
    # stays plain fusion however the defaults change.
    skip: frozenset[str] = frozenset()
    translate: bool = False  # route and translate the question with `answer.strategy` (LLM calls)
    uses_llm: bool = False
    # False: run only when named, though it makes no LLM call (it builds an index of its own,
    # or encodes every question's candidates: seconds per question on a CPU)
    by_default: bool = True

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


def not_default() -> list[str]:
    """The configurations a plain `rag eval` leaves out: those that call the LLM (and the few
    that build an index of their own or are slow per question, `by_default=False`)."""
    return [n for n, c in REGISTRY.items() if c.uses_llm or not c.by_default]


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
                f"not run by default, as each calls the LLM for every question or chunk (or builds an "
                f"index of its own, or encodes every question's candidates): "
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
        chosen.append(cfg)
    return chosen, notes


# --- first-stage search -------------------------------------------------------------
# The plain retrievers are the peers the default is measured against: no reranking, no
# cross-language expansion (glosses, dictionary translations) of the question, and BM25 over
# jieba's words alone (no CJK character bigrams): plain jieba BM25.
PEER = FIRST_STAGE | {"gloss"}
register(
    EvalConfig(
        "dense",
        "MiniLM embeddings, Chroma nearest neighbours",
        {"search": {"mode": "dense", "cjk_bigrams": False}},
        skip=PEER,
    )
)
register(
    EvalConfig(
        "bm25",
        "bm25s keyword search (English stemming, jieba for Chinese)",
        {"search": {"mode": "bm25", "cjk_bigrams": False}},
        skip=PEER,
    )
)
register(
    EvalConfig(
        "hybrid", "dense + BM25 fused by reciprocal rank fusion",
        {"search": {"mode": "hybrid", "cjk_bigrams": False}},
        skip=PEER,
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
        {"search": {"mode": "hybrid", "coarse": True}},
        skip=frozenset({"ltr"}),
    )
)
register(
    EvalConfig(
        "hybrid+sbert+ltr",
        "hybrid, SBERT coarse rerank, LightGBM LTR fine rerank",
        {"search": {"mode": "hybrid", "coarse": True, "ltr": True}},
    )
)

# --- late interaction (retrieval/late_interaction.py) -----------------------------------
register(
    EvalConfig(
        "hybrid+sbert+late",
        "hybrid, SBERT coarse rerank, then ColBERT-style MaxSim over the bi-encoder's token vectors",
        {"search": {"mode": "hybrid", "coarse": True, "late": True}},
        skip=frozenset({"ltr"}), by_default=False,
    )
)
register(EvalConfig("default+late", "the default with the late-interaction stage on",
                    {"search": {"late": True}}, by_default=False))

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
                "search": {"mode": "hybrid"},
                "answer": {"strategy": _strategy},
                "route": {"collections": []},
            },  # only the evaluation index, never the user's collections
            skip=FIRST_STAGE,
            translate=True,
            uses_llm=True,
        )
    )

# --- index representations (ingest/represent.py, ingest/raptor.py) ----------------------
for _name, _what, _layer in (
    ("multi-rep", "hybrid over chunks plus LLM summaries/questions mapped to parents",
     "multi_representation"),
    ("raptor", "hybrid over chunks plus the RAPTOR tree of cluster summaries", "raptor"),
):
    register(
        EvalConfig(
            _name, _what, {"search": {"mode": "hybrid"}, "ingest": {_layer: True}},
            skip=FIRST_STAGE, uses_llm=True,
        )
    )

# --- the knowledge graph (ingest/graph.py, retrieval/graph.py) -----------------------------
# Read by co-occurrence (no LLM call; what `auto` does with a small model): each builds an index
# of its own with the graph, so they run when named (data/eval/multihop, README).
_GRAPH = {"graph": True, "graph_extraction": "cooccurrence"}
register(
    EvalConfig(
        "hybrid+graph", "hybrid plus the knowledge graph's chunks (co-occurrence graph), fused by RRF",
        {"search": {"mode": "hybrid"}, "ingest": _GRAPH}, skip=PEER, by_default=False,
    )
)
register(
    EvalConfig(
        "default+graph", "the default pipeline over an index with the knowledge graph (co-occurrence)",
        {"ingest": _GRAPH}, by_default=False,
    )
)
