"""Chinese names as English writes them: pinyin, for English questions over Chinese text.

An English question names the people and places of a Chinese text in pinyin ("Pang Tong",
"Lü Boshe", "Zhang Xiu"). CC-CEDICT gives the famous ones with their romanised names
(core/dictionary.py: "Guan Yu" -> 关羽), but most names of a novel, a history or a news story
are in no dictionary, and without them an English question finds the passage only through its
other words (zh-prose dev: the four English questions naming 吕伯奢, 华雄 and 庞统 found the
passage at rank 38 or not at all).

When a Chinese corpus's keyword index is built, each of its words of two or three characters that
the dictionary does not translate is spelled out in toneless pinyin from the dictionary's
single-character entries (every reading of a character with several), keyed as English writes a
personal name: the surname apart and the given name joined ("庞统" -> "pang tong", "吕伯奢" ->
"lü boshe", "诸葛亮" -> "zhuge liang", a two-character surname). A question's pairs of
capitalised words are looked up there (`find`), and the corpus's commonest word under the key
joins its BM25 query like a dictionary translation (retrieval/crosslingual.py).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Container, Iterable, Mapping
from pathlib import Path

import numpy as np

NAMES_FILE = "names.json"
# Corpora at least this share CJK get names (retrieval/crosslingual.py reads them for English
# questions): a Chinese corpus, as search.crosslingual_corpus_cjk counts one. In a folder of mostly
# English documents a question's capitalised pairs are English terms. The names cost a Chinese
# keyword rebuild 0.39 s at zh-prose's 166k terms (one-file updates included).
MIN_CORPUS_CJK = 0.3
NAME_CHARS = (2, 3)  # a Chinese personal or place name: surname + one or two characters
MAX_SPELLINGS = 8  # per word: a name of characters with several readings each is cut off here
# A word more than this share of the records hold is no name a question would single out.
MAX_RECORD_SHARE = 0.5

_ENTRY = re.compile(r"^\S+ (\S+) \[([^\]]*)\] /")
_HAN = re.compile(r"^[\u4e00-\u9fff]+$")
# A capitalised word of a question, with a possessive "'s" left off ("Guan Yu's").
_CAPITAL = re.compile(r"[A-Z][A-Za-zÜü:']*")


def _syllable(pinyin: str) -> str:
    """One syllable of a CC-CEDICT reading, toneless and lower case ("Lu:3" -> "lü")."""
    return re.sub(r"\d", "", pinyin).lower().replace("u:", "ü")


def readings(lines: Iterable[str]) -> dict[str, list[str]]:
    """Per Chinese character, its toneless readings from the dictionary's one-character entries
    (first listed first). Only those lines are parsed (a split finds them: 0.24 -> 0.05 s)."""
    reads: dict[str, list[str]] = {}
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 3 or len(parts[1]) != 1 or line.startswith("#"):
            continue
        m = _ENTRY.match(line)
        if not m or " " in m.group(2):
            continue
        got = reads.setdefault(m.group(1), [])
        if (s := _syllable(m.group(2))) not in got:
            got.append(s)
    return reads


def spellings(word: str, reads: Mapping[str, list[str]]) -> list[str]:
    """The keys a name is written under in English: "庞统" -> ["pang tong"]; a three-character
    word both ways a surname can fall ("吕伯奢" -> "lü boshe", and "lübo she" for a
    two-character surname, as "诸葛亮" -> "zhuge liang"). Empty when a character has no reading."""
    per = [reads.get(c) for c in word]
    if any(not r for r in per):
        return []
    out: list[str] = []
    combos = itertools.islice(itertools.product(*[r for r in per if r]), MAX_SPELLINGS)
    for syl in combos:
        if len(syl) == 2:
            out.append(f"{syl[0]} {syl[1]}")
        else:
            out += [f"{syl[0]} {syl[1]}{syl[2]}", f"{syl[0]}{syl[1]} {syl[2]}"]
    return list(dict.fromkeys(k for s in out for k in _variants(s)))


def _variants(key: str) -> list[str]:
    """A key as it is written with ü, and as it is typed without it ("lü" -> "lu", "lv")."""
    if "ü" not in key:
        return [key]
    return [key, key.replace("ü", "u"), key.replace("ü", "v")]


def for_corpus(vocab: Mapping[str, int], df: np.ndarray, records: int,
               reads: Mapping[str, list[str]], known: Container[str] = ()) -> dict[str, list[str]]:
    """Pinyin key -> the corpus's words spelled so, commonest first (`df`: records holding each
    vocabulary term), for the words of NAME_CHARS Han characters in at most MAX_RECORD_SHARE of
    the records, leaving out the `known` words (those the dictionary translates: their names, if
    any, come from the dictionary itself)."""
    limit = MAX_RECORD_SHARE * records
    found: dict[str, list[tuple[int, str]]] = {}
    for word, i in vocab.items():
        if len(word) not in NAME_CHARS or word in known or not _HAN.match(word):
            continue
        d = int(df[i])
        if not 0 < d <= limit:
            continue
        for key in spellings(word, reads):
            found.setdefault(key, []).append((d, word))
    return {k: [w for _, w in sorted(ws, key=lambda x: (-x[0], x[1]))] for k, ws in found.items()}


def save(folder: Path, names: dict[str, list[str]]) -> None:
    """Written whole or not at all: an index built before names gets them at first use, when
    another process may be reading the same folder."""
    tmp = folder / f"{NAMES_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(names, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / NAMES_FILE)


def load(folder: Path) -> dict[str, list[str]] | None:
    """The corpus's names, or None when the index was built without them."""
    try:
        raw = json.loads((folder / NAMES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def capitalised_pairs(question: str) -> list[str]:
    """Each two capitalised words in a row of `question`, one space apart, as written ("Why did
    Pang Tong's army stop?" -> ["Pang Tong"]): a name in pinyin is a surname and a given name."""
    words = [(m.start(), m.end(), m.group(0)) for m in _CAPITAL.finditer(question)]
    out: list[str] = []
    for (_, e1, w1), (s2, _, w2) in itertools.pairwise(words):
        if question[e1:s2] == " ":
            out.append(f"{_strip(w1)} {_strip(w2)}")
    return out


def _strip(word: str) -> str:
    return re.sub(r"'s$", "", word)


def key_of(pair: str) -> str:
    """A question's pair in the form of the keys: lower case, apostrophes out, ü as written."""
    return pair.lower().replace("u:", "ü").replace("'", "")


def find(question: str, names: Mapping[str, list[str]], per_term: int) -> dict[str, list[str]]:
    """The question's capitalised pairs that spell some of the corpus's names, each with its
    `per_term` commonest words under that spelling."""
    out: dict[str, list[str]] = {}
    for pair in capitalised_pairs(question):
        got = names.get(key_of(pair))
        if got and per_term > 0:
            out[pair] = got[:per_term]
    return out
