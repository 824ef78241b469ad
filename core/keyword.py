"""The keyword (BM25) index, saved beside the vector store in bm25s's format and rebuilt
from the document store whenever an ingest changed anything, so it is always in step. A
rebuild tokenises only the records whose text is new: every record's term counts are kept
with the index (core/bm25.py), so adding one file to a large index costs little more than
writing the matrix.

Tokenisation (core/tokens.py) handles English (lower-case, stop words, Snowball stemming) and
CJK text (jieba word segmentation in search mode), mixed within one text; `tokenize` is
imported from here by most callers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core import dictionary, pinyin
from core.bm25 import K1, B, SavedScores, TermCounts, load_saved_scores, load_terms, save_bm25s
from core.errors import IndexError_
from core.lexicon import LEXICON_FILE, Lexicon, TextFacts, combine, facts
from core.tokens import TOKENIZER_VERSION, index_terms, is_bigram, query_terms, tokenize
from core.types import KeywordRows

log = logging.getLogger(__name__)

# A query term's key (its tokens joined by spaces) -> the words of the other script added to
# the query for it (retrieval/crosslingual.Glossed.groups).
Groups = Mapping[str, Sequence[str]]


def _alternatives(groups: Groups) -> tuple[list[list[list[str]]], set[str]]:
    """Per group, its ways of saying one thing as token lists: the key's tokens (already
    tokenised: a stem tokenised again can be stemmed twice) and each word's tokens, without the
    pieces jieba's search mode also gives for a word it knows (注意力: 注意力, not 注意 too);
    and every token of the groups, those pieces included (none of them is scored apart)."""
    units: list[list[list[str]]] = []
    grouped: set[str] = set()
    for key, words in groups.items():
        alts = [key.split()]
        for w in words:
            toks = tokenize(w)
            grouped.update(toks)
            alts.append(_whole(toks))
        grouped.update(alts[0])
        units.append(alts)
    return units, grouped


def _whole(tokens: list[str]) -> list[str]:
    """`tokens` without those that are part of another one."""
    return [t for t in tokens if not any(t != u and t in u for u in tokens)]


FORMAT_VERSION = 1
COUNTS_VERSION = 2  # the per-record term counts and lexicon facts kept for the next rebuild
# (2: text digests are core/types.text_digest's signed values, as the document store keeps them)
EMPTY = "\x00empty"  # the one token of a record with none, so every record has a length
SOURCES_FILE = "sources.json"  # each document group's name (its file), in group order
def _bm25s() -> Any:
    """bm25s, imported lazily. Its import sets its own logger to DEBUG, which printed a stray
    "DEBUG bm25s: Building index" line on every ingest: follow the root logger instead
    (`rag -v` sets it to INFO)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
    return bm25s


class ChunkSource(Protocol):
    """What `KeywordIndex.merged_rows` reads from the document store (core/docstore.DocStore)."""

    def chunk_rows(self, sources: list[str], have: Container[int] = ...
                   ) -> dict[str, list[tuple[str, int, str | None]]]: ...

    def record_count(self) -> int: ...


@dataclass
class KeywordIndex:
    """A bm25s index plus the record ids in index order."""

    path: Path
    ids: list[str] = field(default_factory=list)
    _bm25: Any = None
    _pos: dict[str, int] | None = None
    _groups: np.ndarray | None = None  # per position: document group, -1 for none
    _lexicon: Lexicon | None = None
    _translations: dict[str, list[str]] | None = None
    _names: dict[str, list[str]] | None = None
    _built: bool = False  # this object wrote the saved index (`build`): its ids are the store's

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def known_digests(self) -> set[int]:
        """The digests of the texts the saved index holds (what `build` need not be given
        again), empty when it must be rebuilt from scratch or its saved counts are of another
        version (their digests are not comparable: `build` would not reuse them)."""
        hashes = self._saved_hashes()
        return set() if hashes is None else set(hashes.tolist())

    def _saved_hashes(self) -> np.ndarray | None:
        """The saved texts' digests in index order, or None (`known_digests`)."""
        if not self.is_current():
            return None
        try:
            if json.loads(self.manifest_path.read_text()).get("counts") != COUNTS_VERSION:
                return None
            return np.load(self.path / "hashes.counts.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def build(self, items: KeywordRows | Iterable[tuple[str, str] | tuple[str, str, str]]) -> None:
        """Index `KeywordRows` (whose text may be None where the saved index holds a text of
        that digest: `known_digests`), or `(id, text)` / `(id, text, group)` items.
        Consecutive records of one non-empty group (a document's chunks in reading order) are
        neighbours: `context_scores` gives a chunk the scores of its neighbours and of its
        whole document. Texts the current version already holds are not tokenised again."""
        rows = items if isinstance(items, KeywordRows) else KeywordRows.of(items)
        ids = rows.ids
        names: dict[str, int] = {}
        groups = [names.setdefault(g, len(names)) if g else -1 for g in rows.groups]
        known = _Tokenised.load(self.path) if self.is_current() else None
        tok = _tokenise(ids, rows.texts, np.asarray(rows.digests, dtype=np.int64), known)
        # Written into a fresh versioned folder, then published by repointing the `bm25` link:
        # no two writers share a temporary path, and a reader never sees a half-written index.
        tmp = self.path.with_name(f"{self.path.name}.{time.time_ns()}.{os.getpid()}")
        tmp.mkdir(parents=True)
        if ids:
            second = np.zeros(len(tok.vocab), dtype=bool)  # per term id: a CJK bigram
            second[[i for t, i in tok.vocab.items() if is_bigram(t)]] = True
            save_bm25s(tmp, tok.counts, tok.vocab, second=second)
        tok.save(tmp)
        lexicon = tok.lexicon()
        lexicon.save(tmp)  # the corpus's own English-Chinese glosses (core/lexicon.py)
        if ids and lexicon.cjk_share >= dictionary.MIN_CORPUS_CJK:  # dictionary translations, names
            _save_translations(tmp, tok, lexicon.cjk_share >= pinyin.MIN_CORPUS_CJK)
        (tmp / "ids.json").write_text(json.dumps(ids))
        (tmp / "groups.json").write_text(json.dumps(groups))
        (tmp / SOURCES_FILE).write_text(json.dumps(list(names), ensure_ascii=False), encoding="utf-8")
        (tmp / "manifest.json").write_text(
            json.dumps(
                {"format_version": FORMAT_VERSION, "tokenizer": TOKENIZER_VERSION, "documents": len(ids),
                 "counts": COUNTS_VERSION, "k1": K1, "b": B, "tokenised": tok.fresh}
            )
        )
        self._publish(tmp)
        self.ids = ids
        self._bm25 = None
        self._pos = None
        self._lexicon = None
        self._translations = None
        self._names = None
        self._groups = np.asarray(groups, dtype=np.int64)
        self._built = True

    def merged_rows(self, docs: ChunkSource, changed: set[str]) -> KeywordRows | None:
        """The rows `DocStore.keyword_rows` would give after an ingest that changed only the files
        `changed` (added, re-chunked or removed), made from this index's saved order and those
        files' chunks: reading the order of all 100k rows back from SQLite took 0.2-0.3 s of a
        one-file update. None where that cannot be had safely (then the caller reads it all):
        no saved order of this version, a record that is not a chunk of a file (derived
        layers), or a count that does not add up to the store's."""
        hashes = self._saved_hashes()
        if hashes is None:
            return None
        try:
            ids: list[str] = json.loads((self.path / "ids.json").read_text())
            groups = np.asarray(json.loads((self.path / "groups.json").read_text()), dtype=np.int64)
            names: list[str] = json.loads((self.path / SOURCES_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if len(groups) != len(ids) or len(hashes) != len(ids):
            return None
        if len(ids) and (groups.min() < 0 or groups.max() >= len(names)):  # not every record a file's chunk
            return None
        # The saved order holds each file's chunks as one run, files in ascending order.
        starts = np.flatnonzero(np.diff(groups, prepend=-1) != 0).tolist() if len(ids) else []
        runs = list(zip(starts, [*starts[1:], len(ids)], strict=True))
        run_names = [names[int(groups[a])] for a, _ in runs]
        if any(b <= a for a, b in pairwise(run_names)):
            return None
        digests = hashes.tolist()
        fresh = docs.chunk_rows(sorted(changed), set(digests))
        out = KeywordRows([], [], [], [])
        kept = [(name, run) for name, run in zip(run_names, runs, strict=True) if name not in changed]
        # Old and new files merged by name, as SQL's ORDER BY source puts them (UTF-8 bytes and
        # Python's code points sort alike).
        for name, (a, b) in sorted(kept + [(n, (-1, -1)) for n in fresh]):
            if a >= 0:  # a file the ingest did not touch: its run as it was
                out.ids += ids[a:b]
                out.texts += [None] * (b - a)
                out.groups += [name] * (b - a)
                out.digests += digests[a:b]
            else:
                for rid, digest, text in fresh[name]:
                    out.ids.append(rid)
                    out.texts.append(text)
                    out.groups.append(name)
                    out.digests.append(digest)
        if len(out.ids) != docs.record_count():  # a derived record, or a file changed that was not named
            return None
        return out

    def built_chunk_ids(self) -> list[str] | None:
        """The ids of the chunks (the records with a document group) when this object has just
        built the index from the document store, else None: after `rag ingest` the ranker's
        retraining check needs every chunk id, which the store reads back in 0.09 s at 100k
        chunks and this has in memory."""
        if not self._built or self._groups is None or len(self._groups) != len(self.ids):
            return None
        return [rid for rid, g in zip(self.ids, self._groups.tolist(), strict=True) if g >= 0]

    def _publish(self, folder: Path) -> None:
        """Make `self.path` (a symbolic link) point at `folder` with one atomic rename, then
        remove the versions before the one it replaced (a reader that opened that one just
        now may still be reading it)."""
        link = self.path.with_name(f".{self.path.name}.link.{os.getpid()}")
        link.unlink(missing_ok=True)
        link.symlink_to(folder.name)
        previous = os.readlink(self.path) if self.path.is_symlink() else None
        if self.path.exists() and not self.path.is_symlink():  # an index written before links
            shutil.rmtree(self.path)
        os.replace(link, self.path)
        keep = {folder.name, previous}
        for old in self.path.parent.glob(f"{self.path.name}.*"):
            if old.name not in keep and old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)

    def is_current(self) -> bool:
        """False when the saved index is missing or was written by another format or tokenizer
        (then it must be rebuilt from the document store, not read)."""
        try:
            man = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        if not (man.get("format_version") == FORMAT_VERSION and man.get("tokenizer") == TOKENIZER_VERSION
                and (self.path / LEXICON_FILE).exists()):
            return False
        # A Chinese corpus indexed before dictionary translations gets them at the next open.
        return (self.path / dictionary.TRANSLATIONS_FILE).exists() or not man.get("documents") or (
            self.lexicon().cjk_share < dictionary.MIN_CORPUS_CJK)

    def lexicon(self) -> Lexicon:
        """The glosses mined from the indexed texts (empty for an index built before them)."""
        if self._lexicon is None:
            self._lexicon = Lexicon.load(self.path)
        return self._lexicon

    def translations(self) -> dict[str, list[str]]:
        """English key -> the Chinese words of this corpus that translate it (core/dictionary.py;
        empty for a corpus that is not Chinese, or an index built before them)."""
        if self._translations is None:
            self._translations = dictionary.load(self.path)
        return self._translations

    def names(self) -> dict[str, list[str]]:
        """Pinyin key -> the words of this corpus spelled so (core/pinyin.py; empty for a corpus
        that is not Chinese). An index built before them gets them here, once, from its saved
        term counts (zh-prose: 0.4 s), written beside it when the folder can be written."""
        if self._names is None:
            names = pinyin.load(self.path)
            if names is None:
                names = {}
                chinese = self.is_current() and self.lexicon().cjk_share >= pinyin.MIN_CORPUS_CJK
                tok = _Tokenised.load(self.path) if chinese else None
                if tok is not None and tok.counts.records:
                    df = np.bincount(tok.counts.terms, minlength=len(tok.vocab))
                    names = _names(tok, df, dictionary.read_lines(), self.translations())
                try:
                    pinyin.save(self.path, names)
                except OSError:  # a read-only index: looked at again by the next process
                    log.debug("could not write %s", self.path / pinyin.NAMES_FILE)
            self._names = names
        return self._names

    def load(self) -> None:
        if not self.manifest_path.exists():
            self.ids, self._bm25 = [], None
            return
        man = json.loads(self.manifest_path.read_text())
        if man.get("format_version") != FORMAT_VERSION or man.get("tokenizer") != TOKENIZER_VERSION:
            raise IndexError_(
                f"The BM25 index at {self.path} was written by another version ({man}); "
                "re-run `rag ingest` on your files to rebuild it."
            )
        self.ids = json.loads((self.path / "ids.json").read_text())
        gp = self.path / "groups.json"
        self._groups = np.asarray(json.loads(gp.read_text()) if gp.exists() else [-1] * len(self.ids))
        self._pos = None
        self._lexicon = None
        self._translations = None
        self._names = None
        self._built = False
        if self.ids:
            self._bm25 = load_saved_scores(self.path) or _bm25s().BM25.load(str(self.path))  # older kinds
        else:
            self._bm25 = None

    def search(self, query: str, k: int, bigrams: bool = True, groups: Groups | None = None
               ) -> list[tuple[str, float]]:
        """The best `k` records for `query`; `bigrams`: score the CJK character bigrams beside
        jieba's words (core/tokens.index_terms), else the words alone, plain jieba BM25;
        `groups`: the words of the other script the query holds for a term of it (`_all_scores`)."""
        scores = self._all_scores(query, bigrams, groups)
        if scores is None:
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def df(self, text: str) -> int:
        """How many indexed records hold every term of `text` (0 when one is unknown)."""
        terms = list(dict.fromkeys(tokenize(text)))
        if not terms:
            return 0
        if self._bm25 is None:
            self.load()
        if self._bm25 is None:
            return 0
        vocab = self._bm25.vocab_dict
        hold: np.ndarray | None = None
        for t in terms:  # by vocabulary id: tokenizing a stem again would stem it twice
            if t not in vocab:
                return 0
            sc = np.asarray(self._bm25.get_scores([vocab[t]])) > 0
            hold = sc if hold is None else hold & sc
        return int(hold.sum()) if hold is not None else 0

    def doc_freqs(self, terms: Iterable[str]) -> dict[str, int]:
        """How many records hold each of `terms` (already tokenised: a stem tokenised again could
        be stemmed twice), read off the saved matrix's column lengths without scoring anything:
        the abstention check asks this for every question term, and scoring each term over the
        whole index to count its hits cost a full sort per term at 100k records."""
        cols = self._columns()
        if cols is None:
            return {t: 0 for t in terms}
        vocab, indptr, _ = cols
        return {t: int(indptr[vocab[t] + 1] - indptr[vocab[t]]) if t in vocab else 0 for t in terms}

    def postings(self, terms: Iterable[str]) -> dict[str, np.ndarray]:
        """The records holding each of `terms` (already tokenised), as sorted row numbers read off
        the saved matrix's columns; terms the index does not hold are left out."""
        cols = self._columns()
        if cols is None:
            return {}
        vocab, indptr, indices = cols
        return {t: np.sort(indices[indptr[vocab[t]]:indptr[vocab[t] + 1]]) for t in terms if t in vocab}

    def _columns(self) -> tuple[dict[str, int], np.ndarray, np.ndarray] | None:
        """The BM25 matrix's vocabulary and its per-term columns (indptr, record rows), from our
        saved kind or a bm25s index alike; None when nothing is indexed."""
        if self._bm25 is None:
            self.load()
        if self._bm25 is None:
            return None
        if isinstance(self._bm25, SavedScores):
            return self._bm25.vocab_dict, self._bm25.indptr, self._bm25.indices
        return self._bm25.vocab_dict, self._bm25.scores["indptr"], self._bm25.scores["indices"]

    def _all_scores(self, query: str, bigrams: bool = True, groups: Groups | None = None
                    ) -> np.ndarray | None:
        """BM25 of `query` against every indexed record (None: nothing indexed or no query
        term in the vocabulary). With `groups` (retrieval/crosslingual.py: a query term's key,
        its tokens joined by spaces, -> the words of the other script the query added for it),
        a term and its translations are one unit, scored as the best of them (the key's tokens
        together, or one translation's tokens together), as a synonym is: summed, "attention"
        and its 注意力 / 注意 made that common word count three times, and "What is Ghost
        Attention in Llama 3 for?" ranked a dozen chunks on 注意力 above the one line that names
        Ghost Attention."""
        if self._bm25 is None:  # not loaded yet, or just rebuilt by `build`
            self.load()
        if self._bm25 is None:
            return None
        bm25, vocab = self._bm25, self._bm25.vocab_dict
        terms = query_terms(query) if bigrams else tokenize(query)
        # A group's tokens count only where the query's own tokenisation keeps them: a key
        # of stop words (以后, 最好: the question's Chinese words kept whole when they tokenise
        # to nothing) must not add terms the plain query leaves out.
        known = {t for t in terms if t in vocab}
        alternatives, grouped = _alternatives(groups or {})
        units: list[list[list[int]]] = []  # per group, the term ids of each way it can be said
        for alts in alternatives:
            said = [ids for ids in ([vocab[t] for t in alt if t in known] for alt in alts) if ids]
            if said:
                units.append(said)
        q = [vocab[t] for t in terms if t in known and t not in grouped]
        if not q and not units:
            return None
        n = len(self.ids or [])
        scores = np.asarray(bm25.get_scores(q), dtype=np.float32) if q else np.zeros(n, np.float32)
        for said in units:
            scores += np.max([np.asarray(bm25.get_scores(ids), dtype=np.float32) for ids in said], axis=0)
        return scores

    def _positions(self, ids: list[str]) -> list[int | None]:
        if self._pos is None or len(self._pos) != len(self.ids):
            self._pos = {rid: i for i, rid in enumerate(self.ids)}
        return [self._pos.get(rid) for rid in ids]

    def term_scores(self, terms: Iterable[str], ids: list[str]) -> np.ndarray:
        """BM25 of the records `ids` (0 where one is not indexed) for a query of already
        tokenised `terms` (tokenising a stem again could stem it twice): pseudo-relevance
        feedback's expansion terms come from indexed texts' tokens."""
        out = np.zeros(len(ids), dtype=np.float32)
        if self._bm25 is None:
            self.load()
        if self._bm25 is None or not ids:
            return out
        vocab = self._bm25.vocab_dict
        q = [vocab[t] for t in terms if t in vocab]
        if not q:
            return out
        scores = np.asarray(self._bm25.get_scores(q), dtype=np.float32)
        for j, i in enumerate(self._positions(ids)):
            if i is not None:
                out[j] = scores[i]
        return out

    def score_ids(self, query: str, ids: list[str], bigrams: bool = True, groups: Groups | None = None
                  ) -> np.ndarray:
        """BM25 scores of the given records for `query`, in the order of `ids` (0 where a
        record is not indexed); lets a reranker see the BM25 score of dense-only hits."""
        return self.context_scores(query, ids, bigrams, groups)["bm25"]

    def context_scores(self, query: str, ids: list[str], bigrams: bool = True, groups: Groups | None = None
                       ) -> dict[str, np.ndarray]:
        """Per record of `ids`: `bm25` (its own score), `bm25_prev` / `bm25_next` (its
        neighbours' in the same document, 0 at the ends) and `bm25_doc` (the best score of
        any chunk of its document). One scoring pass over the index gives them all: an
        answer often spans a chunk boundary, and a document that matches elsewhere too is
        more likely the one asked about."""
        n = len(ids)
        out = {k: np.zeros(n, dtype=np.float32) for k in ("bm25", "bm25_prev", "bm25_next", "bm25_doc")}
        scores = self._all_scores(query, bigrams, groups) if ids else None
        if scores is None:
            return out
        doc_of = self._groups if self._groups is not None and len(self._groups) == len(scores) else None
        if doc_of is None:
            doc_of = np.full(len(scores), -1)
        in_doc = doc_of >= 0
        doc_best = np.zeros(int(doc_of.max()) + 1 if in_doc.any() else 0, dtype=np.float32)
        np.maximum.at(doc_best, doc_of[in_doc], scores[in_doc])
        for j, i in enumerate(self._positions(ids)):
            if i is None:
                continue
            out["bm25"][j] = scores[i]
            g = int(doc_of[i])
            if g < 0:
                out["bm25_doc"][j] = scores[i]
                continue
            if i > 0 and doc_of[i - 1] == g:
                out["bm25_prev"][j] = scores[i - 1]
            if i + 1 < len(scores) and doc_of[i + 1] == g:
                out["bm25_next"][j] = scores[i + 1]
            out["bm25_doc"][j] = doc_best[g]
        return out

    def neighbours(self, rid: str) -> tuple[str | None, str | None]:
        """The ids before and after `rid` in its document's reading order."""
        if self._groups is None:
            self.load()
        (i,) = self._positions([rid])
        if i is None or self._groups is None or len(self._groups) != len(self.ids) or self._groups[i] < 0:
            return None, None
        g = self._groups[i]
        prev = self.ids[i - 1] if i > 0 and self._groups[i - 1] == g else None
        nxt = self.ids[i + 1] if i + 1 < len(self.ids) and self._groups[i + 1] == g else None
        return prev, nxt


@dataclass
class _Tokenised:
    """The tokenised corpus of one index version, record by record in index order: the
    text's hash, its term counts and its lexicon facts (letters, CJK characters, glossing
    pairs). The next build reuses a record's entry when its text hashes the same."""

    hashes: np.ndarray  # int64, core/types.text_digest
    counts: TermCounts
    letters: np.ndarray  # int64 (records, 2): CJK characters, letters and digits
    pairs: dict[int, list[tuple[str, str]]]  # record -> glossing pairs, only where there are some
    vocab: dict[str, int]
    fresh: int = 0  # records tokenised by the build that made this

    def lexicon(self) -> Lexicon:
        cjk, letters = (int(x) for x in self.letters.sum(axis=0)) if len(self.letters) else (0, 0)
        return combine(cjk, letters, (p for r in sorted(self.pairs) for p in self.pairs[r]))

    def save(self, folder: Path) -> None:
        self.counts.save(folder)
        np.save(folder / "hashes.counts.npy", self.hashes, allow_pickle=False)
        np.save(folder / "letters.counts.npy", self.letters, allow_pickle=False)
        (folder / "pairs.counts.json").write_text(
            json.dumps({str(r): p for r, p in self.pairs.items()}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> _Tokenised | None:
        """The saved entries, or None when they are missing, of another version or do not
        agree with each other (then every text is tokenised again)."""
        try:
            man = json.loads((folder / "manifest.json").read_text())
            if man.get("counts") != COUNTS_VERSION:
                return None
            counts = TermCounts.load(folder)
            hashes = np.load(folder / "hashes.counts.npy", allow_pickle=False)
            letters = np.load(folder / "letters.counts.npy", allow_pickle=False)
            raw = json.loads((folder / "pairs.counts.json").read_text(encoding="utf-8"))
            vocab = load_terms(folder) if counts is not None and counts.records else {}
        except (OSError, ValueError):
            return None
        n = len(hashes)
        if counts is None or counts.records != n or letters.shape != (n, 2):
            return None
        if n and (not vocab or int(counts.terms.max(initial=0)) >= len(vocab)):
            return None
        pairs = {int(r): [(str(k), str(t)) for k, t in p] for r, p in raw.items()}
        return cls(hashes, counts, letters, pairs, vocab)


def _tokenise(ids: list[str], texts: list[str | None], hashes: np.ndarray, known: _Tokenised | None
              ) -> _Tokenised:
    """The tokenised corpus of `texts` (digests `hashes`), taking every text `known` already
    holds from it. A text may be None only where `known` holds its digest."""
    base = known or _Tokenised(np.zeros(0, np.int64), TermCounts.empty(), np.zeros((0, 2), np.int64), {}, {})
    rows = _rows_of(base.hashes, hashes)
    new = np.flatnonzero(rows < 0)
    absent = [ids[i] for i in new.tolist() if texts[i] is None]
    if absent:  # a caller's bug (or the index changed under it): never index a record as empty
        raise ValueError(f"no text for {len(absent)} keyword record(s) the index does not hold, "
                         f"e.g. {absent[0]}")
    vocab = dict(base.vocab)
    todo = [t for i in new.tolist() if (t := texts[i]) is not None]
    fresh = TermCounts.from_tokens((index_terms(t) or [EMPTY] for t in todo), vocab)
    found: list[TextFacts] = [facts(t) for t in todo]
    rows[new] = base.counts.records + np.arange(len(new))
    counts, vocab = base.counts.take_joined(fresh, rows).compact(vocab)
    pool_letters = np.concatenate([base.letters, np.asarray([(f.cjk, f.letters) for f in found],
                                                            dtype=np.int64).reshape(-1, 2)])
    pool_pairs = dict(base.pairs)
    pool_pairs.update({base.counts.records + j: f.pairs for j, f in enumerate(found) if f.pairs})
    with_pairs = np.flatnonzero(np.isin(rows, np.fromiter(pool_pairs, dtype=np.int64, count=len(pool_pairs))))
    pairs = {i: pool_pairs[int(rows[i])] for i in with_pairs.tolist()}
    return _Tokenised(hashes, counts, pool_letters[rows], pairs, vocab, fresh=len(new))


def _rows_of(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per digest of `wanted`, the last row of `known` that holds it, -1 where none does: a dict
    from digest to row, looked up by binary search (100k records: two Python loops over every
    digest took 0.06 s of each one-file update)."""
    if not len(known):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")  # equal digests keep their row order
    ordered = known[order]
    at = np.searchsorted(ordered, wanted, side="right") - 1  # the last of equal digests
    safe = np.maximum(at, 0)
    return np.where((at >= 0) & (ordered[safe] == wanted), order[safe], -1).astype(np.int64)


def _save_translations(folder: Path, tok: _Tokenised, names: bool) -> None:
    """The dictionary translations of a corpus's Chinese words and, with `names`, their pinyin
    spellings, beside its index (core/dictionary.py, core/pinyin.py), from one reading of the
    dictionary. Without `names` an empty table is written (the corpus is not Chinese enough)."""
    df = np.bincount(tok.counts.terms, minlength=len(tok.vocab))
    lines = dictionary.read_lines()
    translations = dictionary.for_corpus(tok.vocab, df, tok.counts.records, lines=lines)
    dictionary.save(folder, translations)
    pinyin.save(folder, _names(tok, df, lines, translations) if names else {})


def _names(tok: _Tokenised, df: np.ndarray, lines: list[str], translations: dict[str, list[str]]
           ) -> dict[str, list[str]]:
    """The corpus's words spelled in pinyin (core/pinyin.py), those the dictionary translates
    left out."""
    known = {w for ws in translations.values() for w in ws}
    return pinyin.for_corpus(tok.vocab, df, tok.counts.records, pinyin.readings(lines), known)
