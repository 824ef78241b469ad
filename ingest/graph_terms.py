"""The knowledge graph without an LLM (`ingest.graph_extraction = cooccurrence`, and `auto` when
the model is too small to read entities reliably): entities are English names and technical
terms (capitalised runs "Kessler Institute", mixed-case or digit terms "LoRA", "GPT-4") and
Chinese nouns (jieba's part-of-speech tags n / nr / ns / nt / nz, consecutive nouns also joined
into one compound: 临江 + 师范学院), and two entities are related when one sentence holds both.

Cheap and real, not clever: common nouns are many, and generic ones (问题, 方法) are filtered
here by a stop list and at query time by how many chunks mention them (`search.graph_max_df`),
so they neither match a question nor connect everything to everything."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from core.graph import ChunkFacts, EntityFact, RelationFact, norm_key
from core.lang import CJK_RANGES
from core.text import split_sentences

log = logging.getLogger(__name__)

VERSION = "cooc-2"  # part of each chunk's method tag: a new version re-reads every chunk
RELATION = "co-occurs"
MAX_PER_SENTENCE = 12  # entities of one sentence related pairwise (a list of 40 names is not 780 facts)
MAX_COMPOUND = 8  # characters of a joined Chinese compound

_EN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+#'][A-Za-z0-9]+)*[+#]*")
_CJK_RUN = re.compile(f"[{CJK_RANGES}]")
_CONNECT = frozenset({"of", "de", "van", "von", "der", "la", "&"})
_EN_STOP = frozenset(
    """a about after again all also although an and any are as at be because been before being both but by
    can could did do does during each either even every few first for from had has have he her here his how
    however i if in into is it its just last later least many may me more most much my neither new next no
    nor not now of on once one only or other our over per same several she should since so some such than
    that the their them then there these they this those though through thus to today too two under unlike
    until up upon very was we were what when where whether which while who whom whose why will with within
    without would yet you your figure table section chapter note notes example see step part page fig
    january february march april may june july august september october november december monday tuesday
    wednesday thursday friday saturday sunday earlier modern popular past""".split()
)
_ZH_NOUN = frozenset({"n", "nr", "ns", "nt", "nz", "nrt", "nrfg"})
_ZH_TYPE = {"nr": "person", "nrt": "person", "nrfg": "person", "ns": "place", "nt": "organisation",
            "nz": "term", "n": "noun"}
_ZH_STOP = frozenset(
    """问题 方法 时候 方面 情况 部分 内容 东西 时间 过程 结果 原因 作用 方式 特点 能力 工作 事情 目的
    意义 关系 地方 人们 大家 自己 我们 他们 时期 阶段 方向 形式 条件 因素 领域 环境 水平 程度 基础
    系统 数据 信息 模型 技术 效果 场景 任务 功能 文章 本文 笔记 例子 比如 总结 注意 概念 定义 一种
    一个 其中 之间 以及""".split()
)


def _en_like(tok: str) -> bool:
    """A token that names something: capitalised, or a mixed-case or digit term ("LoRA", "GPT-4")."""
    return tok[0].isupper() or any(c.isupper() for c in tok[1:]) or any(c.isdigit() for c in tok)


def _english(sentence: str) -> list[tuple[str, str]]:
    """(name, type) of the capitalised runs and technical terms of one sentence."""
    out: list[tuple[str, str]] = []
    run: list[str] = []
    last_end = -1

    def flush() -> None:
        while run and (run[-1].lower() in _EN_STOP or run[-1].lower() in _CONNECT):
            run.pop()
        while run and (run[0].lower() in _EN_STOP or run[0].lower() in _CONNECT):
            run.pop(0)
        if run and not (len(run) == 1 and len(run[0]) < 2):
            kind = "name" if len(run) > 1 else ("term" if not run[0][1:].islower() else "name")
            out.append((" ".join(run), kind))
        run.clear()

    for m in _EN.finditer(sentence):
        tok = m.group(0).removesuffix("'s")  # "the Kessler Institute's first building"
        joined = last_end >= 0 and sentence[last_end:m.start()] == " "
        if _en_like(tok) or (run and joined and tok.lower() in _CONNECT):
            if run and not joined:
                flush()
            run.append(tok)
        else:
            flush()
        last_end = m.end()
    flush()
    return out


@functools.lru_cache(maxsize=1)
def _posseg() -> Any:
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg


def _chinese(sentence: str) -> list[tuple[str, str]]:
    """(noun, type) of one sentence: jieba's nouns of two characters or more, a one-character
    surname joined to the given name jieba cut off (周 + 明远), and runs of consecutive nouns
    joined (临江 + 师范学院 = 临江师范学院)."""
    if not _CJK_RUN.search(sentence):
        return []
    words = [(w.word, w.flag) for w in _posseg().cut(sentence)]
    out: list[tuple[str, str]] = []
    compound: list[str] = []

    def close() -> None:
        text = "".join(compound)
        if len(compound) > 1 and len(text) <= MAX_COMPOUND and text not in _ZH_STOP:
            out.append((text, "term"))
        compound.clear()

    i = 0
    while i < len(words):
        w, flag = words[i]
        if flag.startswith("nr") and len(w) == 1 and i + 1 < len(words) and 1 <= len(words[i + 1][0]) <= 2 \
                and _CJK_RUN.match(words[i + 1][0]) and words[i + 1][1] not in ("uj", "p", "v", "d", "c"):
            w, flag = w + words[i + 1][0], "nr"  # a surname and the given name jieba cut off
            i += 1
        i += 1
        if flag in _ZH_NOUN and _CJK_RUN.match(w):
            compound.append(w)
            if len(w) >= 2 and w not in _ZH_STOP:
                out.append((w, _ZH_TYPE.get(flag, "noun")))
        else:
            close()
    close()
    return out


def extract(text: str, title: str = "") -> ChunkFacts:
    """The entities of a chunk, related ("co-occurs") when one sentence or two neighbouring ones
    hold both ("It was written by Elena Varga" follows the sentence that names the novel), and
    the section title's entities related to every entity of the chunk (its subject)."""
    facts = ChunkFacts()
    seen: dict[str, EntityFact] = {}

    def keys_of(sentence: str) -> list[str]:
        keys: list[str] = []
        for name, kind in _english(sentence) + _chinese(sentence):
            key = norm_key(name)
            if len(key) < 2:
                continue
            if key not in seen:
                seen[key] = EntityFact(name, kind)
                facts.entities.append(seen[key])
            if key not in keys:
                keys.append(key)
        return keys[:MAX_PER_SENTENCE]

    pairs: dict[tuple[str, str], None] = {}
    head = keys_of(title) if title.strip() else []
    pairs.update(((x, y) if x < y else (y, x), None) for i, x in enumerate(head) for y in head[i + 1:])
    prev: list[str] = []
    for a, b in split_sentences(text):
        cur = keys_of(text[a:b])
        both = list(dict.fromkeys(prev + cur))
        for i, x in enumerate(both):
            for y in both[i + 1:]:
                pairs.setdefault((x, y) if x < y else (y, x))
        pairs.update(((h, k) if h < k else (k, h), None) for h in head for k in cur if h != k)
        prev = cur
    facts.relations = [RelationFact(seen[x].name, RELATION, seen[y].name) for x, y in pairs]
    return facts
