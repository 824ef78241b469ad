"""`rag bench late`: the late-interaction stage's two ways of getting candidates' token vectors,
on the current index (`RAG_INDEX_DIR`), side by side:

- computed: the top `search.late_keep` candidates encoded at query time (what the stage does;
  its per-process cache emptied before each question, as in a fresh `rag search`);
- stored: every chunk's token vectors encoded once (the ingest-time cost, timed) and kept as
  float16 in one file beside the index (the disk cost, measured), each question reading its
  candidates' rows through a memory map.

Questions are pseudo-queries (the first words of random chunks); each is searched once without
the stage to get its candidates, then both ways score the same candidates. Prints the load
average before and after; refuses on a busy machine.

    .venv/bin/python -m eval.bench.late [--queries 50] [--json OUT]
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.bench import Echo, machine, parser, write_json


def _pct(values: list[float]) -> dict[str, float]:
    return {k: round(float(np.percentile(values, p)), 2) for k, p in (("p50", 50), ("p95", 95))}


def run(settings: Any, *, queries: int = 50, echo: Echo | None = None) -> dict[str, Any]:
    from core.index import Index
    from core.lang import cjk_share
    from retrieval import late_interaction as li
    from retrieval.pipeline import retrieve

    say = echo or (lambda *a, **k: None)
    load0 = machine.load_avgs()
    if (why := machine.busy()) is not None:
        say(why)
        return {"refused": why, "load_avg": load0}
    index = Index(settings)
    recs = [r for r in index.docs.iter_records(("chunk",))
            if cjk_share(r.text[:1000]) <= settings.search.late_max_cjk]
    if not recs:
        return {"refused": "no English chunks in the index (the stage steps aside for Chinese text)"}
    enc = li.encoder(index, settings)
    rng = random.Random(0)
    qs = [" ".join(r.text.split()[:8]) for r in rng.sample(recs, min(queries, len(recs)))]
    keep = settings.search.late_keep
    heads = [[h.record for h in retrieve(q, settings, index, k=keep).hits[:keep]] for q in qs]

    # stored: every chunk encoded once, float16 rows in one file, an offset table in memory
    t0 = time.perf_counter()
    mats: list[np.ndarray] = []
    for i in range(0, len(recs), 64):
        mats += enc.documents([r.index_text() for r in recs[i : i + 64]])
    encode_s = time.perf_counter() - t0
    offsets: dict[str, tuple[int, int]] = {}
    pos = 0
    for r, m in zip(recs, mats, strict=True):
        offsets[r.id] = (pos, len(m))
        pos += len(m)
    dim = mats[0].shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.f16"
        np.concatenate(mats).astype(np.float16).tofile(path)
        size = path.stat().st_size
        store = np.memmap(path, dtype=np.float16, mode="r", shape=(pos, dim))
        stored_ms: list[float] = []
        for q, head in zip(qs, heads, strict=True):
            t = time.perf_counter()
            qv = enc.query(q)
            for r in head:
                if r.id in offsets:
                    a, n = offsets[r.id]
                    li.maxsim(qv, np.asarray(store[a : a + n], dtype=np.float32))
            stored_ms.append((time.perf_counter() - t) * 1000)
        del store
    computed_ms: list[float] = []
    for q, head in zip(qs, heads, strict=True):
        li.clear_cache()
        t = time.perf_counter()
        qv = enc.query(q)
        for d in enc.documents([r.index_text() for r in head]):
            li.maxsim(qv, d)
        computed_ms.append((time.perf_counter() - t) * 1000)
    tokens = pos
    out = {
        "chunks": len(recs), "tokens": tokens, "dim": dim, "queries": len(qs), "candidates": keep,
        "stored": {"encode_seconds": round(encode_s, 1), "bytes": size,
                   "bytes_per_chunk": round(size / len(recs)), "ms": _pct(stored_ms)},
        "computed": {"ms": _pct(computed_ms)},
        "load_avg": {"before": load0, "after": machine.load_avgs()},
    }
    say(f"{len(recs)} English chunks, {tokens} tokens x {dim}: stored {size / 1e6:.1f} MB float16 "
        f"({size / len(recs) / 1e3:.1f} KB per chunk), {encode_s:.1f} s to encode them all; per "
        f"question ({keep} candidates) stored {out['stored']['ms']['p50']} ms p50 / "
        f"{out['stored']['ms']['p95']} p95, computed {out['computed']['ms']['p50']} / "
        f"{out['computed']['ms']['p95']} ms; load {load0} -> {out['load_avg']['after']}")
    return out


def main(argv: list[str] | None = None) -> None:
    from core.settings import load_settings

    ap = parser(__doc__.split("\n\n")[0].strip('"'))
    ap.add_argument("--queries", type=int, default=50)
    a = ap.parse_args(argv)
    write_json(a.json, run(load_settings(), queries=a.queries, echo=print))


if __name__ == "__main__":
    main()
