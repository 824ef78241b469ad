"""The derived layers of the index, built after the files are committed: multi-
representation records (ingest/represent.py), the RAPTOR tree (ingest/raptor.py) and the
knowledge graph (ingest/graph.py, its own SQLite file; pruned of removed chunks even when off).
Each is switched on by its setting (or `rag ingest --multi-representation / --raptor`);
each says what it expects to cost before it starts (`notice`). Both share one extractor, so
a sentence embedded for an extractive summary of one layer is not embedded again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core.graph import GRAPH_FILE
from core.index import Index
from core.settings import Settings

log = logging.getLogger(__name__)


def graph_due(index: Index, settings: Settings) -> bool:
    """Whether the knowledge graph has work: it is on, or a graph exists whose removed chunks
    must go."""
    return settings.ingest.graph or (index.path / GRAPH_FILE).exists()


def derive(index: Index, settings: Settings, progress: Callable[[str, int], None] | None = None,
           notice: Callable[[str], None] | None = None) -> tuple[bool, dict[str, Any]]:
    """Update what the settings switch on; returns (anything changed, per-layer summary
    with a printable `line`). `notice` gets each layer's cost estimate before it runs."""
    changed = False
    out: dict[str, Any] = {}
    if graph_due(index, settings):  # the knowledge graph: read by co-occurrence or the LLM (ingest/graph.py)
        from ingest.graph import update_graph  # imported only then: 25 ms of every `rag ingest`

        graph = update_graph(index, settings, progress, notice=notice)
        if settings.ingest.graph or graph.removed:
            out["graph"] = graph.summary() | {"line": graph.line()}
    if not (settings.ingest.multi_representation or settings.ingest.raptor):
        return changed, out
    from ingest.extractive import Extractor

    extractor = Extractor(index.embedder)
    if settings.ingest.multi_representation:
        from ingest.represent import update_representations

        rep = update_representations(index, settings, progress, notice=notice, extractor=extractor)
        changed |= rep.changed
        out["represent"] = rep.summary() | {"line": rep.line()}
    if settings.ingest.raptor:
        from ingest.raptor import update_tree

        tree = update_tree(index, settings, progress, notice=notice, extractor=extractor)
        changed |= tree.changed
        out["raptor"] = tree.summary() | {"line": tree.line()}
    return changed, out
