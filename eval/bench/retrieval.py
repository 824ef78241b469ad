"""`rag bench retrieval`: latency by stage (embed, BM25, dense, fusion, coarse/SBERT, LTR) at several
index sizes, p50/p95, without generation and with model loading excluded.

The indexes hold generated chunks: sentences drawn from standard-library docstrings,
with vectors mixed from real MiniLM embeddings of those sentences (so the vector space
has the clustered shape of real text without embedding 10,000 chunks for a benchmark).
Queries are real: embedded by MiniLM at query time and searched through the whole
pipeline, with a LightGBM ranker in place so the LTR stage runs.

    .venv/bin/python -m eval.bench.retrieval [--sizes 1000,10000] [--queries 100] [--json OUT]
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.index import Index
from core.settings import Settings, load_settings
from core.types import Record, stable_id
from eval.bench import DEFAULT_SIZES, Echo, machine, parser, write_json

STAGES = ("embed", "bm25", "dense", "fuse", "coarse", "ltr")


def _sentences(limit: int = 3000) -> list[str]:
    from eval.labelled import docstrings

    std = Path(sysconfig.get_paths()["stdlib"])
    roots = [std / n for n in ("json", "email", "http", "logging", "asyncio", "importlib", "xml", "unittest")]
    data = docstrings(roots, max_docs=2000, max_queries=0, seed=0)
    out: list[str] = []
    for _title, text in data.corpus.values():
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 30 <= len(s) <= 300:
                out.append(s)
    random.Random(0).shuffle(out)
    return out[:limit]


def build(settings: Settings, n: int, sentences: list[str], base: np.ndarray, seed: int = 0) -> Index:
    """An index of `n` generated chunks (reused when already built)."""
    index = Index(settings)
    if index.exists() and index.docs.count() == n:
        return index
    rng = np.random.default_rng(seed)
    per_file = 50
    for f in range(0, n, per_file):
        path = str(settings.index_path / "generated" / f"doc{f // per_file:05d}.md")
        recs, vecs = [], []
        for i in range(f, min(n, f + per_file)):
            pick = rng.choice(len(sentences), size=4, replace=False)
            text = " ".join(sentences[j] for j in pick)
            recs.append(
                Record(
                    stable_id(path, str(i), text), text, path, title=f"Section {i}", start=0, end=len(text)
                )
            )
            v = base[pick].sum(axis=0) + rng.normal(0, 0.02, base.shape[1])
            vecs.append(v / np.linalg.norm(v))
        index.vectors.upsert(recs, np.asarray(vecs, dtype=np.float32))
        index.docs.replace_file(path, f"gen{f}", 0, "", recs)
    index.rebuild_keyword()
    index.write_manifest()
    return index


def _ranker(settings: Settings) -> None:
    from eval.train_ranker import Group, fit, save
    from retrieval import features

    rng = np.random.default_rng(0)
    groups = []
    for q in range(40):
        x = rng.random((30, len(features.FEATURES))).astype(np.float32)
        y = (x[:, 0] > 0.7).astype(np.int32)
        groups.append(Group(f"q{q}", x, y, [str(i) for i in range(30)], {}))
    save(
        fit(groups),
        settings.index_path / "ranker",
        Index(settings).embedder.name,
        {"note": "benchmark model"},
    )


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2)}


def run(
    settings: Settings, *, sizes: Sequence[int] = DEFAULT_SIZES, queries: int = 100, root: Path | None = None,
    echo: Echo | None = None,
) -> dict[str, Any]:
    """Latency per stage and in total (ms, p50/p95) at each size; a line per size through `echo`."""
    from retrieval.pipeline import retrieve

    say = echo or (lambda *a, **k: None)
    root = root or Path("reports/.cache/bench-retrieval")
    sentences = _sentences()
    probe = load_settings(index_dir=str(root / "probe"))
    base = Index(probe).embedder.embed(sentences)
    qs = [" ".join(s.split()[:8]) for s in random.Random(1).sample(sentences, queries)]
    out: dict[str, Any] = {
        "queries": queries,
        "cpus": machine.cores(),
        "load_avg": machine.load_avg(),
        "sizes": {},
    }
    for n in sizes:
        s = settings.model_copy(update={"index_dir": root / f"n{n}"})
        t0 = time.perf_counter()
        index = build(s, n, sentences, base)
        built = time.perf_counter() - t0
        # What `rag ingest` adds after a first ingest: the self-trained ranker (eval/self_train.py)
        from eval.self_train import self_train

        shutil.rmtree(s.index_path / "ranker", ignore_errors=True)
        trained = self_train(index, s)
        _ranker(s)  # then a fixed model, so that every size times the LTR stage the same way
        retrieve("warm up the models and caches", s, index=index, k=5)
        per_stage: dict[str, list[float]] = {st: [] for st in STAGES}
        total: list[float] = []
        for q in qs:
            t = time.perf_counter()
            res = retrieve(q, s, index=index, k=s.search.top_k)
            total.append((time.perf_counter() - t) * 1000)
            tm = res.timings()
            for st in STAGES:
                per_stage[st].append(tm.get(st, 0.0))
        row: dict[str, Any] = {st: _pct(v) for st, v in per_stage.items()}
        row["total"] = _pct(total)
        row["build_seconds"] = round(built, 1)
        row["self_train"] = {"seconds": trained.seconds, "queries": trained.queries, "active": trained.active}
        out["sizes"][n] = row
        say(
            f"{n:>6} chunks  "
            + "  ".join(f"{st} {row[st]['p50']:.1f}/{row[st]['p95']:.1f}" for st in (*STAGES, "total"))
            + f"  (ms p50/p95); self-trained ranker: {trained.queries} pseudo-queries "
            f"in {trained.seconds:.1f} s"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.split("\n\n")[0].strip('"'))
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--root", type=Path, default=None)
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    res = run(load_settings(), sizes=sizes, queries=a.queries, root=a.root,
              echo=lambda m: print(m, flush=True))
    print(json.dumps(res, indent=2))
    write_json(a.json, res)


if __name__ == "__main__":
    main()
