"""`rag bench cold`: what a user waits for when `rag search` or `rag ask` runs as a command.

A fresh `rag search "…" --json` (and `rag ask`) process on an index of the sample data, timed whole (Python
start, imports, model, Chroma, keyword index, the search, the JSON), with the NumPy query
encoder (the default) and with sentence-transformers (`embedding.numpy_queries = false`,
what every query paid before) side by side in the same run; `python -c pass` is the floor.
Then the same commands while `rag serve` runs for that index (the resident process answers them;
the command only starts, asks and prints), and one question encoded in process, warm, both ways.
`--corpus DIR` (repeatable) adds each folder: indexed by `rag ingest` (which trains the ranker
where there are enough chunks: the sample's 14 are too few, so its LTR stage never loads), then
both commands timed cold with the defaults.
The load average is printed before and after; figures taken while the machine is busier than
its cores are marked as not to be trusted. Figures, never assertions.

    .venv/bin/python -m eval.bench.cold [--runs 3] [--json OUT]
    .venv/bin/rag bench cold --corpus DIR
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.settings import Settings
from eval.bench import SAMPLE, Echo, machine, main_for
from eval.bench.fault_kit import rag_env

QUESTIONS = [
    "How long should coffee steep in a French press?",
    "grind size for espresso",
    "绿茶的水温是多少",
    "what water temperature for green tea",
    "does a finer grind extract faster",
]


ENCODERS = (("numpy query encoder (default)", True), ("sentence-transformers (numpy_queries=false)", False))
COMMANDS = ("search", "ask")  # ask: the embedded model, extractive by default


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {r.stderr.strip()[-400:]}")
    return dt


def _commands(rag: list[str], env: dict[str, str], work: Path, runs: int) -> dict[str, float]:
    """Median and minimum seconds of `runs` whole `rag search` / `rag ask` processes per command,
    after one warm-up run that fills the page cache."""
    row: dict[str, float] = {}
    for command in COMMANDS:
        _timed([*rag, command, QUESTIONS[0], "--json"], env, work)
        times = [_timed([*rag, command, QUESTIONS[i % len(QUESTIONS)], "--json"], env, work)
                 for i in range(runs)]
        row[f"{command}_median_s"] = round(statistics.median(times), 2)
        row[f"{command}_min_s"] = round(min(times), 2)
    return row


def _resident(rag: list[str], env: dict[str, str], work: Path, index: Path, runs: int) -> dict[str, float]:
    """`rag search` / `rag ask` medians while `rag serve` runs for the index (started, then stopped)."""
    serve_json = index / "serve.json"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*rag, "serve"], env=env, cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        while not serve_json.exists():
            if proc.poll() is not None or time.perf_counter() - t0 > 600:
                err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
                raise RuntimeError(f"rag serve did not start: {err.strip()[-400:]}")
            time.sleep(0.1)
        row: dict[str, float] = {"start_s": round(time.perf_counter() - t0, 1)}
        row.update(_commands(rag, env, work, runs))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return row


def _encode_ms(numpy_queries: bool, repeats: int = 30) -> float:
    from core.models import get_embedder
    from core.settings import EmbeddingSettings

    # numpy_queries off: sentence-transformers itself, as the row's label says (not the direct
    # torch encoder of an ingest's batches)
    emb = get_embedder(EmbeddingSettings(numpy_queries=numpy_queries, direct_batches=False))
    emb.embed_query("warm up")
    times = []
    for i in range(repeats):
        q = QUESTIONS[i % len(QUESTIONS)]
        t0 = time.perf_counter()
        emb.embed_query(q)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def _corpus_row(rag: list[str], work: Path, folder: Path, runs: int) -> dict[str, Any]:
    """Index `folder` as `rag ingest` does, then time both commands cold with the defaults."""
    import json

    env = rag_env(work / f"index-{folder.name}")
    _timed([*rag, "ingest", str(folder), "--no-progress"], env, work)
    status = subprocess.run([*rag, "status", "--json"], env=env, cwd=work, capture_output=True, text=True,
                            timeout=600)
    info = json.loads(status.stdout) if status.returncode == 0 else {}
    row: dict[str, Any] = {"chunks": info.get("chunks"), "ranker": (info.get("ranker") or {}).get("active")}
    return {**row, **_commands(rag, env, work, runs)}


def run(settings: Settings, *, runs: int = 3, echo: Echo | None = None,
        corpora: Sequence[Path] = ()) -> dict[str, Any]:
    """Medians over `runs` whole processes per command and encoder; `settings` is the caller's,
    unused: the processes run with the defaults on their own index of the sample corpus, and of
    each folder of `corpora`."""
    for folder in corpora:
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder")
    say = echo or (lambda *a, **k: None)
    cores = machine.cores()
    out: dict[str, Any] = {"load_avg_before": machine.load_avg(), "cores": cores, "runs": runs}
    with tempfile.TemporaryDirectory(prefix="rag-bench-cold-") as tmp:
        work = Path(tmp)
        base = rag_env(work / "index")
        rag = [sys.executable, "-m", "app.cli"]
        say("building an index of data/sample …")
        _timed([*rag, "ingest", str(SAMPLE)], base, work)
        floor = [_timed([sys.executable, "-c", "pass"], base, work) for _ in range(runs)]
        rows: dict[str, dict[str, float]] = {}
        for label, numpy_queries in ENCODERS:
            flag = "true" if numpy_queries else "false"  # false: sentence-transformers, both ways
            env = {**base, "RAG_EMBEDDING__NUMPY_QUERIES": flag, "RAG_EMBEDDING__DIRECT_BATCHES": flag}
            row = _commands(rag, env, work, runs)
            row["encode_ms_warm"] = _encode_ms(numpy_queries)
            rows[label] = row
        resident = _resident(rag, base, work, work / "index", runs)
        extra: dict[str, dict[str, Any]] = {}
        for folder in corpora:
            say(f"building an index of {folder} …")
            extra[str(folder)] = _corpus_row(rag, work, folder.resolve(), runs)
    out["python_floor_s"] = round(statistics.median(floor), 3)
    out["commands"] = rows
    out["resident"] = resident
    out["corpora"] = extra
    out["load_avg_after"] = machine.load_avg()
    busy = machine.busy(max(out["load_avg_before"], out["load_avg_after"])) is not None
    out["trusted"] = not busy
    say(f"`rag search` and `rag ask` (--json) as commands, {runs} runs each after one warm-up "
        f"(load average {out['load_avg_before']} before, {out['load_avg_after']} after, {cores} cores)")
    say(f"{'query encoder':<48}{'search s':>10}{'(min)':>7}{'ask s':>8}{'(min)':>7}{'encode ms':>11}")
    for label, r in rows.items():
        say(f"{label:<48}{r['search_median_s']:>10}{r['search_min_s']:>7}{r['ask_median_s']:>8}"
            f"{r['ask_min_s']:>7}{r['encode_ms_warm']:>11}")
    r = resident
    say(f"{'rag serve running (resident, numpy default)':<48}{r['search_median_s']:>10}{r['search_min_s']:>7}"
        f"{r['ask_median_s']:>8}{r['ask_min_s']:>7}{'-':>11}")
    for where, c in extra.items():
        label = f"{Path(where).name[:20]} ({c['chunks']} chunks, ranker {'on' if c['ranker'] else 'off'})"
        say(f"{label:<48}{c['search_median_s']:>10}{c['search_min_s']:>7}{c['ask_median_s']:>8}"
            f"{c['ask_min_s']:>7}{'-':>11}")
    say(f"{'python -c pass (floor)':<48}{out['python_floor_s']:>10}")
    say("search/ask: median (min) seconds of a whole process; encode ms: one question, warm, in process; "
        f"rag serve took {r['start_s']} s to start (load and warm up)")
    if busy:
        say("the machine was busier than its cores: these figures are not to be trusted; run again alone")
    return out


def main(argv: list[str] | None = None) -> None:
    main_for(run, "`rag search` and `rag ask` timed as whole processes, both query encoders, and with "
             "`rag serve` running (`rag bench cold`).", argv, runs=3)


if __name__ == "__main__":
    main()
