"""CC-CEDICT read backwards (core/dictionary.py), checked by hand on lines and small vocabularies."""

from __future__ import annotations

import numpy as np

from core import dictionary
from core.keyword import tokenize

LINES = [
    "# a comment line",
    "傳統 传统 [chuan2 tong3] /tradition/traditional/",
    "論文 论文 [lun4 wen2] /paper/treatise/thesis/CL:篇[pian1]/to discuss a subject/",
    "紙 纸 [zhi3] /paper/CL:張|张[zhang1]/",
    "着 着 [zhe5] /variant of 著[zhe5]/",
    "學習 学习 [xue2 xi2] /to learn/to study/a word with a very long explanation of itself/",
]


def _key(text: str) -> str:
    return " ".join(tokenize(text))


def test_parse_reads_short_senses_backwards() -> None:
    idx = dictionary.parse(LINES)
    assert idx[_key("paper")] == {"论文", "纸"}
    assert idx[_key("tradition")] == {"传统"}
    assert idx[_key("learn")] == {"学习"} and idx[_key("discuss subject")] == {"论文"}  # "to", "a" dropped
    assert not any("着" in v for v in idx.values())  # a cross-reference is not a translation
    assert not any("CL" in k for k in idx)  # nor a classifier
    assert not any(len(k.split()) > dictionary.MAX_KEY_WORDS for k in idx)  # nor an explanation


def test_the_shipped_dictionary_is_read() -> None:
    idx = dictionary.english_index()
    assert "论文" in idx[_key("paper")] and "位置" in idx[_key("position")]
    assert len(idx) > 30_000


def test_for_corpus_keeps_the_corpus_words_commonest_first() -> None:
    idx = {"paper": frozenset({"论文", "纸", "报纸"}), "the": frozenset({"这"})}
    vocab = {"论文": 0, "纸": 1, "这": 2, "其他": 3}
    df = np.array([3, 5, 9, 1])  # 这 in 9 of 10 records: more than half, says nothing
    assert dictionary.for_corpus(vocab, df, 10, idx) == {"paper": ["纸", "论文"]}


def test_translate_takes_words_and_two_word_phrases() -> None:
    tr = {_key("loss"): ["损失"], _key("loss scaling"): ["损失缩放"], _key("scaling"): ["缩放", "比例"]}
    got = dictionary.translate("Why is loss scaling needed?", tr, 1)
    assert got == {_key("loss"): ["损失"], _key("scaling"): ["缩放"], _key("loss scaling"): ["损失缩放"]}
    assert dictionary.translate("Why is loss scaling needed?", tr, 0) == {}
