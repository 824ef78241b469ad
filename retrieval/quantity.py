"""What a question asks a number of, and whether a passage states one (Chinese units below;
English "How many X" at the end).

A Chinese question that asks for a quantity names its unit: 多少岁, 几层, 多少斤, 哪一年, 多高
(a height: 尺, 丈, 米 ...). A passage can answer it only if it states a number in that unit
(二十六岁, 三层, 八十二斤, 建安十三年, 高九尺). This is the unit check of classic question
answering's answer typing, and it is what the cheap support features miss: an on-topic question
the corpus does not answer shares its names and words with passages about them ("赤兔马活了多少
岁？" and the passages on 赤兔马), but no passage says how many 岁. A question with no unit
(多少粮食, 几个关隘: the answer may count in 处 or 员) is not checked, nor one that asks which
ones (哪几位领导: names answer it). The units are those of the novel and of modern written
Chinese (几枚金牌, 多少票, 多少美元, 多少公顷), grouped in families whose members answer for one
another (多少钱 in any currency, 几枚金牌 by a tally such as 夺得８金２银).

Three kinds of question name no measure word but still ask for one kind of figure: a date
(哪一天, 几月几日: answered by １３日, 次日, 元旦), a percentage (投票率是多少, 百分之几:
３５％, 百分之三十, 八成), and a figure asked by what it measures (总预算是多少, 多少学费:
money in any currency; 温度是多少: 度 or ℃; 年龄: 岁; 身高, 距离: a length).

English questions are not typed for the refusal: technical English text holds numbers in
nearly every passage, and "How many X" names no unit the answer must use. Of Chinese text,
though, an English question that asks an age, a year, a height, a weight or a number of days
asks for the units the Chinese states it in (`english_asked_units`: "How old was Zhou Yu when
he died?" is answered by 寿三十六岁), and the composer prefers the sentence that states one.
An English "How many X" of any text is typed for the composer only (`count_terms`,
`states_count`): the sentence with a number beside X ("Samples total 4898431").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from core.keyword import tokenize
from core.script import fold

# Numerals a count or a measure starts with: digits (half- and full-width), Chinese numerals,
# and the words that stand for a number (数十, 两, 半, 廿).
NUMERALS = "0-9０-９〇零一二三四五六七八九十百千万亿两廿卅卌半数"
# Between the number and the unit: 余 / 多 / 来 (三千余人, 十多岁, 二十来岁), then 大 / 小
# (六大类, 两小时).
_APPROX = "余多来"
_SIZE = "大小"

# Measure words and units a question can ask a number of (多少X / 几X). 个 is the general
# classifier: the answer uses a specific one ("几个关隘" - "关隘五处"), so it asks nothing
# checkable.
_MEASURES = (
    "岁 年 月 日 天 次 回 遍 层 斤 两 尺 丈 寸 里 米 吨 克 度 元 块 户 口 人 名 位 员 只 匹 头 条 面 "
    "枝 支 张 把 座 间 卷 本 篇 部 章 句 字 种 类 件 封 首 辆 艘 颗 粒 处 家 所 道 等 级 倍 秒 周 "
    "斗 石 升 亩 顷 钱 世 代 矢 万 千 百 亿 分钟 小时 公里 公斤 千克 毫米 厘米 星期 季 仞 岁数 "
    # modern written Chinese (news): medals, votes, items, sessions, matches, machines, currencies
    "枚 票 项 届 场 台 架 套 公顷 平方米 平方公里 千瓦 美元 英镑 日元 港元 马克 法郎 卢布 欧元 "
    # a score (得了多少分; 分钟 is matched first, the longer unit) and a sea distance
    "分 海里"
).split()
# A quantity asked in one unit is often answered in another of its kind ("多少天" - "一个月内";
# "多重" - "八十二斤"): a unit of one of these families accepts any unit of the family.
_LENGTH = ("尺", "丈", "寸", "里", "米", "公里", "厘米", "毫米", "仞", "步", "海里")
_TIME = ("年", "月", "日", "天", "时辰", "小时", "分钟", "秒", "载", "旬", "周", "星期", "个月", "季")
_WEIGHT = ("斤", "两", "吨", "克", "公斤", "千克", "钧")
# 多少钱 is answered in any currency ("８·５７亿美元"): 美元 does not hold 元 after a numeral
_MONEY = ("钱", "元", "块", "两", "文", "贯", "美元", "英镑", "日元", "港元", "马克", "法郎", "卢布", "欧元")
_PEOPLE = ("人", "名", "位", "员", "口")
_AREA = ("亩", "顷", "公顷", "平方米", "平方公里")
_TEMPERATURE = ("度", "摄氏度", "华氏度", "℃", "°C", "°")
# Medals are counted in 枚 or 块, and sports news tallies them bare: 夺得８金２银.
_MEDALS = ("枚", "块", "金", "银", "铜")
_FAMILIES = (_LENGTH, _TIME, _WEIGHT, _MONEY, _PEOPLE, _AREA, _MEDALS, _TEMPERATURE)
# A date: a numbered day (１３日, 初三日, 五号) or a day named by a word (stated bare, _BARE).
DAY = ("日", "号")
# A percentage: ３５％, 百分之三十 (the numeral after it: _BARE), ２个百分点, 八成.
PERCENT = ("%", "％", "百分之", "个百分点", "成")
# Units some text states with no numeral before them: the first year of an era (中平元年), a day
# named relative to the report or by its festival (次日, 元旦), a percentage read out (百分之三十).
_DAY_WORDS = (
    "今天 昨天 前天 明天 后天 当天 今日 昨日 明日 当日 次日 翌日 是日 即日 同日 同一天 "
    "元旦 除夕 春节 元宵 清明 端午 中秋 重阳 冬至 七夕 国庆 "
    "星期[一二三四五六日天] 周[一二三四五六日] 礼拜[一二三四五六日天]"
).split()
_BARE: dict[str, str] = {
    "年": "元年",
    "号": "|".join(_DAY_WORDS),
    "百分之": f"百分之[{NUMERALS}]",
}
# 多高 / 多长 / ...: the quantity an adjective asks for, as the units that measure it.
_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "高": _LENGTH + ("层",),
    "长": _LENGTH + _TIME,
    "宽": _LENGTH,
    "深": _LENGTH,
    "远": _LENGTH,
    "重": _WEIGHT,
    "久": _TIME,
}
_MEASURE_ALT = "|".join(sorted(map(re.escape, _MEASURES), key=len, reverse=True))
# 多少X / 几X / 几个X (X a measure word); 多高 / 多重 ...; 哪一年 / 哪年 / 何年
# 哪几位 / 哪几家 ask which ones, not how many ("有哪几位领导出席？" is answered by names).
_ASKS_MEASURE = re.compile(rf"(?:多少|(?<!哪)几)(?:个)?({_MEASURE_ALT})")
# 有多高？ / 多重 / 多长时间 / 多久: the question's end (or 时间) after it, so that 许多长枪
# and 多重身份 ask nothing.
_ASKS_ADJECTIVE = re.compile(rf"多([{''.join(_ADJECTIVES)}])(?=时间|[？?。，,！!呢啊]|$)|多(久)")
_MEDAL = re.compile(r"[金银铜奖]牌")
_ENDS = re.compile(r"[？?，,。！!呢啊吧]|$")
_ASKS_YEAR = re.compile(r"哪一年|哪年|何年|哪一岁")
_ASKS_DAY = re.compile(r"哪一天|哪天|哪一日|哪日|何日|几月几[日号]|几号|具体日期|什么日子|哪个日子")
# A rate or share asked as 多少 (投票率是多少, 降幅为多少); 比例 is left out: a ratio is
# answered as １．９∶１ as often as in percent.
_ASKS_PERCENT = re.compile(
    r"(?:率|比重|百分比|占比|增幅|降幅|涨幅|跌幅)(?:是|为|有|达到|达|约为|大约是|大概是)?多少"
    r"|百分之几|多少(?:个百分点|%|％)|几成"
)
# A figure named by what it measures and asked as 多少 (总预算是多少, 多少经费, 温度是多少,
# 得了多少分 has its unit): the unit family that states it. When a measure word follows
# (投资多少年), _ASKS_MEASURE has it. 比分 is left out (３∶１), and so are nouns a bare number
# can answer (人口１２０万).
_NOUN_FAMILIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (tuple("奖金 学费 预算 造价 费用 价格 票价 成本 投资 工资 收入 售价 资金 经费 罚款 赔款 "
           "赔偿金 金额 花费 开支 开销 年薪 月薪 薪水 租金 房租 捐款 贷款 税款 营业额 销售额 "
           "利润 总额 报酬".split()), _MONEY),
    (("温度", "气温", "体温", "水温"), _TEMPERATURE),
    (("得分", "总分", "分数"), ("分",)),
    (("年龄", "年纪"), ("岁",)),
    (("身高", "高度", "海拔", "长度", "全长", "距离", "深度", "宽度", "路程", "里程"), _LENGTH),
    (("面积", "占地面积"), _AREA),
    (("重量", "体重"), _WEIGHT),
)
_COPULA = "(?:是|为|有|约|大约|大概|达|共|一共|总共|要|需要|需|应该|应当|应)*"
_ASKS_NOUN = [
    (re.compile(rf"(?:{'|'.join(nouns)}){_COPULA}多少(?!{_MEASURE_ALT})|多少(?:{'|'.join(nouns)})"), family)
    for nouns, family in _NOUN_FAMILIES
]


def asked_units(question: str) -> tuple[str, ...]:
    """The units a Chinese question asks a number of (any one of them answers it); () when it
    asks none: no quantity, the general classifier 个, or an English question."""
    q = fold(question)
    units: list[str] = []
    for m in _ASKS_MEASURE.finditer(q):
        u = "岁" if m.group(1) == "岁数" else m.group(1)
        if u == "块" and _MEDAL.match(q, m.end()):  # 多少块金牌: medals, not money
            units.extend(_MEDALS)
            continue
        if u == "分" and not _ENDS.match(q, m.end()):  # 得了多少分？ asks a score; 几分把握 does not
            continue
        units.extend(next((f for f in _FAMILIES if u in f), (u,)))
    for m in _ASKS_ADJECTIVE.finditer(q):
        units.extend(_ADJECTIVES[next(g for g in m.groups() if g)])
    if _ASKS_YEAR.search(q):
        units.append("年")
    if _ASKS_DAY.search(q):
        units.extend(DAY)
    if _ASKS_PERCENT.search(q):
        units.extend(PERCENT)
    for pattern, family in _ASKS_NOUN:
        if pattern.search(q):
            units.extend(family)
    return tuple(dict.fromkeys(units))


# English questions of Chinese text: the asking words, and the Chinese units that answer them.
_ENGLISH_ASKS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"\bhow old\b|\bwhat age\b|\bhow many years old\b", re.I), ("岁",)),  # "at what age" too
    (re.compile(r"\b(?:what|which) year\b", re.I), ("年",)),
    (re.compile(r"\bhow (?:tall|high|deep|wide|far)\b", re.I), _LENGTH),
    (re.compile(r"\bhow heavy\b|\bhow much did (?:it|\w+) weigh\b|\bweigh(?:s|ed)? how much\b", re.I),
     _WEIGHT),
    (re.compile(r"\bhow many (?:days|months|years)\b", re.I), _TIME),
)


def english_asked_units(question: str) -> tuple[str, ...]:
    """The Chinese units an English question asks a number in (_ENGLISH_ASKS); () for any other
    question."""
    units: list[str] = []
    for pattern, family in _ENGLISH_ASKS:
        if pattern.search(question):
            units.extend(family)
    return tuple(dict.fromkeys(units))


def describe(units: tuple[str, ...]) -> str:
    """What the units ask for, for a refusal: "a date", "a percentage", "a sum of money", "a
    number in 岁", or several of them joined by "or"."""
    parts = []
    if "号" in units:
        parts.append("a date")
    if "百分之" in units:
        parts.append("a percentage")
    money = "美元" in units  # the whole family is asked only for a sum of money
    if money:
        parts.append("a sum of money")
    rest = [u for u in units if u not in PERCENT and u != "号" and not (money and u in _MONEY)]
    if "号" in units and rest == ["日"]:  # the date's own numbered day, not a count of days
        rest = []
    if rest:
        parts.append("a number in " + " / ".join(rest))
    return " or ".join(parts)


@functools.lru_cache(maxsize=64)
def _pattern(units: tuple[str, ...]) -> re.Pattern[str]:
    """Built once per set of units: the composer tests every candidate sentence against it."""
    alt = "|".join(sorted(map(re.escape, units), key=len, reverse=True))
    bare = "".join(f"|{_BARE[u]}" for u in units if u in _BARE)
    return re.compile(rf"[{NUMERALS}]\s?[{_APPROX}]?[{_SIZE}]?(?:{alt}){bare}")


def states_quantity(text: str, units: tuple[str, ...]) -> bool:
    """Whether the text states a number in one of `units` (二十六岁, 三千余人, 九尺)."""
    return bool(units) and _pattern(units).search(fold(text)) is not None


# English "how many X" / "how much X" / "the number of X": what is counted, and whether a sentence
# states a count of it. Technical English holds numbers in nearly every passage (a year, a
# version, "Example 10.2"), so a sentence qualifies only with the counted word beside the number
# ("Samples total 4898431", "212 malignant, 357 benign cases", "由6个Encoder block组成").
_HOW_MANY = re.compile(
    r"\b(?:how\s+(?:many|much)|(?:the\s+)?(?:total\s+)?number\s+of)\s+(?P<what>[^?,.;:]{1,60})", re.I
)
# Where the counted phrase stops: the verb or preposition after the noun ("samples | does the
# dataset have", "classifiers | does ... fit", "people's records | make up").
_PHRASE_END = re.compile(
    r"\s+(?:does|do|did|is|are|was|were|can|could|will|would|should|has|have|had|must|might|may|"
    r"make|makes|made|go|goes|went|in|of|for|to|on|at|by|from|with|per|there|that|which|"
    r"when|if|get|gets|got|produced|used|contain|contains)\b.*$",
    re.I,
)
_TIMES = ("times", "次", "遍", "回")  # "How many times ...": the counter, in English and Chinese
COUNT_WINDOW = 40  # characters between the number and the counted word, either side
_ARABIC = r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![A-Za-z0-9_])"
# Chinese numerals before a classifier (六个, 十万枝): a bare 一 or 十 is too often a word's part
_CN_COUNT = r"[〇零一二三四五六七八九十百千万亿两]+(?:个|位|名|种|层|次|条|本|枚|支|枝|只|员|处|部|项|类|块)"
_WORDS = (
    r"\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundreds?|thousands?|millions?|billions?|dozens?)\b"
)
_NUMBER = re.compile(rf"{_ARABIC}|{_CN_COUNT}|{_WORDS}", re.I)
_YEAR = re.compile(r"^(?:1[5-9]|20)\d\d$")


def counted_phrase(question: str) -> str | None:
    """The words an English question counts ("How many samples does ... have?" -> "samples",
    "How much coffee do I need ...?" -> "coffee"); None when it asks no count."""
    m = _HOW_MANY.search(question)
    if not m:
        return None
    what = _PHRASE_END.sub("", " " + m.group("what").strip()).strip()
    return what or None


def count_terms(question: str, groups: Mapping[str, Sequence[str]] | None = None) -> list[list[str]]:
    """Per word an English question counts, the forms that stand for it in a text: the word
    (as `tokenize` stems it; a prefix of its inflections) and the Chinese words the question's
    keyword query added for it (`groups`, retrieval/crosslingual.py: "arrows" - 箭)."""
    phrase = counted_phrase(question)
    if not phrase:
        return []
    if phrase.casefold() == "times":  # how often, not "time": "three minutes" does not answer it
        return [list(_TIMES)]
    return [[t, *(groups or {}).get(t, ())] for t in tokenize(phrase) if len(t) >= 3]


def numbers_in(text: str) -> frozenset[str]:
    """The numbers a text states (`_NUMBER`), as `states_count` reads them."""
    return frozenset(m.group(0) for m in _NUMBER.finditer(fold(text).casefold()))


def states_count(text: str, terms: list[list[str]], exclude: frozenset[str] = frozenset()) -> bool:
    """Whether `text` states a number within COUNT_WINDOW characters of one of the counted
    words: `terms` lists, per counted word, the forms that stand for it (the word, its
    translations); a number the question itself holds (`exclude`: "for a 500 ml pot") or a year
    does not count."""
    low = fold(text).casefold()
    spots = [
        m.start()
        for alts in terms
        for form in alts
        if form
        for m in re.finditer(re.escape(form.casefold()), low)
    ]
    if not spots:
        return False
    for m in _NUMBER.finditer(low):
        num = m.group(0)
        if num in exclude or _YEAR.match(num):
            continue
        if any(-COUNT_WINDOW <= s - m.start() <= COUNT_WINDOW for s in spots):
            return True
    return False
