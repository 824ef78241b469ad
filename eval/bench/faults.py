"""`rag bench faults`: the fault matrix. Each case (eval/bench/fault_cases.py) runs whole `rag`
processes on a few tiny files, as a user would, and counts the chunks the fault lost or
duplicated against a clean in-process ingest of the good files (eval/bench/fault_kit.py); a case
passes when both are 0 and the process ended as it should (exit code, one `Error:` line,
no traceback). Prints `N passed, M failed`, a line per case, and the load average before
and after (the machine's load explains slow seconds). Figures, never assertions.

    .venv/bin/python -m eval.bench.faults [--cases bad-files,kill-9] [--json OUT]
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.settings import Settings, load_settings
from eval.bench import Echo, machine, parser, write_json
from eval.bench import fault_cases as fc
from eval.bench.fault_kit import HEADER, CaseResult

log = logging.getLogger(__name__)

CASES: list[fc.Case] = [
    fc.bad_files,
    fc.encodings,
    fc.symlink_loop,
    fc.symlink_outside,
    fc.non_utf8_name,
    fc._kill_at("after_upsert"),
    fc._kill_at("after_sqlite"),
    fc._kill_at("after_delete"),
    fc.kill_9,
    fc.concurrent_ingest,
    fc.upload_during_ingest,
    fc.chroma_down,
    fc.ollama_hanging,
    fc.malformed_toml,
    fc.index_dir_is_a_file,
    fc.markup_name,
    fc.docx_zip_bomb,
    fc.big_plain_text,
]


@contextmanager
def isolated(work: Path) -> Iterator[None]:
    """The in-process parts (clean ingests, index inspection) read no RAG_* variable and no
    rag.toml of the caller: the cases' settings are the defaults plus what each case sets."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAG_")}
    cwd = Path.cwd()
    for k in saved:
        del os.environ[k]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.chdir(work)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.update(saved)


def run_case(case: fc.Case, tmp: Path) -> CaseResult:
    """One case in its own folder; a case that raises fails with the exception as its reason."""
    name = case.__name__.replace("_", "-")
    folder = tmp / name
    folder.mkdir()
    t0 = time.perf_counter()
    try:
        return case(folder)
    except Exception as e:  # a broken case is a failed case, and the matrix goes on
        log.exception("fault case %s raised", name)
        return CaseResult(name, False, None, 0, 0, round(time.perf_counter() - t0, 1),
                          f"the case raised {type(e).__name__}: {' '.join(str(e).split())[:200]}")


def run(
    settings: Settings, *, cases: list[fc.Case] | None = None, echo: Echo | None = None
) -> dict[str, Any]:
    """Run every case (or `cases`); `settings` is the caller's, unused: each case makes its own."""
    del settings
    say = echo or (lambda *a: None)
    before = machine.load_avgs()
    say(f"load average before: {' '.join(map(str, before))}")
    say(HEADER)
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="rag-faults-") as tmp, isolated(Path(tmp)):
        for case in cases or CASES:
            r = run_case(case, Path(tmp))
            results.append(r)
            say(r.line())
    after = machine.load_avgs()
    passed = sum(r.passed for r in results)
    say(f"{passed} passed, {len(results) - passed} failed")
    say(f"load average after: {' '.join(map(str, after))}")
    return {"cases": [asdict(r) for r in results], "passed": passed, "failed": len(results) - passed,
            "load_before": before, "load_after": after}


def main(argv: list[str] | None = None) -> None:
    names = {c.__name__.replace("_", "-"): c for c in CASES}
    ap = parser("The fault matrix: whole `rag` processes against faults, "
                                 "chunks lost or duplicated counted (`rag bench faults`).")
    ap.add_argument("--cases", default=None, help=f"comma-separated, default all: {', '.join(names)}")
    a = ap.parse_args(argv)
    picked = [c.strip() for c in a.cases.split(",") if c.strip()] if a.cases else list(names)
    unknown = [c for c in picked if c not in names]
    if unknown:
        ap.error(f"no case {', '.join(unknown)}; the cases: {', '.join(names)}")
    res = run(load_settings(), cases=[names[c] for c in picked], echo=print)
    write_json(a.json, res)


if __name__ == "__main__":
    main()
