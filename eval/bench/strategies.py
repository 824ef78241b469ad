"""`rag bench strategies`: per-strategy latency of the query path (route + translate +
retrieve; `decompose` also answers its sub-questions, which is part of the strategy) with the
configured LLM (the embedded SmolLM2-135M by default), over the same questions, translation
cache off. Prints figures; asserts nothing.

    .venv/bin/python -m eval.bench.strategies [N_QUESTIONS] [--json OUT]
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.index import Index
from core.llm import get_llm
from core.settings import Settings, load_settings
from core.types import TraceEntry
from eval.bench import SAMPLE, Echo, machine, parser, write_json
from retrieval.decompose import answer_steps
from retrieval.pipeline import plan_question, retrieve

log = logging.getLogger(__name__)

STRATEGIES = ("none", "multi-query", "fusion", "step-back", "hyde", "decompose", "auto")
QUESTIONS = [
    "What grind size should I use for a French press?",
    "How fine should the grind be for espresso?",
    "How long should coffee steep in a French press?",
    "What water temperature is best for brewing coffee?",
    "What is a good coffee to water ratio?",
    "Why does a burr grinder give a more even grind than a blade grinder?",
    "How do I make pour-over coffee?",
    "Is the espresso grind finer than the French press grind?",
    "What happens if coffee is ground too fine?",
    "How should coffee beans be stored?",
    "What grind size suits a drip coffee maker?",
    "How do I fix bitter coffee?",
    "What is the bloom in pour-over brewing?",
    "Summarize the coffee brewing guide.",
    "What is the difference between green tea and black tea?",
    "What water temperature should I use for green tea?",
    "How long should black tea steep?",
    "绿茶的冲泡水温是多少？",
    "乌龙茶适合冲泡几次？",
    "How should tea leaves be stored?",
    "What is cold brew coffee?",
    "How much coffee do I need for one cup?",
]


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 1) if xs else 0.0


def _one(question: str, strategy: str, s: Settings, llm: Any) -> tuple[float, int, bool]:
    trace: list[TraceEntry] = []
    t0 = time.perf_counter()
    t = plan_question(question, strategy, s, llm, trace)
    res = retrieve(question, t.settings, k=s.answer.context_chunks, plan=t.plan())
    calls = t.llm_calls
    if t.sub_questions:
        k = s.answer.context_chunks
        steps = answer_steps(
            t, llm, s, trace, lambda q: retrieve(q, t.settings, Index(t.settings), k, t.plan_of(q))
        )
        calls += sum(1 for st in steps if st.hits)
    assert res is not None
    return (time.perf_counter() - t0) * 1000, calls, t.fallback


def run(settings: Settings, *, n_questions: int = 20, strategies: tuple[str, ...] = STRATEGIES,
        corpus: Path = SAMPLE, echo: Echo | None = None) -> dict[str, Any]:
    """{strategy: {p50_ms, p95_ms, mean_ms, llm_calls_mean, llm_calls_max, fallbacks, n}} plus setup;
    the setup and a Markdown table printed through `echo`."""
    from ingest.pipeline import ingest

    questions = (QUESTIONS * (n_questions // len(QUESTIONS) + 1))[:n_questions]
    with tempfile.TemporaryDirectory() as tmp:
        s = settings.model_copy(deep=True, update={"index_dir": Path(tmp) / "index"})
        s.translate.cache = False  # measure the calls, not the cache
        ingest([corpus], s)
        llm = get_llm(s)
        _one(questions[0], "step-back", s, llm)  # warm-up: model loads, template vectors
        out: dict[str, Any] = {
            "setup": {"backend": llm.backend, "model": llm.model, "questions": len(questions),
                      "corpus": str(corpus), "cpus": machine.cores(),
                      "load_avg_1m": machine.load_avg(),
                      "translate.max_tokens": s.translate.max_tokens,
                      "translate.sub_answer_tokens": s.translate.sub_answer_tokens,
                      "measured": "route + translate + retrieve (decompose: + sub-answers); cache off"},
        }
        for strategy in strategies:
            ms: list[float] = []
            calls: list[int] = []
            fallbacks = 0
            for q in questions:
                m, c, fb = _one(q, strategy, s, llm)
                ms.append(m)
                calls.append(c)
                fallbacks += fb
            out[strategy] = {"p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95),
                             "mean_ms": round(float(np.mean(ms)), 1),
                             "llm_calls_mean": round(float(np.mean(calls)), 2), "llm_calls_max": max(calls),
                             "fallbacks": fallbacks, "n": len(ms)}
            log.info("%s: %s", strategy, out[strategy])
        out["setup"]["load_avg_1m_end"] = machine.load_avg()
    if echo:
        echo(json.dumps(out["setup"], indent=2, ensure_ascii=False))
        echo(table(out))
    return out


def table(res: dict[str, Any]) -> str:
    rows = ["| strategy | p50 ms | p95 ms | mean ms | LLM calls (mean / max) | fallbacks |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for k, v in res.items():
        if k != "setup":
            rows.append(f"| {k} | {v['p50_ms']} | {v['p95_ms']} | {v['mean_ms']} | "
                        f"{v['llm_calls_mean']} / {v['llm_calls_max']} | {v['fallbacks']}/{v['n']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.split("\n")[0].strip('"'))
    ap.add_argument("n_questions", nargs="?", type=int, default=20)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("chromadb", "httpx", "sentence_transformers", "bm25s", "transformers", "jieba"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    res = run(load_settings(), n_questions=a.n_questions, echo=print)
    write_json(a.json, res)


if __name__ == "__main__":
    main()
