"""What the chat UI itself costs, beside retrieval and generation: `python -m app.bench_ui`.

Ingests the sample corpus into a temporary index, then through `streamlit.testing.v1.AppTest`
(the real script, in-process) times: the first page render (cold: models and stores load),
a rerun of the page with an empty chat (what every widget click costs), the same after
`--questions` answered questions (each rerun redraws the history, citations and panels), and
one answered question end to end. Prints p50 / p95 in milliseconds."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _line(name: str, xs: list[float]) -> str:
    return (f"{name:<34} n={len(xs):<3} p50 {statistics.median(xs):9.1f} ms   p95 {_pct(xs, 0.95):9.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reruns", type=int, default=20)
    ap.add_argument("--questions", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=24)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_ui_"))
    os.environ.update({"RAG_INDEX_DIR": str(tmp / "index"), "RAG_LLM__MAX_TOKENS": str(args.max_tokens),
                       "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"})
    from streamlit.testing.v1 import AppTest

    from core.settings import load_settings
    from ingest.pipeline import ingest

    sample = Path(__file__).resolve().parent.parent / "data" / "sample"
    ingest([sample], load_settings())
    at = AppTest.from_file(str(Path(__file__).with_name("ui.py")), default_timeout=1800)
    t0 = time.perf_counter()
    at.run()
    cold = (time.perf_counter() - t0) * 1000

    def reruns() -> list[float]:
        out = []
        for _ in range(args.reruns):
            t = time.perf_counter()
            at.run()
            out.append((time.perf_counter() - t) * 1000)
        return out

    empty = reruns()
    asked = []
    questions = ["What grind size for a French press?", "How long should it steep?",
                 "What water temperature for green tea?", "How do I clean the brewer?"]
    for q in (questions * 4)[: args.questions]:
        t = time.perf_counter()
        at.chat_input[0].set_value(q).run()
        asked.append((time.perf_counter() - t) * 1000)
    full = reruns()
    print(f"chat UI, sample corpus, {args.questions} answered question(s), max_tokens {args.max_tokens}")
    print(f"{'first render (cold)':<34} {cold:9.1f} ms")
    print(_line("rerun, empty chat", empty))
    print(_line(f"rerun, {args.questions} answers in history", full))
    print(_line("question answered (end to end)", asked))


if __name__ == "__main__":
    main()
