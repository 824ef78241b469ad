"""Train the LTR model from the user's own corpus, with no labels.

After an ingest that changed the corpus enough (first ingest, or at least
`search.ltr_retrain_fraction` of the chunks added or removed since the last training),
pseudo-queries are made from the corpus itself, each with the chunk it came from as the
relevant one (`PseudoQuery.how`):
- `crop`: a span cropped out of one of the chunk's sentences (inverse cloze with random
  cropping, as Contriever trains its encoder): a few words, or a run of CJK characters,
  then scrambled (words dropped and shuffled) so that it shares words, not word order;
- `terms`: the English terms of a sentence in mixed Chinese-English text, which is what an
  English question over Chinese notes shares with them;
- `heading`: the last part of the chunk's heading path, with every chunk of that section relevant;
- `llm`: a question a capable LLM wrote about the chunk (up to `search.ltr_llm_questions`,
  with eval/synthetic.py's prompt and filter), only where `core.llm.too_small` does not rule
  the configured model out; replies are cached in the index, so a retrain asks only about new
  text. When Ollama does not answer its /api/tags or lacks the model, or the first request
  fails, nothing (more) is asked and the ranker trains on the others; the report says why
  (`llm_questions`).
Each query runs through the pipeline without the LTR stage (the same candidate lists the
stage sees at query time), the features of its candidates form one lambdarank group, and
part of the queries is held out. The model is saved either way, but marked `active` only
when it beats the coarse order on the held-out queries by `search.ltr_min_gain` nDCG@10 and,
given LLM_GATE_MIN or more LLM-written ones, does not rank those worse (`gate`); otherwise the
query path keeps the coarse order and says why (`rag status`, `--trace`).
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

from core import llmcall
from core.errors import RagError
from core.index import Index
from core.keyword import tokenize
from core.lang import CJK_RANGES, cjk_share
from core.llm import LLM, get_llm, probe_ollama, too_small
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
    how: str  # crop | terms | heading | llm


@dataclass
class LLMQuestions:
    """What asking the LLM for questions gave, or why it was not asked."""

    state: str  # off | skipped (no capable LLM) | failed (a request failed) | asked
    note: str  # one line for the report: why not, or what was kept
    queries: list[PseudoQuery] = field(default_factory=list)
    asked: int = 0  # chunks whose question was asked for (cache hits included)
    requests: int = 0  # requests made (cache hits excluded)
    rejected: dict[str, int] = field(default_factory=dict)  # eval/synthetic.clean_question's reasons
    over_budget: int = 0  # not asked: past search.ltr_llm_budget_s (asked at a later retrain)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["queries"]
        return d | {"kept": len(self.queries)}


@dataclass
class SelfTrainResult:
    trained: bool
    active: bool
    reason: str
    queries: int = 0
    seconds: float = 0.0
    heldout: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    llm_questions: dict[str, Any] = field(default_factory=dict)  # LLMQuestions.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if not self.trained:
            return f"ranker: {self.reason}"
        h = self.heldout
        state = "on" if self.active else "off"
        written = f" ({self.by_kind['llm']} written by the LLM)" if self.by_kind.get("llm") else ""
        # a failed LLM is news (the user configured one); off or too small is the setting's doing
        failed = self.llm_questions.get("state") == "failed"
        tail = f"; LLM questions {self.llm_questions['note']}" if failed else ""
        return (
            f"ranker: self-trained on {self.queries} pseudo-queries{written} in {self.seconds:.1f}s; "
            f"held-out nDCG@10 {h.get('with_ranker', 0):.3f} vs coarse {h.get('without_ranker', 0):.3f} "
            f"-> LTR {state}{tail}"
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


def chunks_by_source(index: Index) -> dict[str, list[Record]]:
    """Every chunk, per document, in document order (read once: the cut queries and the LLM's
    chunks are both drawn from it)."""
    by_source: dict[str, list[Record]] = {}
    for r in index.docs.iter_records(("chunk",)):
        by_source.setdefault(r.source, []).append(r)
    for recs in by_source.values():
        recs.sort(key=lambda r: r.start)
    return by_source


def cut_queries(by_source: dict[str, list[Record]], n: int, seed: int = 0) -> list[PseudoQuery]:
    """Up to `n` queries cut from the chunks (`chunks_by_source`; no LLM), drawn round-robin over
    the documents so a long file does not dominate, deterministic for a seed and a corpus."""
    rng = random.Random(seed)
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


# --- LLM-written questions ----------------------------------------------------------------
# Fewer words than this (a heading, a table row, a caption) give the LLM nothing to ask about.
MIN_PASSAGE_WORDS = 12


def question_llm(settings: Settings) -> tuple[LLM | None, str]:
    """The LLM to write questions, or None and why not: off, none available, or too small by
    `core.llm.too_small` (the rule `answer.mode = auto` follows; no model is loaded to decide)."""
    if settings.search.ltr_llm_questions <= 0:
        return None, "off (search.ltr_llm_questions = 0)"
    try:
        llm = get_llm(settings)
    except RagError as e:
        return None, f"skipped: no LLM is available ({e})"
    small = too_small(settings, llm)
    if small:
        return None, f"skipped: {small} is too small to write them"
    return llm, f"{llm.backend} model {llm.model}"


def question_chunks(by_source: dict[str, list[Record]], n: int, seed: int = 0) -> list[Record]:
    """Up to `n` chunks long enough to ask about, round-robin over the documents as the cut
    queries are, deterministic for a seed and a corpus. A stream of its own: the cut queries do
    not change when this is switched on, and the two favour different chunks."""
    rng = random.Random(f"llm-questions:{seed}")
    pools = [list(v) for _, v in sorted(by_source.items())]
    for p in pools:
        rng.shuffle(p)
    out: list[Record] = []
    while len(out) < n and any(pools):
        for pool in pools:
            # tokenized as drawn, not all up front: a large corpus has 100k chunks and n is ~40
            while pool and len(out) < n:
                rec = pool.pop()
                if len(tokenize(rec.text)) >= MIN_PASSAGE_WORDS:
                    out.append(rec)
                    break
    return out


def _job(llm: LLM, rec: Record) -> llmcall.Job:
    # imported here, as the filter below: most ingests ask no LLM for questions
    from eval.synthetic import PASSAGE_CHARS, QUESTION_TOKENS, messages

    msgs = messages(rec.text[:PASSAGE_CHARS])
    # keyed by the whole request (backend, model, prompt, limits): a new model or prompt asks again
    return llmcall.Job(llmcall.cache_key(llm, msgs, QUESTION_TOKENS, None, 0.0), msgs, QUESTION_TOKENS,
                       rec, "ltr-question")


def _unreachable(llm: LLM, settings: Settings) -> str | None:
    """Why an Ollama model cannot be asked now, or None: its server's /api/tags is asked first,
    within core.llm.PROBE_TIMEOUT_S (a request waits up to llm.timeout_s, 120 s: an Ollama on a
    machine that is off, behind a firewall that drops, would hold `rag ingest` that long)."""
    if llm.backend != "ollama":
        return None
    probe = probe_ollama(settings)
    if not probe.reachable:
        return probe.error
    if not probe.has(llm.model):
        return probe.missing(llm.model)
    return None


def _first_request(llm: LLM, job: llmcall.Job, cache: llmcall.Cache) -> tuple[str, str | None]:
    """(reply, None), or ("", why) when the request failed: made alone, so a server that is down
    costs one failed request, not `llm_concurrency` of them, and one warning."""
    try:
        raw = llm.complete(job.messages, max_tokens=job.max_tokens, temperature=job.temperature)
    except Exception as e:  # whatever the backend raised, the ranker trains without these
        return "", str(e) or type(e).__name__
    if llmcall.nonempty(raw):
        cache.cache_put(job.key, raw)
    return raw, None


def llm_questions(index: Index, settings: Settings, by_source: dict[str, list[Record]],
                  taken: set[str], progress: Progress | None = None) -> LLMQuestions:
    """One question per drawn chunk from a capable LLM, cleaned and filtered as a synthetic set's
    (eval/synthetic.py), that chunk the relevant one (grade 2, as a cut query's own chunk).
    `taken`: the texts of the other pseudo-queries (a duplicate is dropped). Never raises
    because of the LLM: on a failure the questions got so far are kept and `note` says why."""
    llm, why = question_llm(settings)
    if llm is None:
        return LLMQuestions("off" if settings.search.ltr_llm_questions <= 0 else "skipped", why)
    s = settings.search
    # one job per distinct text: a chunk repeated across files (a licence, a footer) is asked once
    jobs = list({j.key: j for j in (_job(llm, rec) for rec in
                                     question_chunks(by_source, s.ltr_llm_questions, s.ltr_seed))}.values())
    out = LLMQuestions("asked", why, asked=len(jobs))
    replies: dict[str, str] = {}  # job key -> reply

    def got(job: llmcall.Job, raw: str) -> None:
        replies[job.key] = raw
        if progress:
            progress("questions", len(replies), len(jobs))

    docs = index.docs
    todo: list[llmcall.Job] = []
    for job in jobs:
        hit = docs.cache_get(job.key)
        if hit is None:
            todo.append(job)
        else:
            got(job, hit)
    cached = len(replies)
    error = _unreachable(llm, settings) if todo else None
    if todo and error is None:
        t0 = time.perf_counter()
        raw, error = _first_request(llm, todo[0], docs)
        out.requests += 1
        if error is None:
            got(todo[0], raw)
            rest = todo[1 : budgeted(time.perf_counter() - t0, s.ltr_llm_budget_s,
                                     settings.ingest.llm_concurrency, len(todo))]
            out.over_budget = len(todo) - 1 - len(rest)
            stats = llmcall.CallStats()
            try:
                for job, rec in llmcall.run_jobs(llm, rest, docs, settings.ingest.llm_concurrency,
                                                 stats=stats):
                    got(job, rec.raw)
            except RagError as e:  # the server went away or timed out: the same for every later call
                error = str(e)
            out.requests += stats.calls
    out.queries, out.rejected = _kept(jobs, replies, taken)
    if error is not None:
        out.state = "failed"
        head = f"stopped after {len(replies)} of {len(jobs)}" if replies else "skipped"
        out.note = f"{head}: {llm.backend} model {llm.model} failed ({error})"
        log.warning("LLM questions for the ranker %s; it trains on the other pseudo-queries%s", out.note,
                    " and the questions got so far" if out.queries else "")
    else:
        bad = ", ".join(f"{k} {v}" for k, v in sorted(out.rejected.items()))
        late = (f"; {out.over_budget} left for a later retrain (search.ltr_llm_budget_s = "
                f"{s.ltr_llm_budget_s:g})" if out.over_budget else "")
        out.note = (f"{len(out.queries)} of {len(jobs)} kept ({why}; {out.requests} asked, {cached} from the "
                    f"cache{late}{'; rejected: ' + bad if bad else ''})")
    return out


def budgeted(first_s: float, budget_s: float, concurrency: int, n: int) -> int:
    """How many of `n` requests to make in all, the first (which took `first_s`) included, so
    that the rest fit in what is left of `budget_s` at `concurrency` at once: at least the first,
    at most `n`."""
    left = max(0.0, budget_s - first_s)
    fit = int(left / max(first_s, 1e-3)) * max(1, concurrency)
    return max(1, min(n, 1 + fit))


def _kept(jobs: list[llmcall.Job], replies: dict[str, str], taken: set[str],
          ) -> tuple[list[PseudoQuery], dict[str, int]]:
    """The usable questions and why the others were rejected (eval/synthetic.clean_question, or a
    duplicate of `taken` or of each other), in the order of `jobs`, not of the replies' arrival:
    cached ones come first, and the query ids, hence the training order, must not depend on it."""
    from eval.synthetic import clean_question

    seen = set(taken)
    kept: list[PseudoQuery] = []
    rejected: dict[str, int] = {}
    for job in jobs:
        if job.key not in replies:
            continue
        rec: Record = job.tag  # type: ignore[assignment]
        q, why = clean_question(replies[job.key], rec.text)
        if q is not None and q in seen:
            q, why = None, "duplicate"
        if q is None:
            rejected[why] = rejected.get(why, 0) + 1
            continue
        seen.add(q)
        kept.append(PseudoQuery(f"q{len(kept):05d}", q, {rec.id: 2}, "llm"))
    return kept, rejected


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
    by_source = chunks_by_source(index)
    queries = cut_queries(by_source, s.ltr_self_queries, seed=s.ltr_seed)
    # more pseudo-queries like the others: the same groups, the same folds (by chunk), the same gate
    asked = llm_questions(index, settings, by_source, {q.text for q in queries}, progress)
    queries += asked.queries
    llm_report = asked.to_dict()
    kinds: dict[str, int] = {}
    for q in queries:
        kinds[q.how] = kinds.get(q.how, 0) + 1
    groups = collect(index, settings, queries, progress)
    usable = [g for g in groups if g.y.max(initial=0) > 0]
    if len(usable) < 10:
        why = f"only {len(usable)} pseudo-queries found their chunk; not trained"
        return SelfTrainResult(False, False, why, len(queries), time.perf_counter() - t0, by_kind=kinds,
                               llm_questions=llm_report)
    from eval.train_ranker import cross_validate, save, train_groups

    # the gate: every pseudo-query held out once, ranked as the query path ranks (the mix); the
    # model itself (all queries) is fitted beside the folds: the six fits are independent and
    # single-threaded, and the encoder that had both cores is done (0.87 -> 0.57 s on 2 cores)
    workers = max(1, min(os.cpu_count() or 1, CV_FOLDS))
    with ThreadPoolExecutor(1) as pool:
        whole = pool.submit(train_groups, groups, seed=s.ltr_seed, holdout=0.0)
        llm = {q.qid for q in queries if q.how == "llm"}
        cv = cross_validate(groups, CV_FOLDS, seed=s.ltr_seed, mix=s.ltr_self_mix, workers=workers,
                            subsets={"llm": llm} if llm else None)
        booster, report = whole.result()
    held = {k: cv[k] for k in ("without_ranker", "with_ranker")}
    report.update({"heldout_ndcg@10": held, "heldout_queries": cv["queries"], "cv_folds": cv["folds"],
                   "gain_per_fold": cv["gain_per_fold"]})
    if "llm" in cv.get("subsets", {}):
        report["heldout_ndcg@10_llm"] = cv["subsets"]["llm"]
    active, reason = gate(cv, s.ltr_min_gain)
    report.update({"source": SOURCE, "active": active, "reason": reason, "pseudo_queries": kinds,
                   "llm_questions": llm_report, "corpus_chunks": len(chunk_ids)})
    dest = ranker_path(settings)
    with write_lock(index.path, "ranker training"):  # one writer at a time (core/lock.py)
        save(booster, dest, index.embedder.name, report)
        (dest / IDS_FILE).write_text(json.dumps(chunk_ids))
    secs = time.perf_counter() - t0
    log.info("%s (%.1fs)", reason, secs)
    return SelfTrainResult(True, active, reason, len(queries), round(secs, 2), dict(held), kinds, llm_report)


# LLM-written questions read like a user's, the cut pseudo-queries do not: with at least this
# many of them held out, the ranker must also not rank them worse than the coarse order. On
# sci-en the cut queries alone measured +0.073 held out while the labelled questions moved +0.012
# (dev) and -0.008 (test): what the ranker learns from word crops need not carry to questions.
LLM_GATE_MIN = 20


def gate(cv: dict[str, Any], min_gain: float) -> tuple[bool, str]:
    """The switch-on decision and why, from `cross_validate`'s held-out figures: the gain over
    the coarse order on all pseudo-queries must reach `min_gain` (search.ltr_min_gain), and on
    the LLM-written ones among them (its `llm` subset), when there are LLM_GATE_MIN or more,
    must not be negative."""
    gain = cv["with_ranker"] - cv["without_ranker"]
    folds = cv["folds"]
    if gain < min_gain:
        return False, (f"self-trained ranker kept off: nDCG@10 {gain:+.3f} vs the coarse order on held-out "
                       f"pseudo-queries ({folds}-fold; needs {min_gain:+.3f}, search.ltr_min_gain)")
    llm = cv.get("subsets", {}).get("llm") or {}
    if llm.get("queries", 0) < LLM_GATE_MIN:
        return True, (f"self-trained ranker beats the coarse order on held-out pseudo-queries by {gain:+.3f} "
                      f"nDCG@10 ({folds}-fold)")
    lg = llm["with_ranker"] - llm["without_ranker"]
    n = llm["queries"]
    if lg < 0:
        return False, (f"self-trained ranker kept off: {gain:+.3f} nDCG@10 on held-out pseudo-queries, but "
                       f"{lg:+.3f} on the {n} LLM-written questions among them ({folds}-fold)")
    return True, (f"self-trained ranker beats the coarse order on held-out pseudo-queries by {gain:+.3f} "
                  f"nDCG@10, {lg:+.3f} on the {n} LLM-written questions among them ({folds}-fold)")


def _active(settings: Settings) -> bool:
    man = _manifest(ranker_path(settings))
    return bool(man) and man.get("report", {}).get("active", True) is not False
