"""The one tokeniser for keyword search and every term-level signal (BM25, coverage, the
extractive composer, the support check, dictionary keys): English lower-cased, stop words
dropped, Snowball-stemmed; CJK runs segmented by jieba in search mode (`cut`, run by jieba-rs);
mixed within one text.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import unicodedata
from collections import OrderedDict
from typing import Any

from core.lang import CJK_RANGES
from core.script import fold

# /2: a Latin or digit run no longer swallows the CJK text that follows it
# ("Transformer架构中" was one token); /3: the keyword index adds CJK character bigrams
# (`index_terms`); /4: an acronym's plural is the acronym ("LLMs" -> llm), and the letters after
# an apostrophe ("LangChain's", "don't") are no token; /5: Traditional characters are folded to
# Simplified (core/script.py) before segmentation and bigrams, and a run of other letters and
# digits is read in NFKC form (full-width ＬＬＭ is llm). An index written by an older version is
# rebuilt from the document store.
TOKENIZER_VERSION = "en-snowball+jieba-search+cjk-bigrams/5"
# Marks the keyword index's CJK character bigrams ("~关羽"), a field apart from jieba's words
# ("关羽"): no tokenizer term holds one, and BM25 normalises each field by its own length.
BIGRAM_MARK = "~"

# A CJK run, or a run of letters and digits that are not CJK: `[^\W_]` alone also matches
# CJK characters, so "2022年北京" would be one token.
_TOKEN = re.compile(rf"[{CJK_RANGES}]+|[^\W_{CJK_RANGES}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"^[{CJK_RANGES}]+$")
_CJK_ANY = re.compile(rf"[{CJK_RANGES}]+")
# An acronym (two or more capitals or digits, at least one capital, ending in one) with a
# plural "s": "LLMs", "GPUs", "miRNAs", "PhDs", "A100s". Snowball leaves most of them alone (a
# word with no vowel, or with one right before the "s", keeps it), so "LLMs" in a question
# never met "LLM" in a passage.
_ACRONYM_PLURAL = re.compile(r"^[A-Za-z0-9]*[A-Z][A-Za-z0-9]*[A-Z0-9]s$")
_APOSTROPHES = "'\u2019"
# What follows an apostrophe: a possessive or a contraction's tail, not a word of its own.
_CLITICS = frozenset(("s", "t", "d", "m", "ll", "re", "ve"))

_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves""".split()
)
_ZH_STOP = frozenset(
    "的 了 是 在 和 与 及 或 也 就 都 而 但 这 那 有 个 之 其 为 以 于 上 下 中 把 被 让 等 吗 呢 啊 吧"
    .split()
)


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


# jieba's own split of a text before its dictionary sees it (jieba/__init__.py: re_han_default,
# re_skip_default): blocks of Han characters (with the Latin letters, digits and symbols it
# keeps inside words) are segmented; anything else is whitespace, kept whole, or single
# characters. Segmentation itself runs in jieba-rs (rjieba), the same algorithm, dictionary and
# HMM in Rust: the same words for every CJK run of the labelled sets, the shared notes and the
# sample (97,754 runs), 20x faster (zh-prose: 3.8 s -> 0.2 s), and no 1 s dictionary load at
# each process's first Chinese text. jieba-rs groups characters outside jieba's Han range
# (Extension A, U+9FD6-U+9FFF) into words where jieba splits them, so each block is cut apart.
_JIEBA_HAN = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)")
_JIEBA_SKIP = re.compile(r"(\r\n|\s)")


@functools.lru_cache(maxsize=1)
def _rjieba() -> Any:
    import rjieba

    return rjieba


def cut(text: str, search: bool = False) -> list[str]:
    """jieba's words of `text` (`search`: search mode, each long word's dictionary sub-words
    first, as `jieba.cut_for_search`), with its HMM for words the dictionary lacks. The same as
    jieba's on CJK text; a hyphenated Latin word inside a block ("Pour-over") stays one word,
    where jieba cuts it at the hyphen (`tokenize` segments CJK runs only)."""
    rj = _rjieba()
    seg = rj.cut_for_search if search else rj.cut
    out: list[str] = []
    # a split by a pattern with one group: the matches at odd places, what lies between at even
    for i, blk in enumerate(_JIEBA_HAN.split(text)):
        if not blk:
            continue
        if i % 2:
            out.extend(seg(blk, hmm=True))
        else:
            for j, x in enumerate(_JIEBA_SKIP.split(blk)):
                if j % 2:
                    out.append(x)
                else:
                    out.extend(x)
    return out


# Question words that name what is asked, not what it is about: a passage that answers never
# needs to contain them (English ones not already stop words of core.keyword.tokenize).
QUESTION_WORDS = frozenset(
    """什么 哪 哪里 哪儿 哪个 哪些 哪一年 哪年 哪位 多少 多久 多长 几 几个 怎么 怎样 怎么样 为什么
    如何 谁 是否 吗 呢 请问 mani much long often kind type
    区别 差异 不同 differ compar comparison versus vs""".split()
)  # a comparison ("What is the difference between Ridge and Lasso?") is answered by what each does


_QUESTION_WORDS_LONGEST_FIRST = sorted(QUESTION_WORDS, key=len, reverse=True)


def strip_question_words(question: str) -> str:
    """The question with its question words blanked out (before taking its character bigrams:
    "是什么" would ask for bigrams no answer holds)."""
    for w in _QUESTION_WORDS_LONGEST_FIRST:
        question = question.replace(w, " ")
    return question


def cjk_grams(text: str) -> list[str]:
    """Overlapping character bigrams of each CJK run, in order, repeats kept ("大模型" -> 大模,
    模型); a run of one character is that character."""
    out: list[str] = []
    for run in map(fold, _CJK_ANY.findall(text)):
        out.extend(run[i : i + 2] for i in range(len(run) - 1)) if len(run) > 1 else out.append(run)
    return out


def index_terms(text: str) -> list[str]:
    """What the keyword index holds of a text and scores a query by: `tokenize`'s words, then
    the CJK character bigrams marked with BIGRAM_MARK. jieba cuts a question and the text that
    answers it differently (older prose, names, technical terms: 的卢 / 的 卢, 泪槽); the bigrams
    match either way, the classic complement to word segmentation in Chinese retrieval. Plain
    BM25 over the zh-prose passages, dev split: nDCG@10 0.654 with words alone, 0.727 with
    both fields (notes-mixed dev 0.666 / 0.664: its questions are mostly English)."""
    return list(tokens_of(text)) + _marked_grams(text)


def _marked_grams(text: str) -> list[str]:
    return [BIGRAM_MARK + g for g in cjk_grams(text)]


def query_terms(question: str) -> list[str]:
    """`index_terms` of a query, its question words left out of the bigrams ("是什么" would
    match every passage that says 是什么 about anything: notes-mixed dev, "NPL 是什么的缩写?")."""
    return tokenize(question) + _marked_grams(strip_question_words(question))


def is_bigram(term: str) -> bool:
    return term.startswith(BIGRAM_MARK)


def tokenize(text: str) -> list[str]:
    """Tokens for BM25: stemmed English words without stop words, segmented CJK words."""
    out: list[str] = []
    latin: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if _CJK_RUN.match(tok):
            for w in cut(fold(tok), search=True):
                if w.strip() and w not in _ZH_STOP:
                    out.append(w)
        else:
            if not tok.isascii():
                # full-width letters and digits (ＬＬＭ, ＧＰＴ４, common in Chinese text typed in
                # full-width mode), ligatures and the like read as their plain forms
                tok = unicodedata.normalize("NFKC", tok)
            if tok[-1] == "s" and _ACRONYM_PLURAL.match(tok):
                tok = tok[:-1]
            elif tok in _CLITICS and m.start() > 0 and text[m.start() - 1] in _APOSTROPHES:
                continue
            low = tok.lower()
            if low not in _STOP:
                latin.append(low)
                out.append(low)
    if latin:
        stems = iter(_stemmer().stemWords(latin))
        out = [next(stems) if not _CJK_RUN.match(t) else t for t in out]
    return out


# The tokens of recently tokenised texts, oldest first, at most MEMO_MAX_TOKENS in all: `rag
# ingest` tokenises every new chunk for the keyword index and then trains the ranker, whose
# features tokenise the candidates again (the same chunks); jieba over Chinese text is the
# costly part (zh-prose, 1,134 chunks: 2.2 s of the 4.6 s training).
MEMO_MAX_TOKENS = 3_000_000
# An OrderedDict: a dict's first key after many deletions at the front is found by scanning the
# holes they leave (0.64 s of evictions per 100k texts, against 0.03 s)
_memo: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_memo_tokens = 0
_memo_lock = threading.Lock()


def tokens_of(text: str) -> tuple[str, ...]:
    """`tokenize(text)`, remembered (the tokens interned, so that a remembered text costs a
    pointer per token, its strings shared with every other text's)."""
    global _memo_tokens
    got = _memo.get(text)
    if got is not None:
        return got
    got = tuple(sys.intern(t) for t in tokenize(text))
    with _memo_lock:
        if text not in _memo:
            _memo[text] = got
            _memo_tokens += len(got) + 1
            while _memo_tokens > MEMO_MAX_TOKENS and _memo:
                _memo_tokens -= len(_memo.popitem(last=False)[1]) + 1
    return got
