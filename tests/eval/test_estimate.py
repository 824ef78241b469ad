"""The cost estimate `rag eval` prints before a long run: its arithmetic against a hand
computation, measured figures replacing the assumed ones once written, and the CLI's line for
a corpus whose index is not cached (no LLM is run: LLM configurations are checked through the
pure functions, which construct the configured LLM without loading it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.settings import load_settings
from eval import estimate as est
from eval.datasets import Dataset, load_dataset, save_beir

DOCS = {
    "tea": ("Green tea", "Green tea should be brewed with water at about eighty degrees for two minutes."),
    "bread": ("Sourdough", "A sourdough starter is fed with flour and water every day and kept warm."),
    "bikes": ("Bicycle care", "Oil the bicycle chain every few hundred kilometres and check tyre pressure."),
}
QUERIES = {"q1": "water temperature for green tea", "q2": "feeding a sourdough starter", "q3": "no judgement"}
QRELS = {"q1": {"tea": 1}, "q2": {"bread": 1}}
CHARS = sum(len(t) + len(x) for t, x in DOCS.values())


@pytest.fixture
def ds(tmp_path: Path) -> Dataset:
    save_beir(tmp_path / "set", DOCS, QUERIES, QRELS)
    return load_dataset(tmp_path / "set")


def test_arithmetic_matches_a_hand_computation() -> None:
    ingest = est.ingest_part("sci", 1200, 2_400_000, 20_000.0, est.ASSUMED)
    assert ingest.seconds == 120.0  # 2.4 M characters / 20,000 per second
    assert "2,400,000 characters" in ingest.line and "~2.0 min" in ingest.line and "assumed" in ingest.line
    llm = est.llm_part("multi-query", 300, 1.0, est.ASSUMED, 5.0, est.ASSUMED, "llamacpp|m.gguf")
    assert llm.seconds == 1500.0  # 300 questions x 1 call x 5 s
    assert "300 questions x 1.0 LLM calls x 5.0 s (llamacpp m.gguf) = ~25.0 min" in llm.line
    auto = est.llm_part("auto", 300, 2.0, est.ASSUMED, 1.0, est.MEASURED, "ollama|llama3.2")
    assert auto.seconds == 600.0 and auto.source == est.MEASURED
    layer = est.ingest_llm_part("multi-rep", "multi-representation", 1000, 0.5, 5.0, est.ASSUMED, "x|y")
    assert layer.detail["llm_calls"] == 500 and layer.seconds == 2500.0
    e = est.combine([ingest, llm, auto, est.ingest_part("empty", 0, 0, 20_000.0, est.ASSUMED)])
    assert e.seconds == 2220.0 and len(e.parts) == 3  # a part that costs nothing is left out
    assert e.worth_saying() and not est.combine([ingest]).worth_saying()  # 120 s is not above 2 min
    lines = e.lines()
    assert len(lines) == 4 and lines[-1].startswith("estimate: ~37.0 min in all")
    assert e.to_dict()["seconds"] == 2220.0 and len(e.to_dict()["parts"]) == 3


def test_plan_counts_uncached_indexes_and_llm_questions(ds: Dataset, tmp_path: Path) -> None:
    from eval import configs as cfgs

    s = load_settings(index_dir=tmp_path / "idx")
    s.llm.provider = "llamacpp"  # constructed to read its name; no model is loaded
    groups = {"{}": [cfgs.REGISTRY[n] for n in ("bm25", "multi-query", "auto")]}
    cache = tmp_path / "cache"
    e = est.plan(ds, s, groups, lambda _: False, None, cache)
    by = {p.name: p for p in e.parts}
    assert by[ds.name].detail["chars"] == CHARS
    assert by[ds.name].seconds == pytest.approx(CHARS / est.ASSUMED_CHARS_PER_S)
    per = est.ASSUMED_S_PER_CALL["llamacpp"]
    assert by["multi-query"].seconds == 2 * 1.0 * per  # two judged questions
    assert by["auto"].seconds == 2 * 2.0 * per
    assert "bm25" not in by and e.llm.startswith("llamacpp|")
    limited = est.plan(ds, s, groups, lambda _: True, 1, cache)  # cached: no ingest; --limit 1
    assert [p.name for p in limited.parts] == ["multi-query", "auto"]
    assert limited.seconds == 1 * 1.0 * per + 1 * 2.0 * per
    assert est.plan(ds, s, {"{}": [cfgs.REGISTRY["bm25"]]}, lambda _: True, None, cache).parts == []


@dataclass
class FakeRun:
    name: str
    llm_calls: list[int]
    llm_cache_hits: list[int]
    latency_ms: dict[str, list[float]] = field(default_factory=dict)


def test_measured_figures_replace_the_assumed_ones(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert est.ingest_rate(cache, "minilm") == (est.ASSUMED_CHARS_PER_S, est.ASSUMED)
    assert not est.note_ingest(cache, "minilm", 5_000, 2.0, 10)  # too small: mostly model loading
    assert est.ingest_rate(cache, "minilm")[1] == est.ASSUMED
    assert est.note_ingest(cache, "minilm", 100_000, 4.0, 250)
    assert est.ingest_rate(cache, "minilm") == (25_000.0, est.MEASURED)
    assert est.ingest_rate(cache, "other-model")[1] == est.ASSUMED
    assert est.chars_per_chunk(cache, "minilm", 200) == 400.0

    model = "llamacpp|m.gguf"
    assert est.seconds_per_call(cache, "llamacpp", "m.gguf") == (5.0, est.ASSUMED)
    run = FakeRun("fusion", [1, 2, 0], [0, 0, 1], {"total": [3000.0, 5000.0, 10.0]})
    assert est.note_run(cache, model, [run])
    # 3 calls made in 8 s over the questions that made them; 4 asked for in 3 questions
    assert est.seconds_per_call(cache, "llamacpp", "m.gguf") == (pytest.approx(2.667), est.MEASURED)
    assert est.calls_per_question(cache, "fusion") == (pytest.approx(1.333), est.MEASURED)
    assert est.calls_per_question(cache, "hyde") == (1.0, est.ASSUMED)
    part = est.llm_part("fusion", 30, *est.calls_per_question(cache, "fusion"),
                        *est.seconds_per_call(cache, "llamacpp", "m.gguf"), model)
    assert part.seconds == pytest.approx(30 * 1.333 * 2.667) and "measured" in part.line


def test_unreadable_timings_fall_back_to_assumed(tmp_path: Path) -> None:
    (tmp_path / est.TIMINGS_FILE).write_text("{not json")
    assert est.ingest_rate(tmp_path, "minilm") == (est.ASSUMED_CHARS_PER_S, est.ASSUMED)
    assert est.note_ingest(tmp_path, "minilm", 60_000, 3.0, 100)  # and the next write repairs it
    assert est.ingest_rate(tmp_path, "minilm") == (20_000.0, est.MEASURED)


def _rag(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_INDEX_DIR"] = str(cwd / "idx")
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_cli_says_the_estimate_for_an_uncached_corpus(tmp_path: Path) -> None:
    save_beir(tmp_path / "set", DOCS, QUERIES, QRELS)
    cache = tmp_path / "rep" / ".cache"
    cache.mkdir(parents=True)
    # a slow machine measured before: one character per second makes this tiny corpus a long ingest
    (cache / est.TIMINGS_FILE).write_text(json.dumps(
        {"ingest": {"minilm": {"chars": 60_000, "seconds": 60_000, "chunks": 100, "chars_per_second": 1.0}}}
    ))
    args = ("eval", str(tmp_path / "set"), "--configs", "bm25", "--reports-dir", str(tmp_path / "rep"),
            "--no-progress")
    p = _rag(*args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stderr.splitlines() if x.startswith("estimate: "))
    assert f"ingest of set (3 documents, {CHARS} characters to embed" in line, line
    assert "at 1 characters/s (measured on the last run)" in line, line
    assert p.stderr.index("estimate: ") < p.stderr.index("skipped")  # before the run's own output
    # now cached: nothing costly is left, nothing is said; with --json the estimate is in the JSON
    p = _rag(*args, "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "estimate: " not in p.stderr
    assert json.loads(p.stdout)["estimate"]["parts"] == []
