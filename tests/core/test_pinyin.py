"""Chinese names spelled in pinyin (core/pinyin.py), checked by hand on dictionary lines and small
vocabularies."""

from __future__ import annotations

import numpy as np

from core import pinyin

LINES = [
    "# a comment line",
    "龐 庞 [Pang2] /surname Pang/huge/",
    "統 统 [tong3] /to gather/to unite/",
    "華 华 [Hua4] /surname Hua/",
    "華 华 [hua2] /magnificent/China/",
    "雄 雄 [xiong2] /male/grand/",
    "花 花 [hua1] /flower/",
    "呂 吕 [Lu:3] /surname Lü/",
    "伯 伯 [bo2] /father's elder brother/",
    "奢 奢 [she1] /extravagant/",
    "諸 诸 [zhu1] /all/various/",
    "葛 葛 [ge3] /surname Ge/",
    "亮 亮 [liang4] /bright/",
    "統一 统一 [tong3 yi1] /to unify/",
    "一 一 [yi1] /one/",
]
READS = pinyin.readings(LINES)


def test_readings_are_toneless_and_every_reading_of_a_character_counts() -> None:
    assert READS["华"] == ["hua"]  # two entries, one toneless reading
    assert READS["吕"] == ["lü"] and "统一" not in READS  # a word of two characters: no reading


def test_a_name_is_keyed_surname_apart_given_name_joined() -> None:
    assert pinyin.spellings("庞统", READS) == ["pang tong"]
    # three characters: a one-character surname, or a two-character one (诸葛亮 -> zhuge liang)
    assert set(pinyin.spellings("吕伯奢", READS)) == {
        "lü boshe", "lu boshe", "lv boshe", "lübo she", "lubo she", "lvbo she"}
    assert "zhuge liang" in pinyin.spellings("诸葛亮", READS)
    assert pinyin.spellings("庞X", READS) == []  # a character without a reading: no spelling


def test_for_corpus_keeps_words_the_dictionary_does_not_translate_commonest_first() -> None:
    vocab = {"庞统": 0, "华雄": 1, "统一": 2, "庞": 3, "庞统领": 4, "伯奢": 5, "花雄": 6}
    df = np.array([4, 2, 3, 9, 1, 6, 5])
    names = pinyin.for_corpus(vocab, df, 10, READS, known={"统一"})
    assert names["pang tong"] == ["庞统"] and names["hua xiong"] == ["花雄", "华雄"]  # 5 records, 2
    assert "tong yi" not in names  # 统一 is a dictionary word, not a name
    assert not any("庞" == w for ws in names.values() for w in ws)  # one character: no name
    assert "bo she" not in names  # 伯奢 is in 6 of 10 records: more than half


def test_a_questions_capitalised_pairs_are_looked_up() -> None:
    q = "Why was Guan Yu's wine still warm when he came back from fighting Hua Xiong?"
    assert pinyin.capitalised_pairs(q) == ["Guan Yu", "Hua Xiong"]
    assert pinyin.capitalised_pairs("What did Cao Cao say after killing Lü Boshe?") == ["Cao Cao", "Lü Boshe"]
    names = {"hua xiong": ["华雄", "化凶"], "lü boshe": ["吕伯奢"]}
    assert pinyin.find(q, names, 1) == {"Hua Xiong": ["华雄"]}
    assert pinyin.find("Where did Lü Boshe live?", names, 2) == {"Lü Boshe": ["吕伯奢"]}
    assert pinyin.find("Where did hua xiong live?", names, 2) == {}  # not written as a name
    assert pinyin.find(q, names, 0) == {}
