"""Test isolation: every test gets its own working directory and index folder, and no
RAG_* variable from the developer's shell leaks in. Nothing is downloaded.

System packages some tests need (Chromium, a CJK font): a test that lacks one skips, saying
which; with RAG_REQUIRE_SYSTEM_DEPS=1 (set by .ci/run) it fails instead, so CI cannot pass
without running them. Use `needs_system_dep` as a mark, or `missing_system_dep` in a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
# read once, at import: the `isolated` fixture below removes every RAG_* variable
REQUIRE_SYSTEM_DEPS = os.environ.get("RAG_REQUIRE_SYSTEM_DEPS", "") not in ("", "0")


def missing_system_dep(reason: str) -> NoReturn:
    """Skip the running test for a missing system package, or fail it in CI."""
    if REQUIRE_SYSTEM_DEPS:
        pytest.fail(f"{reason} (RAG_REQUIRE_SYSTEM_DEPS is set: CI requires it)", pytrace=False)
    pytest.skip(reason)


def needs_system_dep(present: bool, reason: str) -> pytest.MarkDecorator:
    """A mark (or `pytestmark`): when not `present`, the test skips with `reason`, or fails in CI.
    Checked before the test's fixtures are set up."""
    return pytest.mark.system_dep(present, reason)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("system_dep"):
        present, reason = mark.args
        if not present:
            missing_system_dep(reason)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in list(os.environ):
        if k.startswith("RAG_"):
            monkeypatch.delenv(k)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    return work


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    from core.settings import load_settings

    return load_settings()
