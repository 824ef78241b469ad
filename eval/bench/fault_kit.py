"""What the fault matrix (`eval.bench.faults`) is built from: a case's result, a whole `rag`
process run as a user runs it, and the count of chunks a fault lost or duplicated, measured
against what a clean in-process ingest of the same files stores."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.index import Index
from core.settings import load_settings
from eval.bench import REPO

Key = tuple[str, int, int, str]  # what a query depends on: (source, start, end, text)


@dataclass
class CaseResult:
    name: str
    passed: bool
    exit_code: int | None = None  # of the process under test (the last one that decides the case)
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0
    reason: str = ""  # one line; why it failed (or a figure worth reading when it passed)

    def line(self) -> str:
        rc = "-" if self.exit_code is None else str(self.exit_code)
        verdict = "pass" if self.passed else "FAIL"
        tail = f"  {self.reason}" if self.reason else ""
        return (f"{self.name:<24}{verdict:<6}{rc:>5}{self.lost:>6}{self.duplicated:>6}"
                f"{self.seconds:>8.1f}{tail}")


HEADER = f"{'case':<24}{'':<6}{'exit':>5}{'lost':>6}{'dup':>6}{'seconds':>8}  reason"


@dataclass
class Proc:
    """A finished `rag` process."""

    args: list[str]
    rc: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float | None = None  # VmHWM sampled while it ran (Linux)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output

    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("Error:")]

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip()]
        return lines[-1][:160] if lines else "(no output)"


def rag_env(index_dir: Path | str, **extra: str) -> dict[str, str]:
    """The user's environment without any RAG_* variable, with this index folder and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_INDEX_DIR"] = str(index_dir)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("ANONYMIZED_TELEMETRY", "False")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[str], timeout: float) -> Proc:
    """Wait for `proc` (killed after `timeout` seconds), draining its output and sampling its peak memory."""
    t0 = time.perf_counter()
    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def drain(stream: object, into: list[str]) -> None:
        into.append(stream.read())  # type: ignore[attr-defined]

    readers = [threading.Thread(target=drain, args=(proc.stdout, chunks["out"]), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, chunks["err"]), daemon=True)]
    for r in readers:
        r.start()
    peak: float | None = None
    rc: int | None = None
    while True:
        rc = proc.poll()
        if rc is not None:
            break
        now = _peak_mb(proc.pid)
        if now is not None:
            peak = max(peak or 0.0, now)
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.wait()
            rc = None
            break
        time.sleep(0.1)
    for r in readers:
        r.join(10)
    return Proc([str(a) for a in proc.args], rc, "".join(chunks["out"]), "".join(chunks["err"]),  # type: ignore[union-attr]
                time.perf_counter() - t0, peak)


def rag(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> Proc:
    """Run `python -m app.cli ARGS` to the end, as a user runs `rag ARGS`."""
    return finish(start(args, env, cwd), timeout)


# --- chunks lost and duplicated -------------------------------------------------------------


def keys(index: Index) -> list[Key]:
    return [(r.source, r.start, r.end, r.text) for r in index.docs.iter_records()]


def clean_records(files: list[Path], clean_dir: Path) -> list[Key]:
    """What a clean in-process ingest of `files` stores: the expected content of a case."""
    from ingest.pipeline import ingest

    settings = load_settings(index_dir=clean_dir)
    ingest(files, settings)
    return keys(Index(settings))


@dataclass
class Damage:
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, n: int, what: str, lost: bool) -> None:
        if n:
            if lost:
                self.lost += n
            else:
                self.duplicated += n
            self.notes.append(f"{n} {what}")

    def __iadd__(self, other: Damage) -> Damage:
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.notes += other.notes
        return self

    def summary(self) -> str:
        return "; ".join(self.notes)


def _ids_damage(ids: list[str], vec: list[str], kw: list[str]) -> Damage:
    d = Damage()
    have, vecs, kws = set(ids), set(vec), set(kw)
    d.add(len(ids) - len(have), "record ids stored twice", lost=False)
    d.add(len(vec) - len(vecs), "vector ids stored twice", lost=False)
    d.add(len(vecs - have), "vectors without a record", lost=False)
    d.add(len(have - vecs), "records without a vector", lost=True)
    d.add(len(kw) - len(kws), "keyword ids listed twice", lost=False)
    d.add(len(kws - have), "keyword ids without a record", lost=False)
    d.add(len(have - kws), "records missing from the keyword index", lost=True)
    return d


def count_damage(expected: Iterable[Key], index_dir: Path, **overrides: object) -> Damage:
    """Chunks lost and duplicated in the index at `index_dir` against `expected`.

    lost: expected records missing, plus records without a vector or a keyword entry (a query
    cannot find them). duplicated: records stored more often than expected, records of the
    expected files that a clean ingest does not store (stale chunks of an older version),
    repeated ids, and vectors or keyword entries that no record owns."""
    exp = Counter(expected)
    if not (Path(index_dir) / "docs.sqlite").exists():
        d = Damage()
        d.add(sum(exp.values()), "expected records missing (no index)", lost=True)
        return d
    index = Index(load_settings(index_dir=index_dir, **overrides))
    got = Counter(keys(index))
    sources = {k[0] for k in exp}
    d = Damage()
    d.add(sum(max(n - got[k], 0) for k, n in exp.items()), "expected records missing", lost=True)
    d.add(sum(max(n - max(exp[k], 1), 0) for k, n in got.items()), "records stored twice", lost=False)
    d.add(sum(1 for k in got if exp[k] == 0 and k[0] in sources), "stale records of these files", lost=False)
    index.keyword.load()
    d += _ids_damage(index.docs.all_ids(), index.vectors.all_ids(), list(index.keyword.ids))
    return d


def sources(index_dir: Path) -> set[str]:
    if not (Path(index_dir) / "docs.sqlite").exists():
        return set()
    return {k[0] for k in keys(Index(load_settings(index_dir=index_dir)))}


def texts(index_dir: Path) -> str:
    if not (Path(index_dir) / "docs.sqlite").exists():
        return ""
    return "\n".join(k[3] for k in keys(Index(load_settings(index_dir=index_dir))))


# --- small corpora ----------------------------------------------------------------------------


def good_files(folder: Path, prefix: str = "") -> list[Path]:
    """Two small files whose text each names them (so a search can tell them apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    a = folder / f"{prefix}alpha.md"
    b = folder / f"{prefix}bravo.txt"
    a.write_text("# Alpha\n\nGlaciers carve valleys in the northern range.\n\n"
                 "## More\n\nIce sheets hold most of the fresh water on Earth.\n")
    b.write_text("Bravo: the quarterly budget for the harbour was approved on Tuesday.\n")
    return [a, b]


def damage_vs_clean(good: list[Path], tmp: Path) -> Damage:
    """The case's index (`tmp/index`) against a clean ingest of the good files (`tmp/clean`)."""
    return count_damage(clean_records(good, tmp / "clean"), tmp / "index")


def verdict(name: str, proc: Proc | None, dmg: Damage, problems: list[str], t0: float,
            note: str = "") -> CaseResult:
    """The case's result: passed when nothing is lost or duplicated and no check failed."""
    why = [*problems, *([dmg.summary()] if dmg.notes else [])]
    passed = not why
    reason = "; ".join(why) if why else note
    return CaseResult(name, passed, proc.rc if proc else None, dmg.lost, dmg.duplicated,
                      round(time.perf_counter() - t0, 1), " ".join(reason.split())[:300])


def clean_exit(proc: Proc, want_rc: int | tuple[int, ...] | None = None, nonzero: bool = False) -> list[str]:
    """What is wrong with how a process ended: its exit code, a traceback, a timeout."""
    if proc.rc is None:
        return [f"timed out after {proc.seconds:.0f}s"]
    out: list[str] = []
    wanted = (want_rc,) if isinstance(want_rc, int) else want_rc
    if wanted is not None and proc.rc not in wanted:
        out.append(f"exit {proc.rc}, expected {'/'.join(map(str, wanted))}: {proc.last_line()}")
    if nonzero and proc.rc == 0:
        out.append(f"exit 0, expected an error: {proc.last_line()}")
    if proc.traceback():
        tb = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        out.append(f"traceback: {tb[-1][:160] if tb else ''}")
    return out
