"""Train the LTR model from a labelled dataset (`rag train-ranker --beir`, `--synthetic`):
the dataset's corpus gets its own evaluation index (eval.evaluate.corpus_index), its queries
become lambdarank groups (eval.train_ranker), and the model is written beside the user's index.
Kept apart from eval/train_ranker.py so that the evaluation (which self-trains its indexes'
rankers with eval/self_train.py) and the training code import one way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import RagError
from core.index import Index
from core.lock import write_lock
from core.settings import Settings
from eval.train_ranker import Progress, collect, save, train_groups


def train_dataset(
    ds: Any,
    settings: Settings,
    out: Path | None = None,
    seed: int = 0,
    holdout: float = 0.2,
    cache_dir: Path = Path("reports/.cache"),
    progress: Progress | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train from an `eval.datasets.Dataset` and write the model (default: beside the index)."""
    from eval.datasets import validate
    from eval.evaluate import corpus_index
    from retrieval.rerank import ranker_path

    def ingest_progress(event: str, n: int) -> None:
        if progress and event == "file":
            progress("index", n, 0)

    target = corpus_index(ds, settings, cache_dir, ingest_progress if progress else None)
    chunk_level = ds.corpus.kind == "index"
    validate(ds, set(target.index.docs.all_ids()) if chunk_level else None)
    if not ds.queries:
        raise RagError(f"The dataset {ds.name} has no query with a relevant judgement to train on.")
    run_settings = target.index.settings
    label = (lambda h: h.record.id) if ds.level == "chunk" else target.doc_of
    groups = collect(ds.queries, ds.qrels, target.index, run_settings, label, progress)
    booster, report = train_groups(groups, seed, holdout)
    report.update(
        {
            "dataset": ds.name,
            "level": ds.level,
            "index": target.info.get("path"),
            "skipped": dict(ds.issues.counts),
            **(extra or {}),
        }
    )
    dest = out or ranker_path(settings)
    with write_lock(settings.index_path, "ranker training"):  # one writer at a time (core/lock.py)
        save(booster, dest, Index(settings).embedder.name, report)
    report["model"] = str(dest)
    return report
