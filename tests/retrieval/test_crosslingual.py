"""English questions over Chinese text: the corpus's own glosses ("近似最近邻（ANN）") mined by
hand-checkable rules, looked up longest-first, added only where the corpus uses the Chinese
term more than the English one, and a planted Chinese passage that only the glosses let an
English question find."""

from __future__ import annotations

import pytest

from core.index import Index
from core.lexicon import Lexicon, mine, pairs
from core.settings import Settings, load_settings
from ingest.pipeline import ingest
from retrieval import crosslingual
from retrieval.crosslingual import gloss_query, mismatch
from retrieval.pipeline import retrieve
from tests.files import write_docs


def test_pairs_both_ways_with_the_term_cut_from_its_sentence() -> None:
    text = ("我们使用近似最近邻（ANN）检索。LoRA（低秩适配）是一种微调方法。"
            "大型语言模型（Large Language Models）很强。版本(2)不算。")
    assert pairs(text) == [
        ("ann", "近似最近邻"),  # "我们使用" opens the run but is not the term
        ("large language model", "大型语言模型"),  # lower case, plural -s dropped
        ("lora", "低秩适配"),
    ]


def test_mine_keeps_the_commonest_glosses_and_the_corpus_script_share() -> None:
    lx = mine(["梯度裁剪（gradient clipping）", "梯度截断（gradient clipping）",
               "梯度裁剪（gradient clipping）"])
    assert lx.glosses == {"gradient clipping": ["梯度裁剪", "梯度截断"]}
    assert lx.cjk_share == pytest.approx(12 / (12 + 3 * 16), abs=1e-4)  # CJK over letters and digits
    assert mine([]).cjk_share == 0.0


def test_facts_skip_the_patterns_only_where_no_pair_can_be() -> None:
    """A text with fewer than two CJK characters or no bracket holds no glossing pair, so its
    facts skip the two patterns (their cost on English text); a text that has both gets every
    pair `pairs` finds."""
    from core.lexicon import facts

    for text in ("我们使用近似最近邻（ANN）检索。", "LoRA (低秩适配) works.", "近似最近邻(ANN) and more",
                 "Approximate nearest neighbour (ANN) search", "没有括号的中文 ANN", "中(ANN)"):
        assert facts(text).pairs == pairs(text)
    assert facts("Approximate nearest neighbour (ANN) search").pairs == []
    assert facts("我们使用近似最近邻（ANN）检索。").pairs == [("ann", "近似最近邻")]


def test_lookup_prefers_the_longest_term_and_uses_each_word_once() -> None:
    lx = Lexicon(0.9, {"language model": ["语言模型"], "large language model": ["大型语言模型"],
                       "ann": ["近似最近邻"]})
    assert lx.lookup("Which large language models use ANN indexes?") == [
        ("large language model", ["大型语言模型"]), ("ann", ["近似最近邻"])]
    assert lx.lookup("nothing known here") == []


DOCS = {
    "glossary.md": "# 术语\n\n梯度裁剪（gradient clipping）是训练技巧。"
                   "混合精度（mixed precision）节省显存。\n",
    "clipping.md": "# 训练稳定性\n\n训练循环神经网络时，常用梯度裁剪来防止梯度爆炸："
                   "当梯度范数超过阈值时按比例缩小梯度。\n",
    "precision.md": "# 显存\n\n半精度浮点数让显存占用减半，但数值范围变小，需要损失缩放。\n",
    "attention.md": "# 注意力\n\n自注意力让每个词元关注序列中的其他词元，"
                    "计算复杂度与序列长度的平方成正比。\n",
    "english.md": "# Notes\n\nGradient descent updates the weights against the gradient of the loss; "
                  "the learning rate sets the step size.\n",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("xl")
    docs = write_docs(root / "docs", DOCS)
    s = load_settings(index_dir=str(root / "index"), search={"ltr": False})
    assert not ingest([docs], s).failed
    return s


def _search(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"search": settings.search.model_copy(update=update)})


def _ingested(tmp_path_factory: pytest.TempPathFactory, name: str, docs: dict[str, str]) -> Settings:
    """Settings over a fresh index of `docs` (the ranker off)."""
    root = tmp_path_factory.mktemp(name)
    folder = write_docs(root / "docs", docs)
    s = load_settings(index_dir=str(root / "index"), search={"ltr": False})
    assert not ingest([folder], s).failed
    return s


def test_an_english_question_finds_the_planted_chinese_passage(settings: Settings) -> None:
    settings = _search(settings, translations_per_term=0)  # the glosses alone (dictionary: below)
    index = Index(settings)
    question = "Why is gradient clipping used when training recurrent networks?"
    mm = mismatch(question, index, settings)
    assert mm is not None and (mm.question_lang, mm.corpus_lang) == ("en", "zh")
    trace: list = []
    assert gloss_query(question, index, settings, trace) == f"{question} 梯度裁剪"
    glossed = f"{question} 梯度裁剪"
    clipping = next(r.id for r in index.docs.iter_records(("chunk",)) if r.source.endswith("clipping.md"))
    # BM25 reaches the passage (no English in it) only through the gloss
    assert clipping in [i for i, _ in index.keyword.search(glossed, 10)]
    assert clipping not in [i for i, _ in index.keyword.search(question, 10)]
    res = retrieve(question, settings, index=index, k=3)
    assert clipping in [h.record.id for h in res.hits]
    glosses = [t.detail["terms"] for t in res.trace if t.stage == "glosses"]
    assert glosses == [{"gradient clipping": ["梯度裁剪"]}]
    bm25 = next(t for t in res.trace if t.stage == "bm25")
    assert bm25.detail["query"] == glossed
    assert bm25.detail["bigrams"] is False  # the gloss is a whole word: no CJK bigrams scored
    off = _search(settings, glosses=False)
    bare = retrieve(question, off, index=Index(off), k=3)
    assert not [t for t in bare.trace if t.stage == "glosses"]
    assert next(t for t in bare.trace if t.stage == "bm25").detail["query"] == question


def test_a_gloss_joins_only_where_the_corpus_uses_the_chinese_term_more(settings: Settings) -> None:
    settings = _search(settings, translations_per_term=0)
    index = Index(settings)
    # 混合精度 appears once, in the glossary, as often as "mixed precision" itself: no gain
    trace: list = []
    assert gloss_query("What does mixed precision save?", index, settings, trace) is None
    assert trace[-1].detail["known"] == ["mixed precision"] and trace[-1].detail["terms"] == {}
    assert index.keyword.df("gradient clipping") == 1 and index.keyword.df("梯度裁剪") == 2


def test_a_chinese_question_is_not_expanded(settings: Settings) -> None:
    index = Index(settings)
    assert mismatch("梯度裁剪有什么用？", index, settings) is None
    assert gloss_query("梯度裁剪有什么用？", index, settings, []) is None
    res = retrieve("梯度裁剪有什么用？", settings, index=index, k=3)
    assert next(t for t in res.trace if t.stage == "bm25").detail["bigrams"] is True


def test_each_kind_of_question_is_graded_by_its_own_abstain_rule(settings: Settings) -> None:
    """An English question of this Chinese corpus is "crosslingual", a Chinese one "cjk", and
    each is held to its own rule (answer.abstain): its coverage means different things."""
    from retrieval.answer import ask
    from retrieval.grade import question_kind

    index = Index(settings)
    en, zh = "Why is gradient clipping used when training recurrent networks?", "梯度裁剪有什么用？"
    assert question_kind(en, index, settings) == "crosslingual"
    assert question_kind(zh, index, settings) == "cjk"
    strict_en = settings.model_copy(deep=True)
    strict_en.answer.abstain["crosslingual"].min_score = 1.01  # no support reaches it
    strict_en.answer.abstain["crosslingual"].hedge_score = None  # nor a weakly supported answer
    strict_en.answer.corrective = False
    a, b = ask(en, strict_en, index=index), ask(zh, strict_en, index=index)
    assert a.abstained and "answer.abstain.crosslingual.min_score" in a.answer
    assert not b.abstained, b.answer
    check = next(t.detail for t in b.trace if t.stage == "abstain_check")
    assert check["kind"] == "cjk" and check["min_score"] == settings.answer.abstain["cjk"].min_score


def test_dictionary_translations_find_a_passage_no_gloss_reaches(settings: Settings) -> None:
    """precision.md says 损失缩放 ("loss scaling") with no English and no gloss: CC-CEDICT's
    损失 (loss) and 缩放 (scaling), which the corpus uses, bring it to an English question."""
    from core.dictionary import translate

    index = Index(settings)
    question = "Why is loss scaling needed?"
    words = translate(question, index.keyword.translations(), 1)
    assert "损失" in words.get("loss", []), words
    precision = next(r.id for r in index.docs.iter_records(("chunk",)) if r.source.endswith("precision.md"))
    assert precision not in [i for i, _ in index.keyword.search(question, 10)]
    res = retrieve(question, settings, index=index, k=3)
    assert res.hits and res.hits[0].record.id == precision
    entry = next(t.detail for t in res.trace if t.stage == "glosses")
    assert entry["translations"]["loss"] == ["损失"]
    off = _search(settings, translations_per_term=0)
    bare = retrieve(question, off, index=Index(off), k=3)
    assert not any(t.stage == "glosses" and t.detail.get("translations") for t in bare.trace)
    assert not bare.hits or bare.hits[0].record.id != precision  # MiniLM cannot read it


def test_an_extractive_answer_to_an_english_question_quotes_the_translated_sentence(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """No Chinese sentence shares a word with "Why is loss scaling needed?": the composer
    scores sentences against the question as BM25 searched it, translations included, so it
    quotes the one with 损失缩放, not the passage's first sentence."""
    from retrieval.answer import ask

    root = tmp_path_factory.mktemp("xl-answer")
    docs = write_docs(root / "docs", {
        "train.md": "# 训练技巧\n\n混合精度训练节省显存并加快训练。需要损失缩放来防止半精度下梯度下溢。\n",
        "other.md": "# 推理\n\n推理时可以缓存键值以减少重复计算。\n",
    })
    s = load_settings(index_dir=str(root / "index"), search={"ltr": False}, llm={"provider": "llamacpp"},
                      answer={"mode": "extractive", "extractive_max_sentences": 1, "min_score": 0.0})
    assert not ingest([docs], s).failed
    res = ask("Why is loss scaling needed?", s)
    assert not res.abstained, res.answer
    assert res.answer.startswith("需要损失缩放来防止半精度下梯度下溢。"), res.answer


def test_a_word_and_its_translations_are_one_unit_of_coverage() -> None:
    from core.tokens import tokenize
    from retrieval.crosslingual import concept_units

    question = "Why is loss scaling needed? 损失 损失缩放 需要"
    terms = tokenize(question)
    assert terms == ["loss", "scale", "need", "损失", "损失", "缩放", "需要"]  # jieba: 损失 / 缩放
    groups = {"loss": ["损失"], "loss scale": ["损失缩放"], "need": ["需要"], "absent": ["不在"]}
    units = concept_units(terms, groups)
    # "loss" with 损失; the phrase's words less 损失 (taken); "need" with 需要; "scale" alone;
    # 不在 is no term of the query
    assert units == [frozenset({"loss", "损失"}), frozenset({"缩放"}), frozenset({"need", "需要"}),
                     frozenset({"scale"})]
    assert concept_units(["a", "b"], {}) == [frozenset({"a"}), frozenset({"b"})]
    # a phrase translated into one token covers each of its words: a passage about 绿茶 covers
    # "green" and "tea" (it was one unit of three, the words left uncovered: "What water
    # temperature for green tea?" over a Chinese note that answers it was refused, 21% covered)
    terms = tokenize("What water temperature for green tea? 水温 绿茶")
    units = concept_units(terms, {"water temperatur": ["水温"], "green tea": ["绿茶"]})
    assert units == [frozenset({"water", "水温"}), frozenset({"temperatur", "水温"}),
                     frozenset({"green", "绿茶"}), frozenset({"tea", "绿茶"})]


def test_the_abstain_check_counts_a_translated_word_as_the_english_one() -> None:
    """Coverage over units, by hand: English idf 1 each, their Chinese words idf 2 (a unit
    weighs its best idf); the passage holds llm, 长, 处理 and 文本 but not 弱: 7 of 9."""
    from core.types import Hit, Record
    from retrieval.grade import coverage, sentence_coverage, units_of

    idf = {"llm": 1.0, "weak": 1.0, "process": 1.0, "long": 1.0, "text": 1.0}
    groups = {"weak": ["弱"], "process": ["处理"], "long": ["长"], "text": ["文本"]}
    extra = {"弱": 2.0, "处理": 2.0, "长": 2.0, "文本": 2.0}
    hit = Hit(Record("r", "长文本处理能力较弱: LLM 受限于有限的上下文窗口。", "/d.md", start=0, end=30), 1.0)
    assert coverage(units_of(idf, groups, extra), hit) == pytest.approx(7 / 9)
    assert sentence_coverage(units_of(idf, groups, extra), hit) == pytest.approx(7 / 9)
    assert coverage(units_of(idf), hit) == pytest.approx(1 / 5)  # the English words alone: llm


def test_the_abstain_check_takes_translations_of_the_questions_own_terms_only() -> None:
    from retrieval.grade import own_groups, question_terms

    idf = {t: 1.0 for t in question_terms("How long should pre-training run?")}
    assert "long" not in idf and "pre" in idf and "train" in idf  # a question word is no term
    groups = {"long": ["长"], "train": ["训练"], "pre train": ["预训练"], "run": ["运行"]}
    assert own_groups(groups, idf) == {"train": ["训练"], "pre train": ["预训练"], "run": ["运行"]}
    assert own_groups(None, idf) == {}


def test_a_ranker_is_trained_on_the_features_the_query_path_computes(settings: Settings) -> None:
    """The LTR stage scores term features with the glossed question (`keyword_query`); the
    training collector must compute them the same way, or an English question's Chinese
    passage shows no coverage in training and full coverage at query time."""
    from eval.train_ranker import collect
    from retrieval import features

    settings = _search(settings, translations_per_term=0)
    index = Index(settings)
    question = "Why is gradient clipping used when training recurrent networks?"
    res = retrieve(question, settings, index=index, k=3)
    assert res.keyword_query == f"{question} 梯度裁剪"
    clipping = next(r.id for r in index.docs.iter_records(("chunk",)) if r.source.endswith("clipping.md"))
    groups = collect({"q": question}, {"q": {clipping: 2}}, index, settings, lambda h: h.record.id)
    row = groups[0].ids.index(clipping)
    col = features.FEATURES.index("coverage")
    assert groups[0].x[row, col] > 0  # 梯度裁剪 is in the passage; no English word of the question is
    assert features.compute(question, [h for h in res.hits if h.record.id == clipping], 1)[0, col] == 0


NAMED = {
    "huaxiong.md": "# 温酒\n\n关公出马，斩了华雄，提头掷于帐前，其酒尚温。\n",
    "pangtong.md": "# 落凤坡\n\n庞统行至落凤坡，中箭而亡。\n",
    "feast.md": "# 饮宴\n\n关公饮酒，众将皆贺，帐前鼓声大震。\n",
    "march.md": "# 行军\n\n大军出关，众将随行，一路无事。\n",
}


def test_a_name_in_pinyin_finds_the_passage_that_names_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    """华雄 is in no dictionary: the corpus's own word spelled "hua xiong" (core/pinyin.py) joins
    the BM25 query of "What happened to Hua Xiong?", and the passage that names him comes first;
    without the names no word of the question reaches it."""
    root = tmp_path_factory.mktemp("names")
    docs = write_docs(root / "docs", NAMED)
    s = load_settings(index_dir=str(root / "index"), search={"ltr": False})
    assert not ingest([docs], s).failed
    index = Index(s)
    assert index.keyword.names()["hua xiong"] == ["华雄"]
    saved = index.keyword.path / "names.json"
    assert saved.exists()
    saved.unlink()  # an index built before names: they are made at first use, and written
    assert Index(s).keyword.names()["hua xiong"] == ["华雄"] and saved.exists()
    question = "What happened to Hua Xiong after Guan Yu rode out?"
    planted = next(r.id for r in index.docs.iter_records(("chunk",)) if r.source.endswith("huaxiong.md"))
    res = retrieve(question, s, index=index, k=2)
    entry = next(t.detail for t in res.trace if t.stage == "glosses")
    assert entry["names"] == {"Hua Xiong": ["华雄"]}
    assert res.hits[0].record.id == planted
    blank = Index(s)
    blank.keyword._names = {}  # an index without names: the question's words alone
    bare = retrieve(question, s, index=blank, k=2)
    assert not next(t.detail for t in bare.trace if t.stage == "glosses")["names"]
    assert not bare.hits or bare.hits[0].record.id != planted


def test_a_names_own_words_are_not_translated_one_by_one() -> None:
    """Once "Cao Cao" is a name (曹操), its single word "cao" is no 曹参 (CC-CEDICT's romanised
    names give such one-word keys); a name the dictionary knows is not spelled out again."""
    from retrieval.crosslingual import with_names

    words = {"cao": ["曹参"], "cao cao": ["曹操"], "say": ["说"]}
    names = {"cao cao": ["草草"], "hua xiong": ["华雄"]}
    found = with_names("What did Cao Cao say to Hua Xiong?", words, names, 1)
    assert found == {"Hua Xiong": ["华雄"]}
    assert words == {"cao cao": ["曹操"], "say": ["说"], "hua xiong": ["华雄"]}


def test_with_senses_adds_each_keys_other_translations_up_to_the_limit() -> None:
    from retrieval.crosslingual import with_senses

    groups = {"context": ["背景"], "window": ["窗口"], "gpt": []}
    translations = {"context": ["背景", "情境", "上下文"], "window": ["窗口", "视窗"], "other": ["其他"]}
    query, got = with_senses("What is the context window? 背景 窗口", groups, translations, 2)
    assert got == {"context": ["背景", "情境"], "window": ["窗口", "视窗"], "gpt": []}
    assert query == "What is the context window? 背景 窗口 情境 视窗"
    assert groups["context"] == ["背景"]  # the search's groups are left as they were
    assert with_senses("q", groups, {}, 6) == ("q", {k: list(v) for k, v in groups.items()})


SENSES_DOCS = {
    "bg1.md": "# 项目\n\n项目背景介绍了研究的动机。\n",
    "bg2.md": "# 历史\n\n这段历史背景很复杂，需要耐心阅读。\n",
    "bg3.md": "# 文化\n\n文化背景影响人们的选择。\n",
    "model.md": "# 模型说明\n\n这个模型的窗口设计由三个模块组成。模型的上下文窗口长度为八千个词元。\n",
    "other.md": "# 推理\n\n推理时可以缓存键值以减少重复计算。\n",
    "tea.md": "# 茶\n\n绿茶用八十度的水冲泡。\n",
    "coffee.md": "# 咖啡\n\n法压壶需要粗研磨的咖啡粉。\n",
}


def test_an_answer_sentence_may_say_a_rarer_translation_of_the_questions_word(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The corpus says 背景 more often than 上下文, so the search translates "context" as 背景; the
    sentence that answers says 上下文. Scored with the key's other translations
    (answer.sentence_senses), it covers "context" and is quoted; with the search's word alone
    it ties with the passage's other sentence (模型, 窗口), which comes first. The search's
    choice by context (search.sense_candidates, the next test) is off here: it would pick 上下文."""
    from retrieval.answer import ask

    root = tmp_path_factory.mktemp("xl-senses")
    docs = write_docs(root / "docs", SENSES_DOCS)
    answers = {}
    for n in (0, 6):
        s = load_settings(index_dir=str(root / "index"), search={"ltr": False, "sense_candidates": 1},
                          llm={"provider": "llamacpp"},
                          answer={"mode": "extractive", "extractive_max_sentences": 1, "min_score": 0.0,
                                  "sentence_senses": n})
        if n == 0:
            assert not ingest([docs], s).failed
        res = ask("How large is the model's context window?", s)
        glosses = next(t.detail for t in res.trace if t.stage == "glosses")
        assert glosses["translations"].get("context") == ["背景"], glosses  # the search's one word
        answers[n] = res.answer
        senses = [t.detail["added"] for t in res.trace if t.stage == "sentence_senses"]
        assert ("上下文" in senses[0]["context"]) if n else not senses, senses  # the trace says which
    assert answers[6].startswith("模型的上下文窗口长度为八千个词元。"), answers
    assert answers[0].startswith("这个模型的窗口设计由三个模块组成。"), answers


def test_the_search_takes_the_sense_the_questions_other_words_keep_company_with(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Four passages say 背景 and one says 上下文, so the dictionary's order (and the commonest
    word) translates "context" as 背景; "window" is 窗口. By hand (Dice with 窗口, in model.md
    and ui.md): 上下文 2*1/(1+2) = 0.67, 背景 2*1/(4+2) = 0.33. Chosen by that company
    (search.sense_candidates, core/dictionary.by_context) the search adds 上下文 and finds
    model.md first; with the dictionary's order alone it adds 背景 and finds ui.md ("the
    window's background colour"), which holds both of its words."""
    ui = "# 界面\n\n窗口的背景颜色可以设置。\n"
    s = _ingested(tmp_path_factory, "xl-context", {**SENSES_DOCS, "ui.md": ui})
    question = "What is the context window?"
    firsts = {}
    for n in (4, 1):
        sn = _search(s, sense_candidates=n)
        res = retrieve(question, sn, index=Index(sn), k=3)
        glosses = next(t.detail for t in res.trace if t.stage == "glosses")
        firsts[n] = (glosses["translations"].get("context"), res.hits[0].record.source.rsplit("/", 1)[-1])
        # the trace says what the dictionary's order alone would have searched
        assert glosses.get("dictionary_order", {}).get("context") == (["背景"] if n == 4 else None), glosses
    assert firsts[4] == (["上下文"], "model.md"), firsts
    assert firsts[1] == (["背景"], "ui.md"), firsts


def test_a_word_the_corpus_writes_in_english_gets_no_translation(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Three notes write "prompt" in English and one says 及时 (CC-CEDICT: "timely; prompt"):
    the question's "prompt" is found as it is, and 及时 (the system reminding the user in good
    time) would only add noise (search.translations_where_chinese_commoner). "task" (任务,
    once; never in English) is translated either way."""
    from retrieval.crosslingual import senses

    s = _ingested(tmp_path_factory, "xl-english", {
        "p1.md": "# 写法\n\n好的 prompt 让模型的回答更准确。\n",
        "p2.md": "# 模板\n\nprompt 模板可以复用。\n",
        "p3.md": "# 任务\n\n写 prompt 时要说明任务。\n",
        "login.md": "# 登录\n\n系统会及时提醒用户输入密码。\n",
    })
    question = "How should a prompt describe the task?"
    index = Index(s)
    assert senses(question, index, s) == {"task": ["任务"]}
    off = _search(s, translations_where_chinese_commoner=False)
    assert senses(question, index, off) == {"prompt": ["及时"], "task": ["任务"]}


def test_a_phrase_translated_whole_is_not_translated_word_by_word(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """CC-CEDICT has 饮酒 for "drink wine", and the corpus says it: the phrase's words alone
    (喝 for "drink", 酒 for "wine") are not added beside it, as a name's are not. Nor is a word
    written in capitals translated: an acronym ("REST")."""
    from retrieval.crosslingual import senses

    s = _ingested(tmp_path_factory, "xl-phrase", {
        "feast.md": "# 宴会\n\n张飞喜欢饮酒。\n",
        "tea.md": "# 茶\n\n他们每天喝茶。\n",
        "jar.md": "# 酒坛\n\n这坛酒很香。\n",
        "others.md": "# 其余\n\n其余的人都留在家里。\n",
    })
    words = senses("Who liked to drink wine?", Index(s), s)
    assert words.get("drink wine") == ["饮酒"], words
    assert "drink" not in words and "wine" not in words, words
    # a word in capitals is an acronym: "REST" of "REST API" is not 其余 ("the rest")
    assert "rest" in senses("What did the rest drink?", Index(s), s)
    assert "rest" not in senses("Which server offers a REST API?", Index(s), s)


def test_the_search_and_the_coarse_stage_score_a_word_and_its_translations_as_one(settings: Settings) -> None:
    """The BM25 score every stage sees for an English question of Chinese notes counts each
    question word once, whether the passage says it in English or in its translation
    (core/keyword.py), not once per translation and jieba piece of it."""
    index = Index(settings)
    question = "How does self attention relate each token to the sequence length?"
    res = retrieve(question, settings, index=index, k=5)
    glossed = next(t for t in res.trace if t.stage == "bm25").detail["query"]
    g = crosslingual.glossed(question, index, settings, [])
    assert g is not None and g.text == glossed and g.groups
    ids = [h.record.id for h in res.hits]
    grouped = index.keyword.score_ids(glossed, ids, False, g.groups)
    plain = index.keyword.score_ids(glossed, ids, False)
    assert any(abs(a - b) > 1e-4 for a, b in zip(grouped, plain, strict=True))  # the case arises
    for h, want in zip(res.hits, grouped, strict=True):
        assert h.scores["bm25"] == pytest.approx(float(want), rel=1e-4)
