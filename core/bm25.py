"""BM25 over term counts kept per record, written in bm25s's on-disk format.

The keyword index used to hand every record's tokens to bm25s on every ingest, so adding
one file to a 100k-chunk index re-tokenised and re-scored all of it. Here the tokenised
form of each record (its term ids and counts) is kept beside the index; a rebuild reuses
it for every record whose text did not change, and the score matrix is computed from the
counts with NumPy in one pass. The scores are bm25s's "lucene" variant, computed with the
same operations in the same precision, and saved in its file layout (`bm25s.BM25.load`
reads the folder), so `SavedScores` and bm25s agree on every query.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

K1 = 1.2
B = 0.75
_COUNTS = ("ptr", "terms", "tfs", "lengths")
TERMS_FILE = "vocab.terms.txt"
_RUNS_MAX = 256  # up to this many runs of consecutive records, `take` copies slices
_BLOCK = 1 << 18  # entries per block of the weight computation (a few MB of temporaries)
# Up to this many entries (term occurrences per record) the BM25 matrix is turned around by
# NumPy's stable argsort, above it by SciPy (`lucene_matrix`): where the two cost the same,
# SciPy's import included, on 2 cores.
NUMPY_SORT_MAX = 1_000_000


@dataclass
class TermCounts:
    """Per record, its distinct term ids and how often each occurs (CSR layout: record i
    owns `terms[ptr[i]:ptr[i+1]]`), and its length in tokens."""

    ptr: np.ndarray  # int64, records + 1
    terms: np.ndarray  # int32
    tfs: np.ndarray  # int32
    lengths: np.ndarray  # int64, tokens per record

    @property
    def records(self) -> int:
        return len(self.ptr) - 1

    @classmethod
    def empty(cls) -> TermCounts:
        z = np.zeros(0, dtype=np.int32)
        return cls(np.zeros(1, dtype=np.int64), z, z.copy(), np.zeros(0, dtype=np.int64))

    @classmethod
    def from_tokens(cls, docs: Iterable[list[str]], vocab: dict[str, int]) -> TermCounts:
        """Count the tokens of each record, adding unseen terms to `vocab` (in place)."""
        ptr: list[int] = [0]
        terms: list[int] = []
        tfs: list[int] = []
        lengths: list[int] = []
        for tokens in docs:
            counts = Counter(vocab.setdefault(t, len(vocab)) for t in tokens)
            terms.extend(counts.keys())
            tfs.extend(counts.values())
            ptr.append(len(terms))
            lengths.append(len(tokens))
        return cls(np.asarray(ptr, dtype=np.int64), np.asarray(terms, dtype=np.int32),
                   np.asarray(tfs, dtype=np.int32), np.asarray(lengths, dtype=np.int64))

    def take(self, rows: np.ndarray) -> TermCounts:
        """The records at `rows`, in that order (`take_joined` with nothing joined)."""
        return self.take_joined(TermCounts.empty(), rows)

    def _gather(self, rows: np.ndarray) -> TermCounts:
        """`take` as one vectorised gather, no Python loop (for many runs of rows)."""
        starts = self.ptr[rows]
        sizes = self.ptr[rows + 1] - starts
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=ptr[1:])
        # entry j of the result comes from starts[row(j)] + (j - ptr[row(j)])
        src = np.repeat(starts - ptr[:-1], sizes) + np.arange(ptr[-1], dtype=np.int64)
        return TermCounts(ptr, self.terms[src], self.tfs[src], self.lengths[rows])

    def take_joined(self, other: TermCounts, rows: np.ndarray) -> TermCounts:
        """`self.concat(other).take(rows)` without building the concatenation first: at 100k chunks
        it was 55 MB of fresh memory in every one-file update, and first touching fresh memory
        made `_tokenise` vary 0.08-0.45 s on a 2-core VM."""
        rows = np.asarray(rows, dtype=np.int64)
        n = self.records
        breaks = _run_breaks(rows)
        if len(breaks) >= _RUNS_MAX:  # many runs: the vectorised gather (over the concatenation)
            return (self.concat(other) if other.records else self)._gather(rows)
        # A few runs of consecutive records (an ingest that added or changed a few files): each
        # run's entries are copied as one slice. The gather builds two index arrays of every entry
        # (8.8 M at 100k chunks), whose fresh memory made it vary 0.04-0.25 s.
        sizes = np.concatenate([np.diff(self.ptr), np.diff(other.ptr)])[rows]
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=ptr[1:])
        pieces: list[tuple[TermCounts, int, int]] = []  # (part, first entry, end entry)
        cut = np.concatenate([[0], breaks, [len(rows)]]).tolist()
        for a, b in pairwise(cut):
            if b <= a:
                continue
            # a run of consecutive rows: it may start in `self` and go on into `other`
            first, last = int(rows[a]), int(rows[b - 1])
            if first < n:
                pieces.append((self, int(self.ptr[first]), int(self.ptr[min(last, n - 1) + 1])))
            if last >= n:
                lo = max(first, n) - n
                pieces.append((other, int(other.ptr[lo]), int(other.ptr[last - n + 1])))
        lengths = np.concatenate([self.lengths, other.lengths])[rows]
        terms = _joined([(p.terms, a, b) for p, a, b in pieces], self.terms)
        tfs = _joined([(p.tfs, a, b) for p, a, b in pieces], self.tfs)
        return TermCounts(ptr, terms, tfs, lengths)

    def concat(self, other: TermCounts) -> TermCounts:
        return TermCounts(np.concatenate([self.ptr, other.ptr[1:] + self.ptr[-1]]),
                          np.concatenate([self.terms, other.terms]), np.concatenate([self.tfs, other.tfs]),
                          np.concatenate([self.lengths, other.lengths]))

    def compact(self, vocab: dict[str, int]) -> tuple[TermCounts, dict[str, int]]:
        """Drop the terms no record holds any more (they pile up as files change) and
        renumber the rest in their old order."""
        used = np.bincount(self.terms, minlength=len(vocab)) > 0
        if used.all():
            return self, vocab
        new_id = np.cumsum(used) - 1
        names = sorted(vocab, key=vocab.__getitem__)
        kept = {t: int(new_id[i]) for i, t in enumerate(names) if used[i]}
        return TermCounts(self.ptr, new_id[self.terms].astype(np.int32), self.tfs, self.lengths), kept

    def save(self, folder: Path) -> None:
        for name in _COUNTS:
            np.save(folder / f"{name}.counts.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> TermCounts | None:
        try:
            # Mapped, not read: a rebuild copies what it keeps into new arrays anyway, and the file's
            # pages are in the page cache, where reading them meant first touching as much fresh
            # memory (55 MB at 100k chunks).
            arrays = [np.load(folder / f"{n}.counts.npy", mmap_mode="r", allow_pickle=False) for n in _COUNTS]
        except (OSError, ValueError):
            return None
        counts = cls(*arrays)
        whole = len(counts.lengths) == counts.records and counts.ptr[-1] == len(counts.terms)
        return counts if whole else None


def _run_breaks(rows: np.ndarray) -> np.ndarray:
    """Where in `rows` a run of consecutive record numbers ends and the next begins."""
    return np.flatnonzero(np.diff(rows) != 1) + 1


def _joined(spans: list[tuple[np.ndarray, int, int]], like: np.ndarray) -> np.ndarray:
    """The slices `values[a:b]` of `spans`, one after another, in one new array (of `like`'s
    dtype when there are none)."""
    if not spans:
        return like[:0].copy()
    return np.concatenate([values[a:b] for values, a, b in spans])


def lucene_matrix(counts: TermCounts, n_vocab: int, k1: float = K1, b: float = B,
                  second: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The records x terms BM25 weight matrix in CSC form (data, indices, indptr): per term,
    the records that hold it in ascending order with their weights. bm25s's "lucene" method,
    idf = log(1 + (N - df + 0.5) / (df + 0.5)) in float64 rounded to float32, weight =
    idf * tf / (k1 * (1 - b + b * len / avg_len) + tf) in float64 rounded to float32.

    `second`: per term id, True for the terms of a second field (the CJK character bigrams,
    core/tokens.index_terms). Each field's weights are normalised by the record's length in
    that field against the field's average over the records that have it, so the bigrams of
    a Chinese chunk do not make its words look like those of a long record (BM25F's per-field
    length). Without any such term the matrix is exactly the one-field one."""
    n = counts.records
    df = np.bincount(counts.terms, minlength=n_vocab)
    # math.log as bm25s computes it (numpy's vectorised log may differ in the last bit), once
    # per distinct document frequency: there are far fewer of those than terms
    dfs, which = np.unique(df, return_inverse=True)
    idf = np.asarray([math.log(1 + (n - d + 0.5) / (d + 0.5)) if d else 0.0 for d in dfs.tolist()],
                     dtype=np.float32)[which]
    rec = np.repeat(np.arange(n, dtype=np.int32), np.diff(counts.ptr))
    lengths = counts.lengths.astype(np.float64)
    at = rec  # per entry: where its record's norm in its field is in `norm`
    norm2 = np.zeros(0)
    if second is not None and second.any():
        in_second = second[counts.terms]
        len2 = np.bincount(rec, weights=counts.tfs * in_second, minlength=n)
        lengths = lengths - len2
        has2 = len2 > 0
        norm2 = k1 * ((1 - b) + b * len2 / (len2[has2].mean() if has2.any() else 1.0))
        at = rec + in_second * np.int64(n)
    avg = lengths.mean() if n else 1.0
    norm = np.concatenate([k1 * ((1 - b) + b * lengths / avg), norm2])  # per record, then field 2
    idf64 = idf.astype(np.float64)
    weight = np.empty(len(counts.terms), dtype=np.float32)
    # In blocks: the float64 temporaries of all 8.8 M entries of a 100k-chunk index were
    # ~70 MB each, and first-touching that much fresh memory made this take 0.2-0.45 s.
    for s in range(0, len(weight), _BLOCK):
        e = s + _BLOCK
        tf = counts.tfs[s:e].astype(np.float64)
        weight[s:e] = idf64[counts.terms[s:e]] * (tf / (norm[at[s:e]] + tf))
    # Records x terms (CSR, as the counts are kept) turned into terms x records (CSC): a
    # stable sort by term, which keeps records ascending within a term.
    if len(weight) <= NUMPY_SORT_MAX:
        # NumPy's stable argsort: cheaper than importing SciPy for an index of a few thousand
        # chunks, whose every one-file update would pay that import
        order = np.argsort(counts.terms, kind="stable")
        indptr = np.zeros(n_vocab + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])  # each term's entries: its document frequency
        return weight[order], rec[order], indptr
    # SciPy's conversion, a counting sort in C++: 0.03 s for 6.9 M entries at 100k chunks,
    # where the stable argsort and the two gathers after it took 0.3 s of every update.
    import scipy.sparse as sp

    csc = sp.csr_matrix((weight, counts.terms, counts.ptr), shape=(n, n_vocab)).tocsc()
    return (np.asarray(csc.data, dtype=np.float32), np.asarray(csc.indices, dtype=np.int32),
            np.asarray(csc.indptr, dtype=np.int64))


def save_terms(folder: Path, vocab: dict[str, int]) -> None:
    """The vocabulary as its terms in id order, one per line: read back ten times faster
    than bm25s's JSON object (a tokenizer term never holds a line break)."""
    (folder / TERMS_FILE).write_text("\n".join(sorted(vocab, key=vocab.__getitem__)), encoding="utf-8")


def load_terms(folder: Path) -> dict[str, int]:
    """The vocabulary saved by `save_terms`, or bm25s's `vocab.index.json` in an older index."""
    path = folder / TERMS_FILE
    if path.exists():
        text = path.read_text(encoding="utf-8")
        return {t: i for i, t in enumerate(text.split("\n"))} if text else {}
    vocab: dict[str, int] = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
    return vocab


def save_bm25s(folder: Path, counts: TermCounts, vocab: dict[str, int], k1: float = K1, b: float = B,
               second: np.ndarray | None = None) -> None:
    """Write the matrix (`second`: as for `lucene_matrix`) and parameters in bm25s's layout
    (what `SavedScores` reads), and the vocabulary with `save_terms`."""
    data, indices, indptr = lucene_matrix(counts, len(vocab), k1, b, second)
    for name, arr in (("data", data), ("indices", indices), ("indptr", indptr)):
        np.save(folder / f"{name}.csc.index.npy", arr, allow_pickle=False)
    save_terms(folder, vocab)
    params = {"k1": k1, "b": b, "delta": 0.5, "method": "lucene", "idf_method": "lucene", "dtype": "float32",
              "int_dtype": "int32", "num_docs": counts.records, "version": "localrag", "backend": "numpy"}
    (folder / "params.index.json").write_text(json.dumps(params, indent=4))


@dataclass
class SavedScores:
    """A saved BM25 index read for queries without importing bm25s (its import pulls in
    numba, ~0.4 s of every `rag search` start): the per-term weights of the CSC matrix
    summed over the query's term ids, in the same order and dtype as bm25s's numpy
    backend, so results are bit-identical."""

    vocab_dict: dict[str, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    num_docs: int

    def get_scores(self, token_ids: list[int]) -> np.ndarray:
        q = np.asarray(token_ids, dtype=np.int64)
        scores = np.zeros(self.num_docs, dtype=self.data.dtype)
        for start, end in zip(self.indptr[q], self.indptr[q + 1], strict=True):
            np.add.at(scores, self.indices[start:end], self.data[start:end])
        return scores


def load_saved_scores(folder: Path) -> SavedScores | None:
    """The query side of a saved index, or None when it is not the plain eager-scored kind
    (another bm25s method needs more than the matrix: bm25s loads it)."""
    try:
        params = json.loads((folder / "params.index.json").read_text())
        if params.get("method") not in ("lucene", "robertson", "atire") or params.get("num_docs") is None:
            return None
        vocab = load_terms(folder)
        data, indices, indptr = (np.load(folder / f"{n}.csc.index.npy", allow_pickle=False)
                                 for n in ("data", "indices", "indptr"))
    except (OSError, ValueError):
        return None
    return SavedScores(vocab, data, indices, indptr, num_docs=int(params["num_docs"]))
