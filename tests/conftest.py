"""Test isolation: every test gets its own working directory and index folder, and no
RAG_* variable from the developer's shell leaks in. Nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CORPORA = REPO.parent / "shared" / "corpora"


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
