"""`rag bench ui`: what the chat UI itself costs, beside retrieval and generation.

Ingests the sample corpus into a temporary index, then through `streamlit.testing.v1.AppTest`
(the real script, app/ui.py, in-process) times: the first page render (cold: models and stores
load), a rerun of the page with an empty chat (what every widget click costs), the same after
`--questions` answered questions (each rerun redraws the history, citations and panels), and
one answered question end to end. Prints p50 / p95 in milliseconds.

    .venv/bin/python -m eval.bench.ui [--reruns 20] [--questions 2] [--max-tokens 24] [--json OUT]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.bench import REPO, SAMPLE, Echo, main_for

if TYPE_CHECKING:
    from core.settings import Settings

UI_SCRIPT = REPO / "app" / "ui.py"  # run as a script by AppTest, not imported: eval never imports app
QUESTIONS = ["What grind size for a French press?", "How long should it steep?",
             "What water temperature for green tea?", "How do I clean the brewer?"]


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _ms(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50": round(statistics.median(xs), 1), "p95": round(_pct(xs, 0.95), 1)}


def _line(name: str, r: dict[str, float]) -> str:
    return f"{name:<34} n={r['n']:<3} p50 {r['p50']:9.1f} ms   p95 {r['p95']:9.1f} ms"


def _timed(at: Any, times: int) -> list[float]:
    out = []
    for _ in range(times):
        t = time.perf_counter()
        at.run()
        out.append((time.perf_counter() - t) * 1000)
    return out


def run(settings: Settings, *, reruns: int = 20, questions: int = 2, max_tokens: int = 24,
        echo: Echo | None = None) -> dict[str, Any]:
    """Render and rerun timings (ms) of the chat UI over an index of the sample corpus; the UI
    script reads its settings as `rag ui` does, with this index and `max_tokens` set for it."""
    from streamlit.testing.v1 import AppTest

    from ingest.pipeline import ingest

    tmp = Path(tempfile.mkdtemp(prefix="bench_ui_"))
    saved = dict(os.environ)
    os.environ.update({"RAG_INDEX_DIR": str(tmp / "index"), "RAG_LLM__MAX_TOKENS": str(max_tokens),
                       "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"})
    try:
        ingest([SAMPLE], settings.model_copy(update={"index_dir": tmp / "index"}))
        at = AppTest.from_file(str(UI_SCRIPT), default_timeout=1800)
        t0 = time.perf_counter()
        at.run()
        cold = (time.perf_counter() - t0) * 1000
        empty = _timed(at, reruns)
        asked = []
        for q in (QUESTIONS * 4)[:questions]:
            t = time.perf_counter()
            at.chat_input[0].set_value(q).run()
            asked.append((time.perf_counter() - t) * 1000)
        full = _timed(at, reruns)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    res: dict[str, Any] = {"questions": questions, "max_tokens": max_tokens,
                           "first_render_ms": round(cold, 1), "rerun_empty_ms": _ms(empty),
                           "rerun_with_answers_ms": _ms(full), "question_ms": _ms(asked) if asked else None}
    if echo:
        echo(f"chat UI, sample corpus, {questions} answered question(s), max_tokens {max_tokens}")
        echo(f"{'first render (cold)':<34} {cold:9.1f} ms")
        echo(_line("rerun, empty chat", res["rerun_empty_ms"]))
        echo(_line(f"rerun, {questions} answers in history", res["rerun_with_answers_ms"]))
        if asked:
            echo(_line("question answered (end to end)", res["question_ms"]))
    return res


def main(argv: list[str] | None = None) -> None:
    main_for(run, __doc__.split("\n")[0].strip('"'), argv, reruns=20, questions=2, max_tokens=24)


if __name__ == "__main__":
    main()
