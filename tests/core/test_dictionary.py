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
    idx = {k: set(v) for k, v in dictionary.parse(LINES).items()}
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
    idx = {"paper": {"论文": 0, "纸": 0, "报纸": 0}, "the": {"这": 0}}
    vocab = {"论文": 0, "纸": 1, "这": 2, "其他": 3}
    df = np.array([3, 5, 9, 1])  # 这 in 9 of 10 records: more than half, says nothing
    assert dictionary.for_corpus(vocab, df, 10, idx) == {"paper": ["纸", "论文"]}


def test_a_corpus_reads_only_the_entries_of_its_own_words() -> None:
    """for_corpus parses only the entries whose Chinese word the corpus holds (1.7 s -> 0.2 s of
    a Chinese ingest), and gives what the whole dictionary gives."""
    words = ["论文", "位置", "传统", "学习", "纸", "报纸", "关羽", "其他词", "这"]
    vocab = {w: i for i, w in enumerate(words)}
    df = np.array([3, 2, 1, 4, 5, 1, 2, 1, 9])
    mine = dictionary.english_index(vocab)
    assert mine and all(w in vocab for ws in mine.values() for w in ws)
    assert len(mine) < len(dictionary.english_index()) / 20
    got = dictionary.for_corpus(vocab, df, 10)
    assert got == dictionary.for_corpus(vocab, df, 10, dictionary.english_index())
    assert got[_key("paper")][:2] == ["纸", "论文"] and "guan yu" in got


def test_translate_takes_words_and_two_word_phrases() -> None:
    tr = {_key("loss"): ["损失"], _key("loss scaling"): ["损失缩放"], _key("scaling"): ["缩放", "比例"]}
    got = dictionary.translate("Why is loss scaling needed?", tr, 1)
    assert got == {_key("loss"): ["损失"], _key("scaling"): ["缩放"], _key("loss scaling"): ["损失缩放"]}
    assert dictionary.translate("Why is loss scaling needed?", tr, 0) == {}


def test_a_proper_nouns_romanised_name_is_a_key() -> None:
    """A name's entry explains who it is (too long for a translation) but its first sense
    begins with the name spelt as the entry's pinyin: that is the key."""
    idx = dictionary.parse([
        "關羽 关羽 [Guan1 Yu3] /Guan Yu (-219), general of Shu and blood-brother of Liu Bei/",
        "諸葛亮 诸葛亮 [Zhu1 ge3 Liang4] /Zhuge Liang (181-234), military leader of Shu Han/",
        "呂布 吕布 [Lu:3 Bu4] /Lü Bu (-198), general and warlord/",
        "蜀 蜀 [Shu3] /short name for Sichuan 四川[Si4 chuan1] province/",  # one syllable: no name key
        "劉海 刘海 [liu2 hai3] /bangs (hair)/",  # not a proper noun
        "華佗 华佗 [Hua4 Tuo2] /Hua Tuo (?-208), famous doctor at the end of Han Dynasty/",
        "孫子 孙子 [Sun1 zi3] /Sun Tzu, author of The Art of War/",  # does not spell its pinyin
    ])
    assert idx[_key("Guan Yu")] == {"关羽": 0} and idx[_key("Zhuge Liang")] == {"诸葛亮": 0}
    assert idx[_key("Lü Bu")] == {"吕布": 0} and idx[_key("Hua Tuo")] == {"华佗": 0}
    assert _key("shu") not in idx and _key("sun tzu") not in idx and _key("bang") in idx
    tr = dictionary.for_corpus({"关羽": 0, "华佗": 1}, np.array([3, 1]), 10, idx)
    assert dictionary.translate("How did Hua Tuo treat Guan Yu's arm?", tr, 1) == {
        _key("Hua Tuo"): ["华佗"], _key("Guan Yu"): ["关羽"]}


def test_a_sense_a_domain_label_qualifies_ranks_after_plain_ones() -> None:
    """"long (investment)" makes 多头 a translation of "long", but one for after 长 ("/length/
    long/"), however often the corpus says 多头 (multi-head attention, in LLM notes)."""
    idx = dictionary.parse([
        "多頭 多头 [duo1 tou2] /many-headed/long term (finance)/long (investment)/",
        "長 长 [chang2] /length/long/forever/",
        "文本 文本 [wen2 ben3] /a text (article, script, contract etc)/(computing) text/",
        "正文 正文 [zheng4 wen2] /(computing) text/main text/",
    ])
    assert idx[_key("long")] == {"多头": dictionary.QUALIFIED, "长": dictionary.LATER}
    # an explanation in parentheses is no label: 文本 keeps a plain sense of "text"
    assert idx[_key("text")] == {"文本": 0, "正文": dictionary.QUALIFIED}
    vocab = {"多头": 0, "长": 1, "文本": 2, "正文": 3}
    got = dictionary.for_corpus(vocab, np.array([40, 3, 5, 9]), 100, idx)
    assert got[_key("long")] == ["长", "多头"] and got[_key("text")] == ["文本", "正文"]
    assert dictionary.translate("Why are LLMs weak at long texts?", got, 1)[_key("long")] == ["长"]


def test_a_later_sense_ranks_after_words_whose_first_sense_it_is() -> None:
    """将 says "to use" in its third sense ("will; shall" first): the notes' commonest word that
    translates "use", and a function word of every other sentence. 使用 and 用 mean it first."""
    idx = dictionary.parse([
        "將 将 [jiang1] /will/shall/to use/to take/to checkmate/",
        "使用 使用 [shi3 yong4] /to use/to employ/to apply/to make use of/",
        "用 用 [yong4] /surname Yong/to use/to employ/to have to/",  # a skipped sense is not the first
    ])
    assert idx[_key("use")] == {"将": dictionary.LATER, "使用": 0, "用": 0}
    got = dictionary.for_corpus({"将": 0, "使用": 1, "用": 2}, np.array([45, 12, 20]), 100, idx)
    assert got[_key("use")] == ["用", "使用", "将"]  # first senses by count, then the later one


def test_headwords_in_a_question_are_the_dictionarys_longest_words() -> None:
    # jieba cuts 法压壶 as 法 / 压 / 壶; the dictionary knows it whole. 咖啡 inside 咖啡豆 is
    # left out, single characters are never words here, and Latin text is skipped.
    assert dictionary.headwords_in("法压壶需要多粗的研磨度？") == ["法压壶", "需要", "研磨"]
    assert dictionary.headwords_in("咖啡豆 and LLM 水温") == ["咖啡豆", "水温"]
    assert dictionary.headwords_in("水") == []


def test_to_english_keeps_the_translations_the_corpus_holds_plain_senses_first() -> None:
    held = {"french": 2, "press": 5, "grind": 3, "coffe": 9, "bean": 4, "mill": 0}
    calls: list[list[str]] = []

    def doc_freqs(tokens: list[str]) -> dict[str, int]:
        calls.append(tokens)
        return {t: held.get(t, 0) for t in tokens}

    got = dictionary.to_english(["法压壶", "研磨", "咖啡豆", "对"], doc_freqs, per_term=1)
    # 研磨: "milling" is its first sense but the corpus never says it; "grind" (a later sense) is held
    assert got == {"法压壶": ["french press"], "研磨": ["grind"], "咖啡豆": ["coffee beans"]}
    assert len(calls) == 1  # one look-up of every candidate token
    assert dictionary.to_english(["法压壶"], doc_freqs, per_term=0) == {}


def test_a_key_whose_usual_word_is_too_common_gets_no_rarer_sense() -> None:
    """LLM notes say 模型 in most passages: "model" is then no evidence of which passage is asked
    for, and 典型 ("/model/typical case/archetype/") would ask for another meaning."""
    idx = dictionary.parse([
        "模型 模型 [mo2 xing2] /model/mold/matrix/pattern/",
        "典型 典型 [dian3 xing2] /model/typical case/archetype/typical/representative/",
        "論文 论文 [lun4 wen2] /paper/treatise/thesis/",
    ])
    vocab = {"模型": 0, "典型": 1, "论文": 2}
    got = dictionary.for_corpus(vocab, np.array([60, 2, 7]), 100, idx)
    assert _key("model") not in got and got[_key("typical")] == ["典型"]
    assert got[_key("paper")] == ["论文"]
    # where 模型 is not that common, it comes first and the rarer sense after it
    got = dictionary.for_corpus(vocab, np.array([40, 2, 7]), 100, idx)
    assert got[_key("model")] == ["模型", "典型"]


def test_by_context_puts_first_the_sense_the_questions_other_words_keep_company_with() -> None:
    """Four records. "function": 性能 in rows 0-1, 函数 in rows 2-3; "object": 目的 in row 0,
    目标 in rows 2-3; the question's own word "token" in row 3. By hand (Dice: 2|A&B| / (|A|+|B|)):
    函数: token 2*1/3 + best of object's (目标 2*2/4 = 1) = 1.667, 性能: 0 + (目的 2*1/3) = 0.667;
    目标: token 2/3 + (函数 1) = 1.667, 目的: 0 + (性能 2/3) = 0.667. Each key's winner comes first,
    the others after it in dictionary order."""
    rows = {"性能": np.array([0, 1]), "函数": np.array([2, 3]), "目的": np.array([0]),
            "目标": np.array([2, 3]), "token": np.array([3])}
    cands = {"function": ["性能", "功能", "函数"], "object": ["目的", "目标"]}
    got = dictionary.by_context(cands, ["token"], rows, 4)
    assert got == {"function": ["函数", "性能", "功能"], "object": ["目标", "目的"]}


def test_by_context_keeps_dictionary_order_without_company_or_on_a_tie() -> None:
    """No anchor and no other key: nothing scores. A tie keeps the earlier sense. A key's own
    word is no anchor for it ("function" in the corpus holds every row with 函数), nor is a key
    that shares a word with it ("squar" / "squar root")."""
    rows = {"性能": np.array([0]), "函数": np.array([1]), "function": np.array([1]), "平方": np.array([1]),
            "平方根": np.array([1]), "本": np.array([0])}
    alone = {"function": ["性能", "函数"]}
    assert dictionary.by_context(alone, [], rows, 2) == alone
    tie = {"function": ["性能", "函数"], "x": ["本", "平方"]}  # 性能 meets 本, 函数 meets 平方: 2/2 each
    assert dictionary.by_context(tie, [], rows, 2)["function"] == ["性能", "函数"]
    assert dictionary.by_context(alone, ["function"], rows, 2) == alone
    phrase = {"squar": ["本", "平方"], "squar root": ["平方根"]}
    assert dictionary.by_context(phrase, [], rows, 2)["squar"] == ["本", "平方"]
