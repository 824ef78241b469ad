"""`rag bench scale`: our pipeline on a generated corpus of N chunks (default 100,000).

Each step runs in a fresh process, so that its wall time (interpreter, imports, model load
included) and peak memory are a whole process's, as a user meets them:
1. build: `ingest.pipeline.ingest` of the corpus with the real MiniLM, then the self-trained
   ranker that `rag ingest` adds (timed apart); beside it the LangChain tutorial stack on the
   same files (`eval.bench.ingest`), by default only up to PEER_MAX chunks: it doubles the run;
2. one new file added: the `ingest()` call in a process that already holds the model and the
   store (split into embedding, vector upsert, BM25 rebuild and the rest), then `rag ingest`;
   then `rag search` and `rag ask` as whole processes (cold: nothing loaded);
3. retrieval: p50/p95 of `retrieve()` over questions cut from the corpus (first 8 words of
   its sentences) after one warm-up, p50 per stage, and the process's peak memory;
4. with `server`: the same against a real `chroma run` (stopped at the end, whatever happens).
The load average is printed before and after; on a busy machine nothing runs and no figure is
reported. Figures, never assertions.

    .venv/bin/python -m eval.bench.scale [--chunks 100000] [--server] [--peer|--no-peer] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import Settings, load_settings
from eval.bench import Echo, machine, parser, write_json
from eval.bench.fault_kit import rag_env
from eval.bench.ingest import files_of, generate_corpus, measure

PEER_MAX = 20_000  # above this the LangChain peer runs only when asked
MEMORY_TARGET_MB = 2048  # issue 17: peak memory of a 100k-chunk ingest


# ---- the parent: processes, the Chroma server, the table -------------------------------------

def _env(settings: Settings) -> dict[str, str]:
    """The user's environment without RAG_*, carrying every field of `settings` (pydantic-settings
    reads a table from JSON), so each child process runs with exactly this settings object."""
    env = rag_env(settings.index_dir)
    for key, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"RAG_{key.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return env


def _reap(proc: subprocess.Popen[bytes], timeout: float | None = None) -> Any:
    """Wait with os.wait4, which gives this child's own peak RSS: RUSAGE_CHILDREN's ru_maxrss is
    the largest of every child so far, so one big process would show in all that follow."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            deadline = None
        time.sleep(0.1)


def _child(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run `cmd` to its end: seconds, CPU seconds and peak RSS (MB) of the whole process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        usage = _reap(proc)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    res: dict[str, Any] = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                           "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # Linux: KB
    if proc.returncode != 0:
        res["error"] = (stderr or stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    res["stdout"] = stdout
    return res


def _worker(step: str, spec: dict[str, Any], settings: Settings, work: Path) -> dict[str, Any]:
    """One step in a fresh `python -m eval.bench.scale --worker STEP` process."""
    spec_file, out_file = work / f"{step}.spec.json", work / f"{step}.out.json"
    spec_file.write_text(json.dumps(spec))
    out_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "eval.bench.scale", "--worker", step, str(spec_file), str(out_file)]
    res = _child(cmd, _env(settings), work)
    res.pop("stdout")
    if "error" not in res:
        res.update(json.loads(out_file.read_text()))
    if "tail_s" in res:  # the build: its ingest is the whole process but what followed it
        res["ingest_seconds"] = round(res["seconds"] - res.pop("tail_s"), 2)
    return res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _chroma_server(data: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A real `chroma run` on loopback; yields its URL and a dict that gets the server's peak
    RSS once it has stopped. Stopped on the way out, whatever happened."""
    import httpx

    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    url = f"http://127.0.0.1:{_free_port()}"
    port = url.rsplit(":", 1)[1]
    proc = subprocess.Popen([exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info: dict[str, Any] = {"url": url}
    try:
        t0 = time.perf_counter()
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"`{exe} run` did not start on {url}")
            time.sleep(0.5)
        info["start_s"] = round(time.perf_counter() - t0, 1)
        yield url, info
    finally:
        if proc.returncode is None:
            proc.terminate()
            info["peak_rss_mb"] = round(_reap(proc, timeout=30).ru_maxrss / 1024, 1)


def _sentences(files: list[Path], want: int, seed: int = 1) -> list[str]:
    """Sentences of the corpus itself (no headings, no bullets), from a sample of its files."""
    rng = random.Random(seed)
    out: list[str] = []
    for p in rng.sample(files, min(len(files), max(20, want // 4))):
        for line in p.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith(("#", "-")):
                out += [s for s in re.split(r"(?<=\.)\s+", line) if len(s.split()) >= 8]
    rng.shuffle(out)
    return out


def _new_file(folder: Path, name: str, sentences: list[str], seed: int) -> Path:
    """A small Markdown file (a few chunks) of corpus sentences in a new order: new content."""
    rng = random.Random(seed)
    paras = [" ".join(rng.sample(sentences, 4)) for _ in range(3)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(f"# Update {name}\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    return path


def _side(settings: Settings, corpus: Path, qs: list[str], new: list[Path], work: Path) -> dict[str, Any]:
    """Build, one-file updates (in process, then `rag ingest`) and retrieval on one store."""
    side: dict[str, Any] = {"build": _worker("build", {"corpus": str(corpus)}, settings, work)}
    if "error" in side["build"]:
        return side
    side["update"] = _worker("update", {"file": str(new[0])}, settings, work)
    cli = _child([sys.executable, "-m", "app.cli", "ingest", str(new[1]), "--json", "--no-progress"],
                 _env(settings), work)
    with contextlib.suppress(ValueError):
        cli["chunks_written"] = json.loads(cli["stdout"]).get("chunks_written")
    cli.pop("stdout")
    side["update_cli"] = cli
    # A user's first command after a while: a whole process each, over the whole index.
    for cmd in ("search", "ask"):
        cold = _child([sys.executable, "-m", "app.cli", cmd, qs[0], "--json"], _env(settings), work)
        cold.pop("stdout")
        side[f"cold_{cmd}"] = cold
    side["retrieval"] = _worker("query", {"queries": qs}, settings, work)
    return side


def run(settings: Settings, *, chunks: int = 100_000, echo: Echo | None = None, server: bool = False,
        peer: bool | None = None, queries: int = 100, cache: Path = Path("reports/.cache/bench"),
        work: Path | None = None) -> dict[str, Any]:
    """Figures for a corpus of `chunks` chunks; `peer` None: LangChain only up to PEER_MAX chunks."""
    say = echo or (lambda *a, **k: None)
    out: dict[str, Any] = {"chunks": chunks, "cores": machine.cores(), "load_avg_before": machine.load_avg()}
    refused = machine.busy(out["load_avg_before"])
    if refused:
        say(refused)
        return {**out, "refused": refused}
    corpus = generate_corpus(cache / f"gen-{chunks}", chunks).resolve()  # children run elsewhere
    files = files_of(corpus)
    out.update(files=len(files), source_chars=sum(len(p.read_text(encoding="utf-8")) for p in files),
               device=settings.embedding.device)
    sentences = _sentences(files, queries)
    qs = [" ".join(s.split()[:8]) for s in sentences[:queries]]
    peer_on = chunks <= PEER_MAX if peer is None else peer
    with tempfile.TemporaryDirectory(prefix="rag-bench-scale-", dir=work) as tmp:
        root = Path(tmp).resolve()
        new = [_new_file(root / "new", f"new{i}", sentences, i) for i in range(4)]
        embedded = settings.model_copy(update={"index_dir": root / "embedded", "chroma_url": None})
        out["embedded"] = _side(embedded, corpus, qs, new[:2], root)
        if server:
            try:
                with _chroma_server(root / "chroma") as (url, info):
                    remote = settings.model_copy(update={"index_dir": root / "server", "chroma_url": url})
                    out["server"] = _side(remote, corpus, qs, new[2:], root)
                out["server"]["chroma"] = info
            except RuntimeError as e:  # the server did not start: the embedded figures still stand
                out["server"] = {"error": [str(e)], "chroma": {}}
        if peer_on:
            out["peer"] = measure("langchain", corpus, None, settings.embedding.device)
        else:
            out["peer"] = {"skipped": "not asked" if peer is False else
                           f"{chunks:,} chunks > {PEER_MAX:,}: it doubles the run; --peer "
                           "(rag bench: --baselines) runs it"}
    out["load_avg_after"] = machine.load_avg()
    _derive(out)
    for line in table(out):
        say(line)
    return out


def _derive(out: dict[str, Any]) -> None:
    """Throughput per source character: the same work for both stacks, whatever their chunks."""
    chars = out["source_chars"]
    rows = [out[k]["build"] for k in ("embedded", "server") if k in out] + [out["peer"]]
    for r in rows:
        if "seconds" in r and "error" not in r:
            r.setdefault("ingest_seconds", r["seconds"])  # the peer: its whole process is the ingest
            r["chunks_per_s"] = round(r["chunks"] / r["ingest_seconds"], 1)
            r["chars_per_s"] = round(chars / r["ingest_seconds"])
            r["peak_ingest_mb"] = r.get("peak_rss_mb_ingest", r["peak_rss_mb"])
            r["within_memory_target"] = r["peak_ingest_mb"] <= MEMORY_TARGET_MB


def _cell(side: dict[str, Any] | None, path: str) -> str:
    cur: Any = side
    for key in path.split("."):
        if not isinstance(cur, dict) or "error" in cur or key not in cur:
            return "failed" if isinstance(cur, dict) and "error" in cur else "-"
        cur = cur[key]
    return f"{cur:,.1f}" if isinstance(cur, float) else f"{cur:,}" if isinstance(cur, int) else str(cur)


ROWS = [
    ("full ingest s (whole process)", "build.ingest_seconds", "ingest_seconds"),
    ("  chunks", "build.chunks", "chunks"),
    ("  chunks/s", "build.chunks_per_s", "chunks_per_s"),
    ("  source chars/s", "build.chars_per_s", "chars_per_s"),
    ("  CPU s", "build.cpu_seconds_ingest", "cpu_seconds"),
    (f"  peak RSS MB (target <= {MEMORY_TARGET_MB})", "build.peak_ingest_mb", "peak_ingest_mb"),
    ("ranker self-training s", "build.self_train_s", ""),
    ("one-file update, in process ms", "update.update_ms", ""),
    ("  embed ms", "update.split_ms.embed", ""),
    ("  vector upsert ms", "update.split_ms.upsert", ""),
    ("  BM25 rebuild ms", "update.split_ms.keyword", ""),
    ("  rest ms", "update.split_ms.rest", ""),
    ("one-file update, `rag ingest` s", "update_cli.seconds", ""),
    ("  its peak RSS MB", "update_cli.peak_rss_mb", ""),
    ("cold `rag search` s (whole process)", "cold_search.seconds", ""),
    ("cold `rag ask` s (whole process)", "cold_ask.seconds", ""),
    ("retrieval p50 ms", "retrieval.total.p50", ""),
    ("retrieval p95 ms", "retrieval.total.p95", ""),
]


def table(res: dict[str, Any]) -> list[str]:
    sides = [k for k in ("embedded", "server") if k in res]
    stages = sorted({s for k in sides for s in res[k].get("retrieval", {}).get("stage_p50", {})})
    rows = ROWS + [(f"  {s} p50 ms", f"retrieval.stage_p50.{s}", "") for s in stages]
    rows += [("retrieval process peak RSS MB", "retrieval.peak_rss_mb", "")]
    peer = res["peer"]
    lines = [
        f"scale: {res['chunks']:,} chunks asked, {res['files']:,} files, {res['source_chars']:,} "
        f"source chars, device {res['device']}; load average {res['load_avg_before']} before, "
        f"{res['load_avg_after']} after, {res['cores']} cores",
        f"{'':<36}" + "".join(f"{s:>14}" for s in sides) + f"{'LangChain':>14}",
    ]
    for label, path, peer_key in rows:
        cells = [_cell(res[s], path) for s in sides]
        lines.append(f"{label:<36}" + "".join(f"{c:>14}" for c in cells)
                     + f"{_cell(peer, peer_key) if peer_key else '-':>14}")
    for side in sides:
        for step, r in [("", res[side]), *res[side].items()]:
            if isinstance(r, dict) and "error" in r:
                lines.append(f"{side} {step} failed: {' '.join(r['error'])}".replace("  ", " "))
    chroma = res.get("server", {}).get("chroma", {})
    if chroma.get("start_s") is not None:
        lines.append(f"chroma server: started in {chroma.get('start_s')} s, peak RSS "
                     f"{chroma.get('peak_rss_mb')} MB (not in the columns above)")
    if "skipped" in peer:
        lines.append(f"LangChain peer skipped: {peer['skipped']}")
    elif "error" in peer:
        lines.append(f"LangChain peer failed: {peer['error']}")
    lines.append("whole processes, model load included; the update in process has the model and store open")
    if res["load_avg_after"] > res["cores"]:
        lines.append(f"load average after ({res['load_avg_after']}) is above the {res['cores']} cores "
                     "(this benchmark's own work counts too): compare CPU seconds, or run again alone")
    return lines


# ---- the workers: one step each, in their own process ----------------------------------------

def _rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return round(ru.ru_utime + ru.ru_stime, 2)


def _work_build(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from core.index import Index
    from eval.self_train import self_train
    from ingest.pipeline import ingest

    index = Index(settings)
    rep = ingest([Path(spec["corpus"])], settings, index=index)
    # The ingest figure is the whole process (start, imports, model load) up to here, as the
    # peer's is: the parent subtracts `tail_s`, what this process did after it.
    done = time.perf_counter()
    res: dict[str, Any] = {
        "chunks": rep.chunks_embedded, "chars_embedded": rep.chars_embedded, "failed_files": len(rep.failed),
        "ingest_inside_s": round(rep.seconds, 2), "peak_rss_mb_ingest": _rss_mb(),
        "cpu_seconds_ingest": _cpu_s()}
    ranker = self_train(index, settings)  # what `rag ingest` does next
    res.update(self_train_s=round(time.perf_counter() - done, 1), ranker_active=ranker.active)
    res["tail_s"] = time.perf_counter() - done
    return res


def _work_update(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from core.index import Index
    from core.tokens import tokenize
    from ingest.pipeline import ingest

    index = Index(settings)
    # A resident process (the UI, `rag serve`) has these loaded: the figure is the update alone.
    # serve's warm-up query (app/serve.py WARM_QUERY) also loads jieba's dictionary, 0.7 s at
    # the first Chinese text a process tokenises.
    index.embedder.embed(["warm up"] * 4)
    tokenize("预热 warm up")
    index.vectors.count()
    index.docs.count()
    split = {"embed": 0.0, "upsert": 0.0, "keyword": 0.0}

    def timed(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                split[key] += time.perf_counter() - t
        return call

    setattr(index.embedder, "embed", timed("embed", index.embedder.embed))  # noqa: B010 (instance only)
    setattr(index.vectors, "upsert", timed("upsert", index.vectors.upsert))  # noqa: B010
    setattr(index, "rebuild_keyword", timed("keyword", index.rebuild_keyword))  # noqa: B010
    t0 = time.perf_counter()
    rep = ingest([Path(spec["file"])], settings, index=index)
    total = (time.perf_counter() - t0) * 1000
    ms = {k: round(v * 1000, 1) for k, v in split.items()}
    ms["rest"] = round(total - sum(ms.values()), 1)
    return {"update_ms": round(total, 1), "chunks": rep.chunks_embedded, "split_ms": ms}


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1)}


def _work_query(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from core.index import Index
    from retrieval.pipeline import retrieve

    index = Index(settings)
    t0 = time.perf_counter()
    retrieve("warm up the models and caches", settings, index=index)  # loads model, store, BM25
    first = time.perf_counter() - t0
    total: list[float] = []
    stages: dict[str, list[float]] = {}
    for q in spec["queries"]:
        t = time.perf_counter()
        res = retrieve(q, settings, index=index)
        total.append((time.perf_counter() - t) * 1000)
        for stage, ms in res.timings().items():
            stages.setdefault(stage, []).append(ms)
    return {"queries": len(total), "first_query_s": round(first, 2), "total": _pct(total),
            "stage_p50": {s: _pct(v)["p50"] for s, v in stages.items()}}


WORKERS = {"build": _work_build, "update": _work_update, "query": _work_query}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.split("\n\n")[0].strip('"'))
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--server", action="store_true", help="also against a real `chroma run`")
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=None,
                    help=f"the LangChain peer (default: only up to {PEER_MAX:,} chunks)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--worker", nargs=3, metavar=("STEP", "SPEC", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        step, spec, dest = a.worker
        res = WORKERS[step](json.loads(Path(spec).read_text()), load_settings())
        res["peak_rss_mb_inside"] = _rss_mb()
        Path(dest).write_text(json.dumps(res))
        return
    res = run(load_settings(), chunks=a.chunks, echo=print, server=a.server, peer=a.peer, queries=a.queries)
    write_json(a.json, res)


if __name__ == "__main__":
    main()
