from pathlib import Path

import pytest

from core.settings import load_settings


def test_defaults_point_at_data_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_INDEX_DIR")
    s = load_settings()
    assert s.index_dir == Path("data/index")
    assert s.search.mode == "hybrid"
    assert s.llm.provider == "auto"


def test_toml_then_env_precedence(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_INDEX_DIR")
    (isolated / "rag.toml").write_text('index_dir = "from-toml"\n[chunk]\nsize = 123\n[search]\ntop_k = 9\n')
    s = load_settings()
    assert s.index_dir == Path("from-toml") and s.chunk.size == 123 and s.search.top_k == 9
    monkeypatch.setenv("RAG_INDEX_DIR", "from-env")
    monkeypatch.setenv("RAG_SEARCH__TOP_K", "4")
    s = load_settings()
    assert s.index_dir == Path("from-env") and s.search.top_k == 4 and s.chunk.size == 123


def test_rag_config_names_another_file(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = isolated / "other.toml"
    cfg.write_text('chroma_url = "http://127.0.0.1:9"\n')
    monkeypatch.setenv("RAG_CONFIG", str(cfg))
    assert load_settings().chroma_url == "http://127.0.0.1:9"
