"""The fault matrix (`rag bench faults`): its damage count finds what a fault does to an index,
a broken case is reported and the matrix goes on, and the cheap cases pass end to end (whole
`rag` processes). The full matrix (~25 processes, minutes) is a benchmark, not a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.index import Index
from core.settings import load_settings
from eval.bench import fault_cases
from eval.bench import faults as bench_faults
from eval.bench.fault_kit import CaseResult, Proc, clean_exit, clean_records, count_damage, good_files
from ingest.pipeline import ingest


def test_damage_counts_lost_and_duplicated_chunks(tmp_path: Path) -> None:
    files = good_files(tmp_path / "docs")
    expected = clean_records(files, tmp_path / "clean")
    assert len(expected) >= 2
    assert count_damage(expected, tmp_path / "clean").notes == []  # a clean index against itself

    settings = load_settings(index_dir=tmp_path / "hurt")
    ingest(files, settings)
    index = Index(settings)
    victim = index.docs.all_ids()[0]
    index.vectors.delete([victim])  # a record whose vector is gone: no dense query finds it
    dmg = count_damage(expected, tmp_path / "hurt")
    assert dmg.lost == 1 and dmg.duplicated == 0 and "records without a vector" in dmg.summary()

    missing = count_damage([*expected, ("elsewhere.md", 0, 5, "never stored")], tmp_path / "clean")
    assert missing.lost == 1 and "expected records missing" in missing.summary()
    assert count_damage(expected, tmp_path / "none").lost == len(expected)  # no index at all


def test_a_process_that_ends_badly_is_named() -> None:
    tb = Proc(["ingest"], 1, "", "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n", 1.0)
    assert clean_exit(tb, 1) == ["traceback: KeyError: 'x'"]
    assert clean_exit(Proc(["ingest"], 0, "done\n", "", 1.0), nonzero=True) == [
        "exit 0, expected an error: done"]
    assert clean_exit(Proc(["ingest"], None, "", "", 300.0)) == ["timed out after 300s"]


def test_a_broken_case_fails_and_the_matrix_goes_on(tmp_path: Path) -> None:
    def broken(tmp: Path) -> CaseResult:
        raise RuntimeError("the case itself is wrong")

    def fine(tmp: Path) -> CaseResult:
        return CaseResult("fine", True)

    lines: list[str] = []
    res = bench_faults.run(load_settings(), echo=lines.append, cases=[broken, fine])
    assert (res["passed"], res["failed"]) == (1, 1)
    assert res["cases"][0]["reason"].startswith("the case raised RuntimeError: the case itself is wrong")
    assert "1 passed, 1 failed" in lines and any(ln.startswith("load average before:") for ln in lines)


@pytest.mark.parametrize("case", [fault_cases.malformed_toml, fault_cases.index_dir_is_a_file,
                                  fault_cases.markup_name], ids=lambda c: c.__name__)
def test_cheap_fault_cases_pass(case: fault_cases.Case) -> None:
    """Each failed before the fixes of issue 16 (a TOMLDecodeError traceback; exit 0 with "No
    index yet"; rich's MarkupError on `[/x]` in a path)."""
    res = bench_faults.run(load_settings(), cases=[case])
    (r,) = res["cases"]
    assert r["passed"], r
    assert r["lost"] == 0 and r["duplicated"] == 0
