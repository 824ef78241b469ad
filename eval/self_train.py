"""Train the LTR model from the user's own corpus, with no labels and no LLM.

After an ingest that changed the corpus enough (first ingest, or at least
`search.ltr_retrain_fraction` of the chunks added or removed since the last training),
pseudo-queries are cut from the corpus itself, each with the chunk it came from as the
relevant one:
- a span cropped out of one of the chunk's sentences (inverse cloze with random
  cropping, as Contriever trains its encoder): a few words, or a run of CJK characters,
  then scrambled (words dropped and shuffled) so that it shares words, not word order;
- the English terms of a sentence in mixed Chinese-English text, which is what an English
  question over Chinese notes shares with them;
- the last part of the chunk's heading path, with every chunk of that section relevant.
Each query runs through the pipeline without the LTR stage (the same candidate lists the
stage sees at query time), the features of its candidates form one lambdarank group, and
part of the queries is held out. The model is saved either way, but marked `active` only
when it beats the coarse order on the held-out queries by `search.ltr_min_gain` nDCG@10;
otherwise the query path keeps the coarse order and says why (`rag status`, `--trace`).
A ranker trained from labelled data (`rag train-ranker`) is never replaced.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.index import Index
from core.keyword import tokenize
from core.lang import CJK_RANGES, cjk_share
from core.lock import write_lock
from core.settings import Settings
from core.tokens import cut
from core.types import Record
from ingest.chunking import _split_sentences
from retrieval import features
from retrieval.rerank import MANIFEST_FILE, prior_scores, ranker_path
from retrieval.rerank import SELF_TRAINED as SOURCE
from retrieval.state import BEFORE_LTR, Plan, Query

if TYPE_CHECKING:
    from eval.train_ranker import Group

log = logging.getLogger(__name__)

IDS_FILE = "trained_ids.json"
ROUNDS = 3  # at most this many pseudo-queries per chunk
_CJK_RUN = re.compile(f"[{CJK_RANGES}]+")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#.\-]*[A-Za-z0-9+#]|[A-Za-z]")

Progress = Callable[[str, int, int], None]


# The switch-on gate's folds: each pseudo-query is held out once (eval/train_ranker.cross_validate).
CV_FOLDS = 5


@dataclass
class PseudoQuery:
    qid: str
    text: str
    relevant: dict[str, int]
    how: str  # crop | terms | heading


@dataclass
class SelfTrainResult:
    trained: bool
    active: bool
    reason: str
    queries: int = 0
    seconds: float = 0.0
    heldout: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if not self.trained:
            return f"ranker: {self.reason}"
        h = self.heldout
        state = "on" if self.active else "off"
        return (
            f"ranker: self-trained on {self.queries} pseudo-queries in {self.seconds:.1f}s; held-out nDCG@10 "
            f"{h.get('with_ranker', 0):.3f} vs coarse {h.get('without_ranker', 0):.3f} -> LTR {state}"
        )


# --- when --------------------------------------------------------------------------------
def _manifest(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((path / MANIFEST_FILE).read_text())
        return data
    except (OSError, json.JSONDecodeError):
        return {}


def _chunk_ids(index: Index) -> list[str]:
    """Every chunk id: from the keyword index when this process just rebuilt it (an ingest),
    else from the document store."""
    built = index.keyword.built_chunk_ids()
    return built if built is not None else index.docs.ids_of_kind("chunk")


def due(index: Index, settings: Settings) -> tuple[bool, str]:
    """Whether to (re)train now, and why (or why not)."""
    s = settings.search
    if not s.ltr or not s.ltr_self_train:
        return False, "self-training is off (search.ltr / search.ltr_self_train)"
    path = ranker_path(settings)
    man = _manifest(path)
    if man and man.get("report", {}).get("source") != SOURCE:
        return False, f"a ranker trained from labelled data is at {path}; it takes precedence"
    ids = set(_chunk_ids(index))
    if len(ids) < s.ltr_min_chunks:
        return (
            False,
            f"{len(ids)} chunks are too few to learn from (search.ltr_min_chunks = {s.ltr_min_chunks})",
        )
    if not man:
        return True, "no ranker yet"
    if list(man.get("features", [])) != list(features.FEATURES):
        return True, "the ranker was trained on another feature list"
    try:
        before = set(json.loads((path / IDS_FILE).read_text()))
    except (OSError, json.JSONDecodeError):
        return True, "the ranker does not record what it was trained on"
    changed = len(before ^ ids) / max(1, len(ids))
    if changed >= s.ltr_retrain_fraction:
        return True, f"{changed:.0%} of the chunks changed since the ranker was trained"
    return False, f"{changed:.0%} of the chunks changed since the ranker was trained (retrain at " \
        f"{s.ltr_retrain_fraction:.0%})"


# --- what --------------------------------------------------------------------------------
def _crop(sentence: str, rng: random.Random) -> str:
    """A contiguous piece of a sentence: 8-24 CJK characters of Chinese text, 4-12 words
    of other text (the whole sentence when it is shorter)."""
    s = " ".join(sentence.split())
    if cjk_share(s) >= 0.5:
        n = rng.randint(8, 24)
        if len(s) <= n:
            return s
        a = rng.randint(0, len(s) - n)
        return s[a : a + n]
    words = s.split()
    n = rng.randint(4, 12)
    if len(words) <= n:
        return s
    a = rng.randint(0, len(words) - n)
    return " ".join(words[a : a + n])


def _scramble(text: str, rng: random.Random) -> str:
    """The crop as a bag of its words: about a third dropped (at least two kept), the rest
    shuffled. A question shares words with the passage that answers it, rarely their order;
    trained on verbatim crops the ranker leaned on the exact-phrase feature (70% of its gain
    on an English set) and then ranked real questions worse than the coarse order."""
    words = [w for w in (cut(text) if cjk_share(text) >= 0.5 else text.split()) if w.strip()
             and any(c.isalnum() for c in w)]
    if len(words) <= 2:
        return text
    kept = [w for w in words if rng.random() >= 1 / 3] or words[:2]
    if len(kept) < 2:
        kept = rng.sample(words, 2)
    rng.shuffle(kept)
    return " ".join(kept)


def _english_terms(sentence: str) -> str:
    """The English words of a mostly Chinese sentence ("" when there are fewer than two)."""
    words = [w for w in _LATIN_WORD.findall(sentence) if len(w) > 1]
    return " ".join(dict.fromkeys(words)) if len(words) >= 2 else ""


def _sentences(rec: Record) -> list[str]:
    text = rec.text
    out = []
    for a, b in _split_sentences(text, 0, len(text)):
        s = text[a:b].strip()
        if len(tokenize(s)) >= 3:
            out.append(s)
    return out


def pseudo_queries(index: Index, n: int, seed: int = 0) -> list[PseudoQuery]:
    """Up to `n` queries, drawn round-robin over the documents so a long file does not
    dominate, deterministic for a seed and a corpus."""
    rng = random.Random(seed)
    by_source: dict[str, list[Record]] = {}
    for r in index.docs.iter_records(("chunk",)):
        by_source.setdefault(r.source, []).append(r)
    for recs in by_source.values():
        recs.sort(key=lambda r: r.start)
    sections: dict[tuple[str, str], list[str]] = {}
    for src, recs in by_source.items():
        for r in recs:
            if r.title:
                sections.setdefault((src, r.title), []).append(r.id)
    out: list[PseudoQuery] = []
    seen: set[str] = set()
    for _ in range(ROUNDS):  # a small corpus gives each chunk a few queries, a large one one
        pools = [list(v) for _, v in sorted(by_source.items())]
        for p in pools:
            rng.shuffle(p)
        while len(out) < n and any(pools):
            for pool in pools:
                if not pool or len(out) >= n:
                    continue
                q = _one_query(pool.pop(), sections, rng)
                if q is None or q.text in seen:
                    continue
                seen.add(q.text)
                q.qid = f"p{len(out):05d}"
                out.append(q)
    return out


def _one_query(
    rec: Record, sections: dict[tuple[str, str], list[str]], rng: random.Random
) -> PseudoQuery | None:
    sents = _sentences(rec)
    roll = rng.random()
    heading = rec.title.split(" > ")[-1].strip() if rec.title else ""
    members = sections.get((rec.source, rec.title), [])
    if roll < 0.15 and heading and len(tokenize(heading)) >= 2 and len(members) <= 5:
        return PseudoQuery("", heading, {i: 1 for i in members} | {rec.id: 2}, "heading")
    if not sents:
        return None
    sent = rng.choice(sents)
    if roll < 0.4 and cjk_share(sent) >= 0.3 and (terms := _english_terms(sent)):
        return PseudoQuery("", terms, {rec.id: 2}, "terms")
    text = _scramble(_crop(sent, rng), rng)
    return PseudoQuery("", text, {rec.id: 2}, "crop") if len(tokenize(text)) >= 2 else None


# --- how ---------------------------------------------------------------------------------
def collect(
    index: Index, settings: Settings, queries: list[PseudoQuery], progress: Progress | None
) -> list[Group]:
    """One training group per query: the candidates the LTR stage would see, labelled."""
    # imported here: every `rag ingest` asks `due` and most do not train (a one-file update of
    # 100k chunks does not load the query pipeline)
    from eval.train_ranker import Group
    from retrieval.pipeline import retrieve

    keep = settings.search.coarse_keep
    vecs = index.embedder.embed([q.text for q in queries]) if queries else np.zeros((0, 1))
    groups: list[Group] = []
    for n, (q, v) in enumerate(zip(queries, vecs, strict=True), 1):
        res = retrieve(q.text, settings, index, keep, Plan([Query(q.text, vector=v)]),
                       skip=BEFORE_LTR)
        ids: list[str | None] = [h.record.id for h in res.hits]
        y = np.array([q.relevant.get(i, 0) if i else 0 for i in ids], dtype=np.int32)
        x = features.compute(res.keyword_query or q.text, res.hits, 1)
        groups.append(Group(q.qid, x, y, ids, q.relevant, prior_scores(res.hits)))
        if progress and (n % 25 == 0 or n == len(queries)):
            progress("ranker", n, len(queries))
    return groups


def self_train(index: Index, settings: Settings, progress: Progress | None = None,
               force: bool = False) -> SelfTrainResult:
    """Train (when due, or `force`), gate on held-out queries, save beside the index."""
    go, why = due(index, settings)
    if not go and not (force and "labelled" not in why):
        return SelfTrainResult(False, _active(settings), why)
    t0 = time.perf_counter()
    # read before training: its queries reload the keyword index, after which the ids come from
    # the store again (0.09 s a read at 100k chunks, and they were read twice below)
    chunk_ids = _chunk_ids(index)
    s = settings.search
    queries = pseudo_queries(index, s.ltr_self_queries, seed=s.ltr_seed)
    kinds: dict[str, int] = {}
    for q in queries:
        kinds[q.how] = kinds.get(q.how, 0) + 1
    groups = collect(index, settings, queries, progress)
    usable = [g for g in groups if g.y.max(initial=0) > 0]
    if len(usable) < 10:
        why = f"only {len(usable)} pseudo-queries found their chunk; not trained"
        return SelfTrainResult(False, False, why,
                               len(queries), time.perf_counter() - t0, by_kind=kinds)
    from eval.train_ranker import cross_validate, save, train_groups

    # the gate: every pseudo-query held out once, ranked as the query path ranks (the mix); the
    # model itself (all queries) is fitted beside the folds: the six fits are independent and
    # single-threaded, and the encoder that had both cores is done (0.87 -> 0.57 s on 2 cores)
    workers = max(1, min(os.cpu_count() or 1, CV_FOLDS))
    with ThreadPoolExecutor(1) as pool:
        whole = pool.submit(train_groups, groups, seed=s.ltr_seed, holdout=0.0)
        cv = cross_validate(groups, CV_FOLDS, seed=s.ltr_seed, mix=s.ltr_self_mix, workers=workers)
        booster, report = whole.result()
    held = {k: cv[k] for k in ("without_ranker", "with_ranker")}
    report.update({"heldout_ndcg@10": held, "heldout_queries": cv["queries"], "cv_folds": cv["folds"],
                   "gain_per_fold": cv["gain_per_fold"]})
    gain = held["with_ranker"] - held["without_ranker"]
    active = gain >= s.ltr_min_gain
    reason = (
        f"self-trained ranker beats the coarse order on held-out pseudo-queries by {gain:+.3f} nDCG@10 "
        f"({cv['folds']}-fold)"
        if active else
        f"self-trained ranker kept off: nDCG@10 {gain:+.3f} vs the coarse order on held-out "
        f"pseudo-queries ({cv['folds']}-fold; needs {s.ltr_min_gain:+.3f}, search.ltr_min_gain)"
    )
    report.update({"source": SOURCE, "active": active, "reason": reason, "pseudo_queries": kinds,
                   "corpus_chunks": len(chunk_ids)})
    dest = ranker_path(settings)
    with write_lock(index.path, "ranker training"):  # one writer at a time (core/lock.py)
        save(booster, dest, index.embedder.name, report)
        (dest / IDS_FILE).write_text(json.dumps(chunk_ids))
    secs = time.perf_counter() - t0
    log.info("%s (%.1fs)", reason, secs)
    return SelfTrainResult(True, active, reason, len(queries), round(secs, 2), dict(held), kinds)


def _active(settings: Settings) -> bool:
    man = _manifest(ranker_path(settings))
    return bool(man) and man.get("report", {}).get("active", True) is not False
