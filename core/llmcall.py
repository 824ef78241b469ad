"""The one layer for LLM calls whose replies code consumes (routing, query translation,
step-back, ingest summaries and questions): a disk cache, counting, a retry, a thread pool
and one rule for errors. Answer generation streams through the backend directly; only
`CountingLLM` sees it, to count it.

Cache. `cache_key` hashes the backend, model, messages, JSON schema, token limit and
temperature, so a change of model, prompt or any setting that shapes the prompt misses.
Callers whose prompt is a function of a few inputs key by `digest` of those inputs and a
prompt version instead (ingest: a key survives a reworded template only when the version
says so). Values live in the index's SQLite key/value table (`DocStore.cache_get/put`, the
`Cache` protocol). Only replies passing `keep` (default: non-empty) are stored, so a failed
call is asked again next time. A cache hit is not a call: it is recorded (`cached=True`,
`calls=0`) and counted nowhere.

Counting. `CallRecord.calls` is the requests one call made (0 on a hit, 2 after a retry);
`CallStats` adds them up with the seconds waited for them; `LLMCaller.calls` is the sum over
its records; `CountingLLM` counts every request an LLM object serves (streams included),
for evaluation's exact per-query figure.

Concurrency. llama.cpp serialises on one context (a lock), so its calls run one at a time;
other backends (Ollama) serve up to `workers` requests at once (`concurrency`).

Errors, the one rule:
* Any exception other than `RagError` from one request (a malformed response, a client
  bug, a connection error the backend did not map) is that call's failure: it is logged,
  put on the call's `CallRecord.error`, the reply is "" and the caller's parser falls back
  (after the retry, where one was asked for). It is never raised.
* A `RagError` from the backend (server unreachable or timing out, model missing, prompt
  over the context window) says the same of every later call, so it propagates: the user
  gets its one sentence naming the fix, and an ingest keeps the replies cached so far.
  Callers whose calls only improve a query that runs without them pass `optional=True`
  (routing, query translation, step-back: "never raises because of the LLM"): there a
  RagError is recorded and falls back like any other failure, without a retry, and the
  answer step, if it needs the LLM, reports the error itself.
* BaseExceptions (KeyboardInterrupt) pass through untouched; replies cached before stay.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from core.errors import RagError
from core.llm import LLM, Message
from core.types import hashed

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_VERSION = 1  # part of every `cache_key`: bump it to orphan all keyed replies
KEY_PREFIX = "translate:"  # `cache_key`'s namespace in the cache table (the name stays: indexes hold it)
RETRY_TEMPERATURE = 0.7  # a retry samples warmer, so it does not repeat the reply that failed its check

Check = Callable[[str], bool]


class Cache(Protocol):
    """Where replies are kept: `core.docstore.DocStore` (the index's SQLite key/value table)."""

    def cache_get(self, key: str) -> str | None: ...

    def cache_put(self, key: str, value: str) -> None: ...


def nonempty(raw: str) -> bool:
    return bool(raw.strip())


def digest(*parts: str) -> str:
    """A cache key from a call's inputs."""
    return hashed(parts, "sha256", 32)


def cache_key(llm: LLM, messages: list[Message], max_tokens: int, json_schema: dict[str, Any] | None,
              temperature: float) -> str:
    """A cache key from the whole request: backend, model, messages, schema, tokens, temperature."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "backend": llm.backend, "model": llm.model, "messages": messages,
         "schema": json_schema, "max_tokens": max_tokens, "temperature": temperature},
        sort_keys=True, ensure_ascii=False,
    )
    return KEY_PREFIX + hashlib.sha256(blob.encode()).hexdigest()


def concurrency(llm: LLM, workers: int) -> int:
    """Requests to run at once: 1 on llama.cpp (one context, serialised anyway), else `workers`."""
    return 1 if llm.backend == "llamacpp" else max(1, workers)


@dataclass
class CallRecord:
    """One call as the trace shows it: from the cache or made (with a retry, `calls` is 2)."""

    kind: str  # what the call was for: route, filter, multi-query, step-back, raptor, ...
    cached: bool
    ms: float
    raw: str  # the model's reply ("" when the call failed)
    error: str | None = None  # the last request's exception, "Type: message"
    start: float = 0.0  # perf_counter() when the call began and ended: shows which calls overlapped
    end: float = 0.0
    calls: int = 0  # requests made: 0 for a cache hit

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "cached": self.cached, "ms": round(self.ms, 1), "raw": self.raw[:300]}
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class CallStats:
    """Requests made and the wall-clock seconds spent waiting for them (concurrent calls
    overlap, so seconds / calls is the cost of one call in a run like this one). Thread-safe."""

    calls: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, calls: int, seconds: float = 0.0) -> None:
        with self._lock:
            self.calls += calls
            self.seconds += seconds


@dataclass
class Job:
    """One call to make: its cache key, the request, and the caller's handle for the reply."""

    key: str
    messages: list[Message]
    max_tokens: int
    tag: object = None
    kind: str = "llm"
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.0


def call(llm: LLM, job: Job, ok: Check = nonempty, retry: bool = False, optional: bool = False) -> CallRecord:
    """Make one call under the module's error rule (no cache here); with `retry`, a reply
    failing `ok` (a failed request included) is asked for once more, warmer."""
    t0 = time.perf_counter()
    raw, error, made = "", None, 0
    for attempt in range(2 if retry else 1):
        made += 1
        temp = job.temperature if attempt == 0 else RETRY_TEMPERATURE
        try:
            raw = llm.complete(job.messages, max_tokens=job.max_tokens, json_schema=job.json_schema,
                               temperature=temp)
            error = None
        except RagError as e:
            if not optional:
                raise
            log.warning("LLM call for %s failed: %s", job.kind, e)
            raw, error = "", f"{type(e).__name__}: {e}"
            break  # the backend cannot serve: asking again waits for the same answer
        except Exception as e:  # one call's failure must not end the run: the caller falls back
            log.warning("LLM call for %s failed (%s: %s)", job.kind, type(e).__name__, e)
            raw, error = "", f"{type(e).__name__}: {e}"
        if ok(raw):
            break
    t1 = time.perf_counter()
    return CallRecord(job.kind, False, (t1 - t0) * 1000, raw, error, t0, t1, made)


def _hit(cache: Cache | None, job: Job) -> CallRecord | None:
    t0 = time.perf_counter()
    raw = cache.cache_get(job.key) if cache is not None else None
    if raw is None:
        return None
    t1 = time.perf_counter()
    return CallRecord(job.kind, True, (t1 - t0) * 1000, raw, None, t0, t1, 0)


def run_jobs(
    llm: LLM, jobs: Sequence[Job], cache: Cache, workers: int, ok: Check = nonempty, retry: bool = False,
    keep: Check = nonempty, stats: CallStats | None = None, optional: bool = False,
) -> Iterator[tuple[Job, CallRecord]]:
    """Yield (job, record) for every job: cache hits first, then the calls in job order as each
    finishes, `concurrency(llm, workers)` at a time. Replies passing `keep` are cached at once,
    in the consuming thread (the cache's connection is the caller's), so an interrupted run
    keeps them. `stats` adds up the requests and the seconds spent waiting for them."""
    todo: list[Job] = []
    for j in jobs:
        hit = _hit(cache, j)
        if hit is not None:
            yield j, hit
        else:
            todo.append(j)
    totals = stats if stats is not None else CallStats()

    def finish(job: Job, get: Callable[[], CallRecord]) -> CallRecord:
        t0 = time.perf_counter()
        rec = get()
        totals.add(rec.calls, time.perf_counter() - t0)
        if keep(rec.raw):
            cache.cache_put(job.key, rec.raw)
        return rec

    n = concurrency(llm, workers)
    if n == 1:
        for j in todo:
            yield j, finish(j, functools.partial(call, llm, j, ok, retry, optional))
        return
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="rag-llm")
    try:
        futs = [(j, pool.submit(call, llm, j, ok, retry, optional)) for j in todo]
        for j, f in futs:
            yield j, finish(j, f.result)
    finally:  # on an error or an abandoned run, calls not started yet are not made
        pool.shutdown(wait=True, cancel_futures=True)


def run_all(fns: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Run independent callables, `workers` at a time; results in the order of `fns`."""
    if len(fns) < 2 or workers < 2:
        return [f() for f in fns]
    with ThreadPoolExecutor(max_workers=min(workers, len(fns))) as pool:
        return [f.result() for f in [pool.submit(fn) for fn in fns]]


@dataclass
class LLMCaller:
    """The calls of one question (or one step): `complete` checks the cache, calls under the
    module's error rule (`optional`: see there) and records every call for the trace."""

    llm: LLM
    cache: Cache | None = None
    workers: int = 4
    optional: bool = False
    records: list[CallRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def calls(self) -> int:
        """Requests actually made (cache hits excluded)."""
        return sum(r.calls for r in self.records)

    @property
    def parallel(self) -> bool:
        return concurrency(self.llm, self.workers) > 1

    def key(self, messages: list[Message], max_tokens: int, json_schema: dict[str, Any] | None,
            temperature: float) -> str:
        return cache_key(self.llm, messages, max_tokens, json_schema, temperature)

    def complete(self, kind: str, messages: list[Message], max_tokens: int,
                 json_schema: dict[str, Any] | None = None, temperature: float = 0.0) -> str:
        """The reply, "" when the call failed (recorded, so the caller's parser falls back)."""
        job = Job(self.key(messages, max_tokens, json_schema, temperature), messages, max_tokens,
                  kind=kind, json_schema=json_schema, temperature=temperature)
        with self._lock:  # the cache's SQLite connection is shared by this caller's threads
            rec = _hit(self.cache, job)
        if rec is None:
            rec = call(self.llm, job, optional=self.optional)
            if self.cache is not None and nonempty(rec.raw):
                with self._lock:
                    self.cache.cache_put(job.key, rec.raw)
        with self._lock:
            self.records.append(rec)
        return rec.raw

    def run_all(self, fns: Sequence[Callable[[], T]], llm_bound: bool = True) -> list[T]:
        """Run independent callables; concurrently unless they would all queue on one llama.cpp
        context (`llm_bound=False` for searches and embeddings)."""
        return run_all(fns, self.workers if not llm_bound or self.parallel else 1)


@dataclass
class CountingLLM:
    """An LLM whose every request (`complete` and `stream`, generation included) is counted in
    `stats`: the exact figure for a query whose LLM calls are spread over several callers."""

    inner: LLM
    stats: CallStats = field(default_factory=CallStats)
    backend: str = field(init=False)
    model: str = field(init=False)
    reason: str = field(init=False)

    def __post_init__(self) -> None:
        self.backend, self.model, self.reason = self.inner.backend, self.inner.model, self.inner.reason

    @property
    def calls(self) -> int:
        return self.stats.calls

    def complete(
        self, messages: list[Message], max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None, temperature: float | None = None,
    ) -> str:
        self.stats.add(1)
        return self.inner.complete(messages, max_tokens=max_tokens, json_schema=json_schema,
                                   temperature=temperature)

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        self.stats.add(1)
        return self.inner.stream(messages, max_tokens=max_tokens, temperature=temperature)

    def context_window(self) -> int:
        return self.inner.context_window()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def __getattr__(self, name: str) -> Any:  # anything else a backend offers
        return getattr(self.inner, name)
