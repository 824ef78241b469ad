"""The benchmarks (eval/bench/) report figures, never timing assertions: the ingest benchmark
runs every contender in its own process (our pipeline, the LangChain tutorial stack, the raw
encoder); `rag bench` dispatches through one registry, each module has one `run` and a `main`."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.bench import ingest as bench_ingest
from eval.bench.ingest import _chunk_texts, generate_corpus


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


def test_ingest_bench_on_the_sample_corpus(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The sample corpus, then a folder of the user's own (`--corpus`): Chinese prose, whose
    chunks the raw encoder embeds as our ingest does (their first embedding.cjk_max_tokens)."""
    zh = tmp_path / "zh-prose"
    zh.mkdir()
    people, places = "刘备 关羽 张飞 曹操 孙权 诸葛亮".split(), "荆州 益州 徐州 许昌".split()
    for i, (who, where) in enumerate((w, p) for w in people for p in places):  # 24 files, 24 chunks
        text = f"第{i}回：{who}引兵来到{where}，与众将商议军情，{where}百姓闻{who}之名，纷纷归附。" * 6
        (zh / f"{i:02d}.txt").write_text(text, encoding="utf-8")
    lines: list[str] = []
    rows = bench_ingest.run(settings, sizes=[], baselines=True, echo=lines.append, corpora=[zh])
    from core.torch_encoder import resolve_precision

    # where ours encodes in bfloat16, our float32 ingest runs beside it
    bf16 = resolve_precision(settings.embedding.precision, settings.embedding.device) == "bfloat16"
    assert any(f"encoder precision {'bfloat16' if bf16 else 'float32'}" in line for line in lines)
    for corpus in ("sample", "zh-prose"):
        by = {r["contender"]: r for r in rows if r["corpus"] == corpus}
        assert set(by) == {"ours", "langchain", "raw", "raw-direct"} | ({"ours-float32"} if bf16 else set())
        for r in by.values():
            assert "error" not in r, r
            assert r["chunks"] > 0 and r["seconds"] > 0 and r["peak_rss_mb"] > 50
        for raw in ("raw", "raw-direct", "ours-float32")[:3 if bf16 else 2]:  # exactly our chunk texts
            assert by[raw]["chunks"] == by["ours"]["chunks"]
            assert by[raw]["chars_embedded"] == by["ours"]["chars_embedded"]
            assert "ours_vs_this" in by[raw]
        assert "ours_vs_this" in by["langchain"]
        assert any(line.startswith(corpus) and "langchain" in line for line in lines)
    ours = next(r for r in rows if r["corpus"] == "zh-prose" and r["contender"] == "ours")
    assert ours["chars_embedded"] < ours["source_chars"]  # CJK-only chunks: a prefix each
    # as `rag ingest` does, ours trains the ranker where there are enough chunks (24; the sample's 14 are not)
    sample = next(r for r in rows if r["corpus"] == "sample" and r["contender"] == "ours")
    assert "too few" in sample["ranker"] and "pseudo-queries" in ours["ranker"]
    assert sample["ranker_seconds"] < ours["ranker_seconds"] < ours["seconds"]
    assert bench_ingest._contenders(False, "bfloat16") == ["ours"]
    assert bench_ingest._contenders(True, "float32") == ["ours", "langchain", "raw", "raw-direct"]
    assert bench_ingest._contenders(True, "bfloat16") == [
        "ours", "ours-float32", "langchain", "raw", "raw-direct"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .md"):
        bench_ingest.run(settings, sizes=[], baselines=False, corpora=[empty])


@pytest.mark.slow
def test_cold_bench_times_both_query_encoders(settings) -> None:  # type: ignore[no-untyped-def]
    from eval.bench.cold import run

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


def test_cold_bench_times_a_folder_of_ones_own(  # type: ignore[no-untyped-def]
    settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag bench cold --corpus DIR`: the folder is indexed by `rag ingest` and both commands timed
    cold over it, with its chunk count and whether its ranker is on (the sample's never is)."""
    from eval.bench import cold

    monkeypatch.setattr(cold, "_resident", lambda *a, **k: {  # the server's part is the slow test's
        "start_s": 0.0, "search_median_s": 0.0, "search_min_s": 0.0, "ask_median_s": 0.0, "ask_min_s": 0.0})
    monkeypatch.setattr(cold, "ENCODERS", cold.ENCODERS[:1])
    monkeypatch.setattr(cold, "_encode_ms", lambda numpy_queries: 1.0)
    import shutil

    from eval.bench import SAMPLE

    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE, folder)
    lines: list[str] = []
    res = cold.run(settings, runs=1, echo=lines.append, corpora=[folder])
    row = res["corpora"][str(folder)]
    assert row["chunks"] == 14 and row["ranker"] is False  # too few chunks to train one
    assert row["search_median_s"] > res["python_floor_s"] and row["ask_median_s"] > res["python_floor_s"]
    assert any(line.startswith("notes (14 chunks, ranker off)") for line in lines)
    with pytest.raises(ValueError, match="not a folder"):
        cold.run(settings, runs=1, corpora=[tmp_path / "missing"])


def test_scale_bench_on_a_tiny_corpus(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Every step in its own process on 300 chunks: the figures are there and positive."""
    import os

    from eval.bench import scale as bench_scale

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # the structure, not the machine
    settings.search.ltr_self_train = False  # the ranker's training is timed, not tested, here
    lines: list[str] = []
    res = bench_scale.run(settings, chunks=300, echo=lines.append, peer=False, queries=10,
                          cache=tmp_path / "cache", work=tmp_path)
    assert "refused" not in res and "server" not in res and "skipped" in res["peer"]
    side = res["embedded"]
    for step in ("build", "update", "update_cli", "cold_search", "cold_ask", "retrieval"):
        assert "error" not in side[step], side[step]
        assert side[step]["seconds"] > 0 and side[step]["peak_rss_mb"] > 50
    build = side["build"]
    assert build["chunks"] >= 300 and build["failed_files"] == 0
    assert 0 < build["ingest_seconds"] <= build["seconds"] and build["chunks_per_s"] > 0
    assert build["chars_per_s"] > 0 and 50 < build["peak_ingest_mb"] <= build["peak_rss_mb"]
    update = side["update"]
    assert update["chunks"] > 0 and update["update_ms"] > 0
    assert update["split_ms"]["embed"] > 0 and update["split_ms"]["keyword"] > 0
    assert side["update_cli"]["chunks_written"] > 0
    ret = side["retrieval"]
    assert ret["queries"] == 10 and 0 < ret["total"]["p50"] <= ret["total"]["p95"]
    assert ret["stage_p50"] and all(v >= 0 for v in ret["stage_p50"].values())
    assert "load average" in lines[0] and res["load_avg_after"] >= 0
    assert any(line.startswith("retrieval p95 ms") for line in lines)
    assert any(line.startswith("cold `rag ask` s") for line in lines)
    assert any("LangChain peer skipped" in line for line in lines)


def test_scale_bench_refuses_on_a_busy_machine(settings, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from eval.bench import scale as bench_scale

    busy = float((os.cpu_count() or 1) + 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (busy, busy, busy))
    lines: list[str] = []
    res = bench_scale.run(settings, chunks=300, echo=lines.append, cache=tmp_path / "cache")
    assert res["refused"] and res["load_avg_before"] == busy and "embedded" not in res
    assert lines == [res["refused"]] and "busy" in lines[0] and "no figures" in lines[0]
    assert not (tmp_path / "cache").exists()  # nothing generated, nothing run


def test_rag_bench_scale_passes_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag bench scale`: the first --sizes is the corpus (default 100,000), --server and
    --baselines reach `eval.bench.scale.run`."""
    from typer.testing import CliRunner

    from app.cli import _register, app
    from eval import bench
    from eval.bench import scale as bench_scale

    _register()  # `rag` registers its commands lazily

    calls: list[dict[str, object]] = []

    def fake(settings, chunks, echo=None, server=False, peer=None):  # type: ignore[no-untyped-def]
        calls.append({"chunks": chunks, "server": server, "peer": peer})
        return {"chunks": chunks}

    monkeypatch.setattr(bench_scale, "run", fake)
    for args in (["scale"], ["scale", "--sizes", "2000,5000", "--server", "--no-baselines"],
                 ["scale", "--100k", "--baselines"]):
        r = CliRunner().invoke(app, ["bench", *args, "--json"])
        assert r.exit_code == 0, r.output
    assert calls == [{"chunks": 100_000, "server": False, "peer": None},
                     {"chunks": 2000, "server": True, "peer": False},
                     {"chunks": 100_000, "server": False, "peer": True}]
    assert "scale" in bench.CHOICES


def test_rag_bench_ingest_takes_folders_of_ones_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`rag bench ingest --corpus DIR` (repeatable) reaches `eval.bench.ingest.run`; a missing
    folder is refused by the command."""
    from typer.testing import CliRunner

    from app.cli import _register, app

    _register()
    seen: list[object] = []

    def fake(settings, *, echo=None, sizes=(), baselines=True, corpora=()):  # type: ignore[no-untyped-def]
        seen.append(list(corpora))
        return []

    monkeypatch.setattr(bench_ingest, "run", fake)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = CliRunner().invoke(app, ["bench", "ingest", "--corpus", str(tmp_path / "a"), "--corpus",
                                 str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    assert seen == [[tmp_path / "a", tmp_path / "b"]]
    r = CliRunner().invoke(app, ["bench", "ingest", "--corpus", str(tmp_path / "missing")])
    assert r.exit_code != 0 and seen == [[tmp_path / "a", tmp_path / "b"]]


BENCHES = ("ingest", "retrieval", "llm", "strategies", "raptor", "ocr", "faults", "cold", "scale", "ui",
           "late")


def test_every_benchmark_is_registered_with_one_run_and_a_main() -> None:
    """Each name of `rag bench` is a module of eval/bench/ with `run(settings, *, echo, ...)` and
    `main(argv)`; the options `rag bench` maps onto a module are keywords of its `run`."""
    import importlib
    import inspect

    from eval import bench

    assert set(bench.REGISTRY) == set(BENCHES) and bench.CHOICES[-1] == "all"
    assert [n for n, b in bench.REGISTRY.items() if b.in_all] == ["ingest", "retrieval", "llm"]
    options = bench.Options(sizes=[2000], baselines=None, server=True)
    for name, entry in bench.REGISTRY.items():
        mod = importlib.import_module(entry.module)
        assert entry.module == f"eval.bench.{name}"
        params = inspect.signature(mod.run).parameters
        assert list(params)[0] == "settings" and params["echo"].kind is inspect.Parameter.KEYWORD_ONLY
        for kw in entry.keywords(options):
            assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, (name, kw)
        assert callable(mod.main)
        with pytest.raises(SystemExit) as ex:
            mod.main(["--help"])
        assert ex.value.code == 0


def test_rag_bench_dispatches_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag bench all` runs ingest, retrieval and llm in that order, each with its own options."""
    import importlib

    from eval import bench

    calls: list[tuple[str, dict[str, object]]] = []
    for name in ("ingest", "retrieval", "llm"):
        def fake(settings, *, echo=None, _name=name, **kw):  # type: ignore[no-untyped-def]
            calls.append((_name, kw))
            return {"name": _name}
        monkeypatch.setattr(importlib.import_module(f"eval.bench.{name}"), "run", fake)
    lines: list[str] = []
    out = bench.run("all", object(), [500], baselines=None, echo=lines.append)  # type: ignore[arg-type]
    assert list(out) == ["ingest", "retrieval", "llm"]
    assert calls == [("ingest", {"sizes": [500], "baselines": True, "corpora": []}),
                     ("retrieval", {"sizes": (500,)}),
                     ("llm", {})]
    assert lines == ["\nretrieval:", "\nllm:"]
    with pytest.raises(ValueError, match="not a benchmark"):
        bench.run("nonsense", object())  # type: ignore[arg-type]


def test_late_bench_measures_stored_and_computed_token_vectors(tmp_path: Path) -> None:
    """`rag bench late` on a small English index: the stored file holds every chunk's token
    vectors as float16 (tokens x dim x 2 bytes) and both ways are timed for the same questions."""
    from core.settings import load_settings
    from eval.bench import late
    from ingest.pipeline import ingest
    from tests.files import write_docs

    s = load_settings(index_dir=tmp_path / "index", search={"ltr_self_train": False})
    docs = {f"d{i}.md": f"# Topic {i}\n\nGlaciers carve valley number {i} slowly over many years."
            for i in range(6)}
    ingest([write_docs(tmp_path / "docs", docs)], s)
    figures = late.run(s, queries=3)
    if "refused" in figures:  # a busy machine: the benchmark says so instead of reporting
        assert "busy" in figures["refused"]
        return
    assert figures["chunks"] == 6 and figures["queries"] == 3
    assert figures["stored"]["bytes"] == figures["tokens"] * figures["dim"] * 2
    assert figures["stored"]["ms"]["p50"] > 0 and figures["computed"]["ms"]["p50"] > 0
