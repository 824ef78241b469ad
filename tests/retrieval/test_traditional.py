"""Notes written in Traditional characters, asked in Simplified Chinese and in English, end to
end (ingest, search, the extractive answer, the abstain check): the tokenizer folds Traditional
to Simplified (core/script.py), so 綠茶 / 水溫 in the notes are the question's 绿茶 / 水温, and the
dictionary's Simplified translations of "green tea" and "water temperature" meet them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval.answer import ask
from tests.files import write_docs

DOCS = {
    "tea.md": "# 泡茶指南\n\n綠茶的水溫大約攝氏八十度，浸泡兩到三分鐘。"
              "烏龍茶需要較高的水溫，大約九十五度。\n",
    "rag.md": "# 檢索增強生成筆記\n\n檢索增強生成先從知識庫檢索相關段落，"
              "再讓大型語言模型根據這些段落生成答案。\n\n"
              "## 向量資料庫\n\n常見的向量資料庫有 Chroma、Milvus 和 Qdrant。文件被切成小塊後編碼成向量。\n",
    "garden.md": "# 園藝\n\n番茄需要充足的陽光，每天澆水一次，夏天要搭架子。\n",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("trad")
    docs = write_docs(root / "docs", DOCS)
    s = load_settings(index_dir=str(root / "index"), llm={"provider": "llamacpp"},
                      answer={"mode": "extractive"}, search={"ltr_self_train": False})
    assert not ingest([docs], s).failed
    return s


@pytest.mark.parametrize("question", ["绿茶的水温是多少？", "What water temperature for green tea?"])
def test_traditional_notes_answer_a_simplified_or_english_question(settings: Settings, question: str) -> None:
    res = ask(question, settings)
    assert not res.abstained, res.answer
    assert "八十度" in res.answer
    assert [Path(c.source).name for c in res.citations] == ["tea.md"]


def test_an_unrelated_question_still_abstains(settings: Settings) -> None:
    """Too few records for the absent gate (retrieval/grade.py), and MiniLM's cosine of any two
    Chinese texts is 0.4-0.5: a passage in the question's script with none of its terms
    supports nothing."""
    for question in ("蒙娜丽莎是谁画的？", "秘鲁的首都是哪里？"):
        res = ask(question, settings)
        assert res.abstained, res.answer
