"""LLM calls made by routing and query translation: cached on disk, counted, recorded for
the trace, and run concurrently where the backend allows it.

The cache key is the backend, model, messages, schema, token limit and temperature, so a
change of model, prompt or any setting that shapes the prompt misses the cache. Values live
in the index's SQLite key/value table (`DocStore.cache_get/put`)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.docstore import DocStore
from core.llm import LLM, Message

log = logging.getLogger(__name__)
T = TypeVar("T")
CACHE_VERSION = 1


@dataclass
class CallRecord:
    kind: str  # what the call was for: route, filter, multi-query, step-back, ...
    cached: bool
    ms: float
    raw: str  # the model's output (cut for the trace)
    error: str | None = None
    start: float = 0.0  # perf_counter() when the call began and ended: shows which calls overlapped
    end: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "cached": self.cached, "ms": round(self.ms, 1), "raw": self.raw[:300]}
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class LLMCaller:
    """Wraps one LLM for one question: `complete` checks the cache, calls, never raises
    (a failed call returns "" and is recorded, so the caller's parser falls back)."""

    llm: LLM
    cache: DocStore | None = None
    workers: int = 4
    records: list[CallRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def calls(self) -> int:
        """LLM calls actually made (cache hits excluded)."""
        return sum(1 for r in self.records if not r.cached)

    @property
    def parallel(self) -> bool:
        # llama.cpp serialises on one context (a lock); Ollama serves requests concurrently.
        return self.llm.backend != "llamacpp" and self.workers > 1

    def key(self, messages: list[Message], max_tokens: int, json_schema: dict[str, Any] | None,
            temperature: float) -> str:
        blob = json.dumps(
            {"v": CACHE_VERSION, "backend": self.llm.backend, "model": self.llm.model, "messages": messages,
             "schema": json_schema, "max_tokens": max_tokens, "temperature": temperature},
            sort_keys=True, ensure_ascii=False,
        )
        return "translate:" + hashlib.sha256(blob.encode()).hexdigest()

    def complete(self, kind: str, messages: list[Message], max_tokens: int,
                 json_schema: dict[str, Any] | None = None, temperature: float = 0.0) -> str:
        key = self.key(messages, max_tokens, json_schema, temperature)
        t0 = time.perf_counter()
        if self.cache is not None:
            with self._lock:
                hit = self.cache.cache_get(key)
            if hit is not None:
                self._record(CallRecord(kind, True, (time.perf_counter() - t0) * 1000, hit, None, t0,
                                        time.perf_counter()))
                return hit
        try:
            out = self.llm.complete(messages, max_tokens=max_tokens, json_schema=json_schema,
                                    temperature=temperature)
        except Exception as e:  # a backend failure must not crash the query: the parser falls back
            log.warning("LLM call for %s failed: %s", kind, e)
            ms = (time.perf_counter() - t0) * 1000
            self._record(CallRecord(kind, False, ms, "", f"{type(e).__name__}: {e}", t0, time.perf_counter()))
            return ""
        t1 = time.perf_counter()
        self._record(CallRecord(kind, False, (t1 - t0) * 1000, out, None, t0, t1))
        if self.cache is not None and out.strip():
            with self._lock:
                self.cache.cache_put(key, out)
        return out

    def _record(self, rec: CallRecord) -> None:
        with self._lock:
            self.records.append(rec)

    def run_all(self, fns: Sequence[Callable[[], T]], llm_bound: bool = True) -> list[T]:
        """Run independent callables; concurrently when they don't all queue on one llama.cpp
        context (`llm_bound=False` for searches and embeddings)."""
        if len(fns) < 2 or (llm_bound and not self.parallel):
            return [f() for f in fns]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(fns))) as pool:
            return [f.result() for f in [pool.submit(fn) for fn in fns]]
