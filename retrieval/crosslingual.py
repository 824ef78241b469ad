"""Questions in one script over a corpus in another: English questions of Chinese notes.

MiniLM reads English only, and BM25 matches only the words a question shares with the text,
so an English question finds a Chinese passage only through the English terms it happens to
contain. Two remedies, both chosen automatically when the scripts differ (`mismatch`):
- keyword glosses (here, no LLM): the question's English terms that the corpus itself glosses
  in Chinese ("近似最近邻（ANN）", core/lexicon.py) add those Chinese terms to its BM25 query;
- dictionary translations (here, no LLM): the commonest Chinese word of the corpus that
  CC-CEDICT gives for each English word or two-word phrase of the question (core/dictionary.py)
  joins the BM25 query too;
- translation of the question into the corpus's language (retrieval/translate.py, strategy
  `translate`), with the LLM when it is capable of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import dictionary
from core.index import Index
from core.lang import cjk_share
from core.settings import Settings
from core.types import TraceEntry


@dataclass(frozen=True)
class Mismatch:
    question_lang: str  # "en" | "zh"
    corpus_lang: str
    question_cjk: float
    corpus_cjk: float


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


def gloss_query(question: str, index: Index, settings: Settings, trace: list[TraceEntry]) -> str | None:
    """The question's BM25 query with Chinese words for its English terms appended: the
    corpus's own glosses, and the dictionary translations the corpus uses (core/dictionary.py);
    None when the scripts match or nothing was added. One `glosses` trace entry says which."""
    s = settings.search
    if not s.glosses and s.translations_per_term <= 0:
        return None
    mm = mismatch(question, index, settings)
    if mm is None or mm.question_lang != "en":
        return None
    terms, known = _glosses(question, index, settings) if s.glosses else ({}, [])
    words = dictionary.translate(question, index.keyword.translations(), s.translations_per_term)
    trace.append(TraceEntry("glosses", 0.0, {"mismatch": mm.__dict__, "terms": terms, "known": known,
                                             "translations": words}))
    extra = [g for gs in terms.values() for g in gs] + [w for ws in words.values() for w in ws]
    if not extra:
        return None
    return f"{question} {' '.join(dict.fromkeys(extra))}"


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
