"""`rag bench raptor`: time and LLM calls to build a tree over ~1,000 chunks with the
configured (default: embedded SmolLM2 via llama.cpp) model, split into clustering and
summarising; then a warm full rebuild (every summary cached) and an incremental update
after one file changes.

The corpus is generated (deterministic): Markdown files whose sections each talk about
one of a dozen topics, so the leaves have cluster structure as real notes do.

Run: `.venv/bin/python -m eval.bench.raptor [--chunks 1000] [--summary-tokens N] [--context-tokens N]
[--json OUT]`.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from core.index import Index
from core.llm import LLM, get_llm
from core.settings import Settings, load_settings
from eval.bench import Echo, machine, parser, write_json

_TOPICS = {
    "coffee": "espresso grinder beans roast crema portafilter brew extraction kettle filter acidity aroma",
    "astronomy": "telescope galaxy nebula orbit planet comet star eclipse redshift observatory moon",
    "gardening": "compost seedlings soil mulch pruning tomatoes irrigation greenhouse roots fertilizer",
    "databases": "index query transaction schema table replication join cursor lock snapshot",
    "cycling": "derailleur chain saddle cadence gears tyre climb peloton brake frame",
    "baking": "dough yeast oven flour crust proofing sourdough butter loaf gluten",
    "networking": "router packet latency bandwidth firewall subnet socket protocol switch gateway",
    "birds": "heron warbler nest migration feathers beak song owl flock wetland",
    "finance": "interest bond portfolio dividend inflation loan equity budget ledger tax",
    "music": "chord melody tempo rhythm harmony scale guitar piano rehearsal orchestra",
    "medicine": "diagnosis vaccine dosage symptom therapy clinic antibiotic nurse immune fever",
    "sailing": "keel mast rudder tack jib harbour mooring wind knot hull",
}
_GLUE = "improves needs affects reduces depends on changes supports controls measures shapes".split(" ")
_ADJ = "careful fresh steady slow early precise warm light dense simple".split()


def _paragraph(rng: random.Random, words: list[str]) -> str:
    out: list[str] = []
    while sum(len(s) for s in out) < 420:
        a, b = rng.sample(words, 2)
        out.append(f"The {rng.choice(_ADJ)} {a} {rng.choice(_GLUE)} the {b}"
                   f"{' by ' + str(rng.randint(2, 90)) + ' percent' if rng.random() < 0.3 else ''}.")
    return " ".join(out)


def generate(folder: Path, chunks: int, per_file: int = 25, seed: int = 11) -> list[Path]:
    rng = random.Random(seed)
    topics = list(_TOPICS)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for f in range((chunks + per_file - 1) // per_file):
        parts = [f"# Notes {f}\n"]
        for s in range(min(per_file, chunks - f * per_file)):
            t = topics[(f * 7 + s * (1 + s % 3)) % len(topics)]
            parts.append(f"## {t.title()} {s}\n\n{_paragraph(rng, _TOPICS[t].split())}\n")
        p = folder / f"notes{f:04d}.md"
        p.write_text("\n".join(parts), encoding="utf-8")
        files.append(p)
    return files


class _Timed:
    """The configured LLM, with its calls counted and timed."""

    def __init__(self, llm: LLM) -> None:
        self.llm, self.calls, self.seconds = llm, 0, 0.0
        self.backend, self.model, self.reason = llm.backend, llm.model, llm.reason

    def complete(self, messages: Any, max_tokens: int | None = None, json_schema: Any = None,
                 temperature: float | None = None) -> str:
        t0 = time.perf_counter()
        try:
            return self.llm.complete(messages, max_tokens=max_tokens, json_schema=json_schema,
                                     temperature=temperature)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0

    def stream(self, messages: Any, max_tokens: int | None = None, temperature: float | None = None) -> Any:
        return self.llm.stream(messages, max_tokens=max_tokens, temperature=temperature)

    def context_window(self) -> int:
        return self.llm.context_window()


def run(settings: Settings, *, chunks: int = 1000, echo: Echo | None = None) -> dict[str, Any]:
    """A cold build of the tree over a generated corpus of `chunks` chunks, a warm full rebuild
    and an incremental update; progress and each build's line printed through `echo`."""
    from ingest.pipeline import ingest
    from ingest.raptor import update_tree

    say = echo or (lambda *_: None)
    tmp = Path(tempfile.mkdtemp(prefix="bench-raptor-"))
    s = settings.model_copy(deep=True, update={"index_dir": tmp / "index"})
    s.ingest.raptor = False
    s.ingest.multi_representation = False
    files = generate(tmp / "corpus", chunks)
    t0 = time.perf_counter()
    ingest([tmp / "corpus"], s)
    index = Index(s)
    n_leaves = index.docs.counts_by_kind().get("chunk", 0)
    say(f"ingested {n_leaves} chunks in {time.perf_counter() - t0:.1f}s")
    timed = _Timed(get_llm(s))
    llm = cast(LLM, timed)  # the real backend, counted and timed
    done = [0, 0]

    def progress(event: str, n: int) -> None:  # clusters summarised / total, as `rag ingest` shows them
        done[event == "raptor_total"] += n
        if event == "raptor" and (done[0] % 10 == 0 or done[0] == done[1]):
            say(f"  {time.perf_counter() - t0:7.1f}s  clusters summarised {done[0]}/{done[1]}, "
                f"{timed.calls} LLM calls")

    t0 = time.perf_counter()
    load_before = machine.load_avg()
    cold = update_tree(index, s, progress=progress, llm=llm, notice=say)
    cold_s = time.perf_counter() - t0
    say(cold.line())
    t0 = time.perf_counter()
    warm = update_tree(index, s, llm=llm, full=True)
    warm_s = time.perf_counter() - t0
    say(warm.line())
    calls_before = timed.calls
    first = files[0]
    first.write_text(first.read_text() + "\n## Coffee extra\n\n" + _paragraph(random.Random(5),
                     _TOPICS["coffee"].split()) + "\n", encoding="utf-8")
    ingest([tmp / "corpus"], s)
    t0 = time.perf_counter()
    inc = update_tree(index, s, llm=llm)
    inc_s = time.perf_counter() - t0
    say(inc.line())
    return {
        "device": f"{timed.backend} ({timed.model}), gpu_layers={s.llm.gpu_layers}",
        "method": cold.method, "why": cold.why, "estimate": cold.estimate,
        "load_avg": {"before": load_before, "after": machine.load_avg()},
        "leaves": n_leaves,
        "summary_tokens": s.ingest.raptor_summary_tokens,
        "context_tokens": s.ingest.raptor_context_tokens,
        "cold_build": {"seconds": round(cold_s, 1), "llm_calls": cold.llm_calls,
                       "llm_seconds": round(timed.seconds, 1),
                       "seconds_per_call": round(timed.seconds / max(cold.llm_calls, 1), 2),
                       "clustering_and_embedding_seconds": round(cold_s - timed.seconds, 1),
                       "depth": cold.depth, "nodes_per_level": cold.levels, "fallbacks": cold.fallbacks},
        "warm_full_rebuild": {"seconds": round(warm_s, 1), "llm_calls": warm.llm_calls, "cached": warm.cached,
                              "kept": warm.kept},
        "incremental_one_chunk": {"seconds": round(inc_s, 1), "mode": inc.mode,
                                  "llm_calls": timed.calls - calls_before, "new_nodes": inc.new},
    }


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.splitlines()[0].strip('"'))
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--summary-tokens", type=int, default=None, help="default: ingest.raptor_summary_tokens")
    ap.add_argument("--context-tokens", type=int, default=None, help="default: ingest.raptor_context_tokens")
    a = ap.parse_args(argv)
    settings = load_settings()
    if a.summary_tokens:
        settings.ingest.raptor_summary_tokens = a.summary_tokens
    if a.context_tokens:
        settings.ingest.raptor_context_tokens = a.context_tokens
    res = run(settings, chunks=a.chunks, echo=lambda m: print(m, flush=True))
    print(json.dumps(res, indent=2))
    write_json(a.json, res)


if __name__ == "__main__":
    main()
