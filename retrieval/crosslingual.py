"""Questions in one script over a corpus in another: English questions of Chinese notes.

MiniLM reads English only, and BM25 matches only the words a question shares with the text,
so an English question finds a Chinese passage only through the English terms it happens to
contain. Two remedies, both chosen automatically when the scripts differ (`mismatch`):
- keyword glosses (here, no LLM): the question's English terms that the corpus itself glosses
  in Chinese ("近似最近邻（ANN）", core/lexicon.py) add those Chinese terms to its BM25 query;
- dictionary translations (here, no LLM): a Chinese word of the corpus that CC-CEDICT gives
  for each English word or two-word phrase of the question, the sense the question's other
  words keep company with (`senses`, core/dictionary.py), joins the BM25 query too;
- translation of the question into the corpus's language (retrieval/translate.py, strategy
  `translate`), with the LLM when it is capable of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core import dictionary, pinyin
from core.index import Index
from core.lang import cjk_share
from core.settings import Settings
from core.tokens import strip_question_words, tokenize
from core.types import TraceEntry


@dataclass(frozen=True)
class Mismatch:
    question_lang: str  # "en" | "zh"
    corpus_lang: str
    question_cjk: float
    corpus_cjk: float
    # the corpus is neither case of `mismatch`: it holds both scripts, below the share at which
    # it counts as written in the other one
    mixed: bool = False


def mismatch(question: str, index: Index, settings: Settings) -> Mismatch | None:
    """The question's and the corpus's languages when their scripts differ, else None. The
    corpus's CJK share is measured when its keyword index is built."""
    corpus = index.keyword.lexicon().cjk_share
    q = cjk_share(question)
    s = settings.search
    if q < s.crosslingual_question_cjk and corpus >= s.crosslingual_corpus_cjk:
        return Mismatch("en", "zh", round(q, 3), corpus)
    if q >= 1 - s.crosslingual_question_cjk and corpus < s.crosslingual_question_cjk:
        return Mismatch("zh", "en", round(q, 3), corpus)
    return None


def gloss_target(question: str, index: Index, settings: Settings) -> Mismatch | None:
    """An English question over a corpus that holds Chinese text: a Chinese corpus (`mismatch`),
    or a mixed one, English documents beside Chinese ones, whose CJK share reaches
    search.gloss_corpus_cjk. In a mixed folder the Chinese documents can only be found through
    the question's translated words (MiniLM cannot read them, BM25 needs shared words): "What
    water temperature for green tea?" over the sample data (English coffee notes and a Chinese
    tea text, 12.5% CJK) found only coffee passages. The corpus-level `mismatch` (which picks
    the LLM translation strategy and the abstain rule) is left as it is: most of such a corpus
    is in the question's language."""
    mm = mismatch(question, index, settings)
    if mm is not None:
        return mm if mm.question_lang == "en" else None
    corpus = index.keyword.lexicon().cjk_share
    q = cjk_share(question)
    if q < settings.search.crosslingual_question_cjk and corpus >= settings.search.gloss_corpus_cjk:
        return Mismatch("en", "zh", round(q, 3), corpus, mixed=True)
    return None


@dataclass(frozen=True)
class Glossed:
    """A question's BM25 query with words of the other script added, and which of its terms
    each came for (an English question: a tokenised word or two-word phrase -> its Chinese
    glosses and translations; a Chinese one: a Chinese word -> its English translations).
    `bigrams`: whether BM25 scores the query's CJK character bigrams (not for the Chinese words
    added to an English question: they are whole words)."""

    text: str
    groups: dict[str, list[str]]
    bigrams: bool = False


def gloss_query(question: str, index: Index, settings: Settings, trace: list[TraceEntry]) -> str | None:
    """The question's BM25 query with Chinese words for its English terms appended (`glossed`);
    None when the scripts match or nothing was added."""
    g = glossed(question, index, settings, trace)
    return g.text if g is not None else None


def glossed(question: str, index: Index, settings: Settings, trace: list[TraceEntry]) -> Glossed | None:
    """The question's BM25 query with Chinese words for its English terms appended: the
    corpus's own glosses, and the dictionary translations the corpus uses (core/dictionary.py);
    None when the corpus holds no Chinese to gloss for (`gloss_target`) or nothing was added.
    One `glosses` trace entry says which."""
    s = settings.search
    if not s.glosses and s.translations_per_term <= 0:
        return None
    mm = gloss_target(question, index, settings)
    if mm is None:
        return to_english(question, index, settings, trace)
    terms, known = _glosses(question, index, settings) if s.glosses else ({}, [])
    words = senses(question, index, settings)
    # what the dictionary's order alone gave, when the corpus's company or its English changed it
    plain = dictionary.translate(question, index.keyword.translations(), s.translations_per_term)
    changed = {"dictionary_order": plain} if plain != words else {}
    names = with_names(question, words, index.keyword.names(), s.translations_per_term)
    trace.append(TraceEntry("glosses", 0.0, {"mismatch": mm.__dict__, "terms": terms, "known": known,
                                             "translations": words, "names": names, **changed}))
    extra = [g for gs in terms.values() for g in gs] + [w for ws in words.values() for w in ws]
    if not extra:
        return None
    groups: dict[str, list[str]] = {}
    # glosses are keyed by the lexicon's English text, translations by tokens already (a stem
    # tokenised again can be stemmed twice)
    keyed = [(" ".join(tokenize(k)), ws) for k, ws in terms.items()] + list(words.items())
    for key, ws in keyed:
        groups[key] = list(dict.fromkeys([*groups.get(key, []), *ws]))
    return Glossed(f"{question} {' '.join(dict.fromkeys(extra))}", groups)


_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]+\b")


def senses(question: str, index: Index, settings: Settings) -> dict[str, list[str]]:
    """The question's English words and two-word phrases that the corpus's translations know,
    each with its search.translations_per_term Chinese words, picked among the first
    search.sense_candidates by the company of the question's other words
    (core/dictionary.by_context)."""
    s = settings.search
    kw = index.keyword
    n = max(s.translations_per_term, s.sense_candidates)
    found = dictionary.translate(question, kw.translations(), n)
    if not found or s.translations_per_term <= 0:
        return {}
    # A word written in capitals is an acronym or a name, not the dictionary's word: "REST"
    # (of "REST API") searched 其余 ("the rest"), "US" 我们 ("us").
    caps = {t for w in _ACRONYM.findall(question) for t in tokenize(w)}
    found = {k: ws for k, ws in found.items() if not caps & set(k.split())}
    if not found:
        return {}
    toks = tokenize(question)
    rows = kw.postings({*toks, *(w for ws in found.values() for w in ws)})
    if s.translations_where_chinese_commoner:
        # As for glosses (`_glosses`): a word the corpus mostly says in English is found as it
        # is, and its translation only adds noise ("prompt" -> 及时 "timely" in notes that
        # write "prompt"; "transformer" -> 变换). A tie keeps it.
        found = {k: use for k, ws in found.items()
                 if (use := [w for w in ws if len(rows.get(w, ())) >= _held(k, rows)])}
    # A two-word phrase translated as a whole ("drink wine" -> 饮酒, "closed source" -> 闭源) is
    # not translated word by word as well: as with names (`with_names`), its words alone mostly
    # bring other senses ("wine" -> 圣贤, "close" -> 相近, "root" -> 本).
    _drop_words_of_phrases(found, list(found))
    if s.sense_candidates > 1 and found:
        found = dictionary.by_context(found, [t for t in toks if t in rows], rows, len(kw.ids))
    return {k: ws[:s.translations_per_term] for k, ws in found.items()}


def _held(key: str, rows: Mapping[str, np.ndarray]) -> int:
    """How many records hold every token of an English key (`rows`: each token's records)."""
    parts = key.split()
    if not all(t in rows for t in parts):
        return 0
    common = rows[parts[0]]
    for t in parts[1:]:
        common = np.intersect1d(common, rows[t], assume_unique=True)
    return len(common)


def with_senses(query: str, groups: Mapping[str, Sequence[str]], translations: Mapping[str, Sequence[str]],
                per_term: int) -> tuple[str, dict[str, list[str]]]:
    """`query` and `groups` (an English question's BM25 query and its Chinese words per key,
    `glossed`) with each key's other translations the corpus uses, up to `per_term` words a key:
    for choosing the sentences of passages already retrieved, where the search took one word a
    key. A sentence that says 上下文 covers "context" though 情境 was the commonest translation;
    over the whole corpus the other senses would find other passages, inside five of them they
    mostly say the same thing."""
    out = {k: list(ws) for k, ws in groups.items()}
    extra: list[str] = []
    for key, ws in out.items():
        for w in translations.get(key, ())[:per_term]:
            if w not in ws:
                ws.append(w)
                extra.append(w)
    return (f"{query} {' '.join(dict.fromkeys(extra))}" if extra else query), out


def with_names(question: str, words: dict[str, list[str]], names: Mapping[str, list[str]],
               per_term: int) -> dict[str, list[str]]:
    """Add to `words` (the question's dictionary translations, keyed by tokens) the corpus's
    words that its capitalised pairs spell in pinyin where the dictionary has no name for them
    (core/pinyin.py: "Pang Tong" -> 庞统), and drop the translations of the single words of a
    capitalised pair translated as a whole: once "Cao Cao" is 曹操, "cao" alone is no 曹参, nor
    "liu" of "Liu Bei" 刘安 (CC-CEDICT's romanised names give such one-word keys). On the labelled
    sets only English questions of the novel have such pairs. Returns the names found (for the
    trace)."""
    # A name the dictionary knows (its romanised form: "Guan Yu" -> 关羽) is not spelled out
    # again: the corpus's other words of that spelling are homophones (冠玉, "Liu Bei" 六倍).
    keys = {pair: " ".join(tokenize(pair)) for pair in pinyin.capitalised_pairs(question)}
    found = {pair: ws for pair, ws in pinyin.find(question, names, per_term).items()
             if keys[pair] and keys[pair] not in words}
    for pair, ws in found.items():
        words[keys[pair]] = ws
    _drop_words_of_phrases(words, keys.values())
    return found


def _drop_words_of_phrases(words: dict[str, list[str]], keys: Iterable[str]) -> None:
    """Drop from `words` the single words of each two-word key of `keys` that `words` translates."""
    for key in keys:
        if " " in key and key in words:
            for part in key.split():
                words.pop(part, None)


def to_english(question: str, index: Index, settings: Settings, trace: list[TraceEntry]) -> Glossed | None:
    """A Chinese question over a corpus that is mostly English (a mixed folder, or an English
    one: CJK share below search.crosslingual_corpus_cjk): each of its Chinese words adds the
    English translation CC-CEDICT gives for it that the corpus uses most (plain senses first;
    core/dictionary.to_english): "法压壶需要多粗的研磨度？" also searches "french press" and
    "grind". Read at query time for the question's words only (the dictionary is read once
    per process). None when the question is not Chinese, the corpus mostly Chinese (its Chinese
    questions are searched as they are), or nothing was added. A `glosses` trace entry."""
    s = settings.search
    if s.translations_per_term <= 0 or cjk_share(question) < 0.5:
        return None
    kw = index.keyword
    corpus = kw.lexicon().cjk_share
    if corpus >= s.crosslingual_corpus_cjk:
        return None
    words = dictionary.headwords_in(strip_question_words(question))
    found = dictionary.to_english(words, kw.doc_freqs, s.translations_per_term)
    mm = mismatch(question, index, settings) or Mismatch("zh", "en", round(cjk_share(question), 3), corpus,
                                                          mixed=True)
    trace.append(TraceEntry("glosses", 0.0, {"mismatch": mm.__dict__, "terms": {}, "known": [],
                                             "translations": found}))
    extra = [e for es in found.values() for e in es]
    if not extra:
        return None
    # keyed by the question's own tokens of each word (法压壶 -> "法压 壶"), as the abstain
    # check and the composer read the question (retrieval/grade.own_groups)
    groups = {" ".join(tokenize(w)) or w: es for w, es in found.items()}
    return Glossed(f"{question} {' '.join(dict.fromkeys(extra))}", groups, bigrams=True)


def concept_units(terms: Iterable[str], groups: Mapping[str, Sequence[str]]) -> list[frozenset[str]]:
    """The question's terms as units of meaning: an English word and the tokens of its Chinese
    glosses and translations are one unit (a Chinese sentence that says 损失 covers "loss" as
    well as the English word would); a two-word phrase whose translation is one token of the
    query ("green tea" -> 绿茶, "water temperature" -> 水温) joins each of its words' units, since
    a passage that says 绿茶 covers both words; a phrase translated into several tokens (损失缩放:
    损失 / 缩放) adds one unit of them; every other term a unit of its own. Scored as one, a unit
    counts once: before, a translated word counted twice in a coverage's whole, so a Chinese
    sentence could cover at most half of a fully translated question. `terms`: tokenised (the
    keyword query's)."""
    pool = set(terms)
    units: list[set[str]] = []
    unit_of: dict[str, set[str]] = {}  # an English word -> the unit it heads
    taken: set[str] = set()

    def word_unit(word: str) -> set[str]:
        if word not in unit_of:
            unit_of[word] = {word}
            units.append(unit_of[word])
            taken.add(word)
        return unit_of[word]

    for key, words in groups.items():
        zh = {t for w in words for t in tokenize(w)} & pool
        parts = [p for p in key.split() if p in pool]
        whole = {w for w in words if w in pool}
        if " " in key and whole and parts:
            for p in parts:
                word_unit(p).update(whole)
            taken |= whole
            continue
        if " " not in key and key in pool:
            word_unit(key).update(zh - taken)
        elif zh - taken:
            units.append(zh - taken)
        taken |= zh
    units += [{t} for t in sorted(pool - taken)]
    return [frozenset(u) for u in units]


Units = list[tuple[frozenset[str], float]]  # units of meaning, each with its weight


def weighted_units(idf: Mapping[str, float], groups: Mapping[str, Sequence[str]] | None = None) -> Units:
    """`concept_units` of the terms `idf` weighs, each unit weighted by its best idf."""
    return [(u, max(idf[t] for t in u)) for u in concept_units(idf, groups or {})]


def credit(holds: Callable[[str], bool], head: Container[str] = ()) -> Callable[[str], float]:
    """A term's credit for `covered`: 1 where the text holds it, half where only its heading does
    ("French press" is often the heading, not the sentence). The composer and the abstain check
    score coverage alike."""
    return lambda t: 1.0 if holds(t) else 0.5 if t in head else 0.0


def covered(units: Units, credit: Callable[[str], float]) -> float:
    """The weighted share of the units covered, a unit earning its best member's `credit`
    (1 for a term the text holds, less for one only its heading holds)."""
    total = sum(w for _, w in units)
    return sum(w * max(credit(t) for t in u) for u, w in units) / total if total else 0.0


def _glosses(question: str, index: Index, settings: Settings) -> tuple[dict[str, list[str]], list[str]]:
    """The corpus's glosses of the question's English terms, where the corpus says them in
    Chinese more often than in English; and every term the lexicon knew."""
    found = index.keyword.lexicon().lookup(question)
    per_term = max(1, settings.search.glosses_per_term)
    kw = index.keyword
    terms: dict[str, list[str]] = {}
    for key, gs in found:
        # Only where the corpus mostly says it in Chinese: a term its text already uses in
        # English is found as it is, and its gloss (often a common word) only adds noise.
        en = kw.df(key)
        if use := [g for g in gs[:per_term] if kw.df(g) > en]:
            terms[key] = use
    return terms, [k for k, _ in found]
