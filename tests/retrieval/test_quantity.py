"""The quantity a Chinese question asks for (retrieval/quantity.py), and the abstention it
drives: a passage that states no number in the asked unit supports nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import load_settings
from ingest.pipeline import ingest
from retrieval.answer import ask
from retrieval.quantity import asked_units, describe, states_quantity
from tests.files import write_docs
from tests.retrieval.answer_corpus import DOCS, build, settings_for


@pytest.mark.parametrize(
    ("question", "must", "must_not"),
    [
        ("孙策死时多少岁？", {"岁"}, {"年"}),
        ("孫策死時多少歲？", {"岁"}, set()),  # Traditional folds to Simplified
        ("刘备的双股剑长多少尺？", {"尺", "丈"}, {"年"}),  # a length: any unit of length
        ("七星坛有多高，分几层？", {"层", "尺", "丈"}, {"斤"}),
        ("孙坚的古锭刀有多重？", {"斤", "两"}, {"尺"}),
        ("绿茶开封后多少天内要喝完？", {"天", "日", "个月"}, {"斤"}),  # a time: any unit of time
        ("罗贯中是哪一年出生的？", {"年"}, {"月", "天"}),  # a year, not a duration
        ("需要多少人？", {"人", "名"}, set()),
        # modern written Chinese: medals, votes, sessions, machines, areas
        ("中国代表团在长野冬奥会上拿到了几枚金牌？", {"枚"}, {"人"}),
        ("朱镕基以多少票当选总理？", {"票"}, set()),
        ("这是第几届世界游泳锦标赛？", {"届"}, set()),
        ("阳江要新建几台核电机组？", {"台"}, set()),
        ("这个农场占地多少亩？", {"亩", "公顷", "平方公里"}, {"米"}),
        ("战机一共付了多少钱？", {"元", "美元", "英镑"}, set()),  # any currency answers 多少钱
        ("她一共拿了多少块金牌？", {"枚", "块", "金"}, {"元"}),  # 块 of medals is no money
        # a date, a percentage, a sum of money named by what it pays
        ("苏哈托是在哪一天宣布辞职的？", {"日", "号"}, {"年", "%"}),
        ("这次选举的投票率是多少？", {"%", "百分之"}, {"元"}),
        ("平均降幅为多少？", {"%"}, set()),
        ("活动的总预算是多少？", {"元", "美元"}, {"%"}),
        ("学生每年要交多少学费？", {"元", "美元"}, set()),
        ("投资多少年才能回本？", {"年"}, {"元"}),  # a measure follows: a time, not money
        ("液氮的温度是多少？", {"度", "摄氏度", "℃"}, set()),  # a figure named by what it measures
        ("冲咖啡的水温应该是多少？", {"度", "°C"}, set()),
        ("两人得了多少分？", {"分"}, {"分钟"}),
        ("他的年龄是多少？", {"岁"}, set()),
        ("两地距离是多少？", {"公里", "米", "海里"}, {"元"}),
    ],
)
def test_a_question_asks_the_units_of_its_quantity(question: str, must: set[str], must_not: set[str]) -> None:
    units = set(asked_units(question))
    assert must <= units and not (must_not & units)


@pytest.mark.parametrize(
    "question",
    [
        "关羽千里寻兄一共经过几个关隘？",  # 个: the answer counts in 处, 员 ...
        "袁术送给他多少粮食？",  # 粮 is no unit
        "许多长枪都断了，为什么？",  # 许多 is not 多长
        "他有多重身份，分别是什么",  # 多重 not at the question's end
        "How many people live in a census block group?",  # English is not typed
        "绿茶应该怎么保存？",
        "会见时有哪几位领导一同出席？",  # 哪几位 asks which ones (names), not how many
        "亿客隆集团是由哪几家商场合并组成的？",
        "井下和地面职工的收入分配比例是多少？",  # a ratio may be 1.9∶1: not a percentage
        "决赛的比分是多少？",  # ３∶１
        "这话有几分道理？",  # 几分 of a degree, not a score
        "这座城市的人口是多少？",  # 人口１２０万: a bare number answers it
    ],
)
def test_questions_without_a_unit_ask_nothing(question: str) -> None:
    assert asked_units(question) == ()


def test_a_passage_states_a_number_in_the_unit() -> None:
    assert states_quantity("策闻言，年止二十六岁。", ("岁",))
    assert states_quantity("连叫数声而亡，寿三十六岁", ("岁",))
    assert states_quantity("中平元年，张角起事", ("年",))  # 元年 is a year
    assert states_quantity("曹兵三千余人", ("人",))  # 余 between number and unit
    assert states_quantity("中国茶大致分为六大类", ("类",))  # 大 between number and unit
    assert states_quantity("监造十万枝箭", ("枝",))
    assert states_quantity("The run took 12 天", ("天",))  # digits count
    assert states_quantity("购机款累计达８·５７亿美元。", asked_units("付了多少钱？"))  # 亿 then 美元
    assert states_quantity("孙淑伟、田亮夺得３枚金牌", ("枚",))  # full-width digits
    assert states_quantity("在世界武术锦标赛上夺得８金２银", asked_units("获得几枚金牌？"))  # a bare tally
    assert states_quantity("占地２０平方米", asked_units("占地多少亩？"))
    assert not states_quantity("跑道长２０米", asked_units("占地多少亩？"))  # a length is no area
    assert not states_quantity("赤兔马日行千里，渡水登山", ("岁",))
    assert not states_quantity("张飞挺丈八蛇矛直出", ("斤", "两"))
    assert not states_quantity("二十六岁", ())  # nothing asked: nothing stated
    day, pct = asked_units("哪一天？"), asked_units("投票率是多少？")
    assert states_quantity("新华社雅加达５月２１日电", day)
    assert states_quantity("次日，曹操引兵出城", day)  # a day named by a word
    assert states_quantity("元旦那天", day)
    assert not states_quantity("会议在北京举行，历时三年", day)
    assert states_quantity("投票率为５３．３％", pct)
    assert states_quantity("占全省的百分之三十", pct)  # the numeral after 百分之
    assert states_quantity("增长２个百分点", pct)
    assert not states_quantity("投票在全港进行", pct)
    assert states_quantity("总投资１．２亿元", asked_units("总投资是多少？"))
    assert states_quantity("温度为零下１９６摄氏度的液氮", asked_units("液氮的温度是多少？"))
    assert states_quantity("用九十度的水", asked_units("水温是多少？"))
    assert states_quantity("brew at 93°C", asked_units("水温是多少？"))
    assert states_quantity("他们五个动作得了３２６．３４分", asked_units("两人得了多少分？"))


def test_an_english_question_of_chinese_text_asks_the_chinese_units() -> None:
    from retrieval.quantity import english_asked_units

    assert english_asked_units("How old was Zhou Yu when he died?") == ("岁",)
    assert "斤" in english_asked_units("What weapon did he have made, and how heavy was it?")
    assert english_asked_units("In which year was it written?") == ("年",)
    assert english_asked_units("How does byte-pair encoding merge symbols?") == ()
    assert asked_units("How old was Zhou Yu when he died?") == ()  # the refusal stays untyped


def test_a_refusal_says_what_the_question_asks_for() -> None:
    assert describe(asked_units("他活了多少岁？")) == "a number in 岁"
    assert describe(asked_units("是哪一天发射的？")) == "a date"
    assert describe(asked_units("投票率是多少？")) == "a percentage"
    assert describe(asked_units("花了多少钱？")) == "a sum of money"
    assert describe(asked_units("哪一天出发，走了多少天？")).startswith("a date or a number in 年")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("quantity"))


def test_a_question_whose_quantity_no_passage_states_abstains(corpus: Path) -> None:
    # The tea passage is on topic (绿茶, 冷藏) but says no temperature: answered without the check.
    q = "绿茶冷藏的温度是多少度？"
    off = ask(q, settings_for(corpus, answer={"quantity_check": False}))
    assert not off.abstained
    on = ask(q, settings_for(corpus))
    assert on.abstained and on.abstain_reason == "no_support"
    assert "asks for a number in 度" in on.answer
    check = next(t.detail for t in on.trace if t.stage == "abstain_check")
    assert check["asks_units"][0] == "度" and "℃" in check["asks_units"] and check["quantity_stated"] is False
    tea = [p for p in check["passages"] if p["same_script"]]
    assert tea and all(p["quantity"] is False and p["support"] == 0.0 for p in tea)


def test_a_date_question_no_passage_dates_abstains_and_says_so(corpus: Path) -> None:
    # On topic (绿茶, 冰箱) but the tea passage holds no date; without the check it is answered.
    q = "绿茶是在哪一天放进冰箱的？"
    assert not ask(q, settings_for(corpus, answer={"quantity_check": False})).abstained
    on = ask(q, settings_for(corpus))
    assert on.abstained and "The question asks for a date" in on.answer
    check = next(t.detail for t in on.trace if t.stage == "abstain_check")
    assert check["asks_units"] == ["日", "号"] and check["quantity_stated"] is False


def test_a_quantity_stated_in_another_unit_of_its_kind_is_answered(corpus: Path) -> None:
    res = ask("绿茶开封后多少天内要喝完？", settings_for(corpus))  # the passage says 一个月内
    assert not res.abstained, res.answer
    assert "一个月" in res.answer and res.citations
    check = next(t.detail for t in res.trace if t.stage == "abstain_check")
    assert check["quantity_stated"] is True


def test_passages_in_another_script_are_not_said_to_lack_the_quantity(tmp_path: Path) -> None:
    # Only a passage in the question's script is checked for the unit (an English passage says
    # "four to six hours", not 小时); over English text alone nothing was checked, so neither the
    # trace nor a refusal may say that no passage states the number.
    docs = write_docs(tmp_path / "docs", {"sourdough.md": DOCS["sourdough.md"]})
    ingest([docs], load_settings(index_dir=tmp_path / "index", search={"ltr_self_train": False}))
    res = ask("面包发酵需要多少小时？", settings_for(tmp_path / "index"))
    check = next(t.detail for t in res.trace if t.stage == "abstain_check")
    assert "小时" in check["asks_units"]
    assert check["passages"] and not any(p["same_script"] for p in check["passages"])
    assert check["quantity_stated"] is True
    assert "The question asks for" not in res.answer


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        ("How many samples does the full KDD Cup 99 dataset have?", "samples"),
        ("How many malignant and benign cases does the dataset contain?", "malignant and benign cases"),
        ("How much coffee do I need for a 500 ml pot?", "coffee"),
        ("What is the number of classes in iris?", "classes"),
        ("How many people's records make up the diabetes data?", "people's records"),
        ("How does byte-pair encoding merge symbols?", None),
    ],
)
def test_the_words_an_english_question_counts(question: str, phrase: str | None) -> None:
    from retrieval.quantity import counted_phrase

    assert counted_phrase(question) == phrase


def test_a_count_is_a_number_beside_the_counted_word() -> None:
    from retrieval.quantity import count_terms, numbers_in, states_count

    q = "How many samples does the full KDD Cup 99 dataset have?"
    terms, known = count_terms(q), numbers_in(q)
    assert terms == [["sampl"]] and "99" in known
    assert states_count("Samples total         4898431", terms, known)
    assert states_count("It has four thousand samples.", terms, known)  # a number in words
    # a year, a number the question holds itself, a number far from the word: no count
    assert not states_count("Samples were collected in 1998.", terms, known)
    assert not states_count("The KDD Cup 99 samples.", terms, known)
    far = "Samples " + "x" * 50 + " 42"
    assert not states_count(far, terms, known)
    # an English question of Chinese text: its words as the text spells them, or their translations
    blocks = count_terms("How many encoder blocks are stacked?")
    assert states_count("Encoder 经过 6 个 Encoder block", blocks)
    arrows = count_terms("How many arrows did he make?", {"arrow": ["箭"]})
    assert arrows == [["arrow", "箭"]] and states_count("限十日造十万枝箭", arrows)
    # "how many times" counts occurrences: a brew time of three minutes is not one
    times = count_terms("How many times can oolong tea leaves be infused?")
    assert not states_count("The total brew time should be about three minutes.", times)
    assert states_count("好的乌龙茶可以冲泡七次以上", times)


def test_the_number_counts_in_the_sentence_that_says_what_was_asked() -> None:
    """`grade.quantity_cover`: the best coverage of the question's terms by a sentence that
    states a number in the asked unit. A news passage's dateline states a date beside none of
    what was asked; the sentence that answers holds the asked event's words."""
    from retrieval.crosslingual import weighted_units
    from retrieval.grade import quantity_cover

    units = weighted_units({"叶利钦": 2.0, "宣布": 1.0, "辞职": 3.0})
    asked = asked_units("叶利钦是在哪一天宣布辞职的？")
    dateline = "新华社莫斯科１月１９日电。俄罗斯总统叶利钦１９日强调多极世界。"
    assert quantity_cover(units, dateline, asked) == pytest.approx(2.0 / 6.0)
    answer = dateline + "叶利钦三十一日宣布辞职。"
    assert quantity_cover(units, answer, asked) == pytest.approx(1.0)
    assert quantity_cover(units, "叶利钦宣布辞职。", asked) == -1.0  # no date at all


def test_answer_quantity_near_holds_the_date_to_the_sentence_that_names_the_event(tmp_path: Path) -> None:
    """A dateline dates the report, not the asked event: with answer.quantity_near set, a
    passage whose only date sits in a sentence that names nothing the question asks supports
    nothing; off (0, the default) it passes the check as before."""
    docs = write_docs(tmp_path / "docs", {"news.md": (
        "新华社北京１月１９日电 今天上午，北京市总工会举行迎春茶话会。\n\n"
        "据悉，公交售票员李素丽是全国劳模，她出席了茶话会并讲话。\n")})
    ingest([docs], load_settings(index_dir=tmp_path / "index", search={"ltr_self_train": False}))
    q = "李素丽是哪一天当选全国劳模的？"

    def passage(near: float) -> dict:  # type: ignore[type-arg]
        res = ask(q, settings_for(tmp_path / "index", answer={"quantity_near": near}))
        check = next(t.detail for t in res.trace if t.stage == "abstain_check")
        return next(p for p in check["passages"] if p["same_script"])

    off = passage(0.0)
    assert off["quantity"] is True and off["quantity_cover"] < 0.3
    on = passage(0.3)
    assert on["quantity"] is False and on["support"] == 0.0
