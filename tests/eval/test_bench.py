"""The ingest benchmark runs every contender in its own process and reports figures (no
timing assertions): our pipeline, the LangChain tutorial stack, the raw encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.bench import _chunk_texts, bench_ingest
from eval.bench_ingest import generate_corpus


def test_generated_corpus_has_the_asked_chunks(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = generate_corpus(tmp_path / "gen", 120)
    texts, chars = _chunk_texts(folder, settings)
    assert 120 <= len(texts) < 160  # whole documents until the count is reached
    assert chars > 120 * 300
    stamp = (folder / "doc00000.md").stat().st_mtime_ns
    assert generate_corpus(tmp_path / "gen", 120) == folder  # cached
    assert (folder / "doc00000.md").stat().st_mtime_ns == stamp
    again = generate_corpus(tmp_path / "gen2", 120)
    assert (again / "doc00001.md").read_text() == (folder / "doc00001.md").read_text()  # deterministic


def test_ingest_bench_on_the_sample_corpus(settings) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    rows = bench_ingest(settings, sizes=[], baselines=True, echo=lines.append)
    by = {r["contender"]: r for r in rows}
    assert set(by) == {"ours", "langchain", "raw"}
    for r in rows:
        assert "error" not in r, r
        assert r["corpus"] == "sample" and r["chunks"] > 0 and r["seconds"] > 0 and r["peak_rss_mb"] > 50
    assert by["raw"]["chunks"] == by["ours"]["chunks"]  # the raw encoder embeds exactly our chunk texts
    assert "ours_vs_this" in by["langchain"] and "ours_vs_this" in by["raw"]
    assert any(line.startswith("sample") and "langchain" in line for line in lines)


@pytest.mark.slow
def test_cold_bench_times_both_query_encoders(settings) -> None:  # type: ignore[no-untyped-def]
    from eval.bench_cold import run

    lines: list[str] = []
    res = run(settings, runs=1, echo=lines.append)
    rows = res["commands"]
    assert len(rows) == 2 and res["python_floor_s"] > 0
    for r in rows.values():
        assert r["search_median_s"] > res["python_floor_s"] and r["ask_median_s"] > res["python_floor_s"]
        assert r["encode_ms_warm"] > 0
    assert any("load average" in line for line in lines)
    assert any(line.startswith("numpy query encoder") for line in lines)
    assert res["resident"]["search_median_s"] > 0 and res["resident"]["ask_median_s"] > 0
    assert any(line.startswith("rag serve running") for line in lines)
