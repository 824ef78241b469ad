"""The LLM-call layer (core/llmcall.py): cache keys, cache hits that are not calls, the error
rule (RagError propagates unless the calls are optional; any other error is recorded and
the reply is empty), the retry, and the thread pool's order. A tiny in-test LLM stands in
for the backend: these are the layer's own rules, not the model's."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.errors import LLMUnavailableError
from core.llm import LLM, Message
from core.llmcall import (
    CallStats,
    CountingLLM,
    Job,
    LLMCaller,
    cache_key,
    digest,
    run_all,
    run_jobs,
)

HI: list[Message] = [{"role": "user", "content": "Say hello."}]


@dataclass
class EchoLLM:
    """Replies with `reply(prompt, temperature)`; `fail` is raised instead while set."""

    backend: str = "ollama"  # a concurrent backend, so the pool is used
    model: str = "echo"
    reason: str = "test"
    reply: Callable[[str, float], str] = lambda prompt, temp: f"re: {prompt}"
    fail: BaseException | None = None
    sleep: float = 0.0
    prompts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self, messages: list[Message], max_tokens: int | None = None,
                 json_schema: dict[str, Any] | None = None, temperature: float | None = None) -> str:
        with self._lock:
            self.prompts.append(messages[-1]["content"])
        time.sleep(self.sleep)
        if self.fail is not None:
            raise self.fail
        return self.reply(messages[-1]["content"], temperature or 0.0)

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        yield self.complete(messages, max_tokens, temperature=temperature)

    def context_window(self) -> int:
        return 1024

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class DictCache:
    """The `Cache` protocol over a dict (DocStore keeps it in SQLite)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def cache_get(self, key: str) -> str | None:
        return self.data.get(key)

    def cache_put(self, key: str, value: str) -> None:
        self.data[key] = value


def _msgs(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def test_the_echo_llm_satisfies_the_protocol() -> None:
    llm: LLM = EchoLLM()  # mypy checks the assignment
    assert llm.complete(HI) == "re: Say hello."


def test_cache_key_changes_with_model_prompt_and_settings() -> None:
    a, b = EchoLLM(), EchoLLM(model="other")
    base = cache_key(a, HI, 32, None, 0.0)
    assert base == cache_key(EchoLLM(), HI, 32, None, 0.0)  # stable across objects
    assert base != cache_key(b, HI, 32, None, 0.0)
    assert base != cache_key(EchoLLM(backend="llamacpp"), HI, 32, None, 0.0)
    assert base != cache_key(a, _msgs("Say goodbye."), 32, None, 0.0)
    assert base != cache_key(a, HI, 64, None, 0.0)
    assert base != cache_key(a, HI, 32, {"type": "object"}, 0.0)
    assert base != cache_key(a, HI, 32, None, 0.7)
    assert digest("ab", "c") != digest("a", "bc") and digest("x") == digest("x")


def test_a_cache_hit_is_recorded_but_not_counted() -> None:
    llm, cache = EchoLLM(), DictCache()
    first = LLMCaller(llm, cache)
    assert first.complete("route", HI, 32) == "re: Say hello."
    assert first.calls == 1 and [r.cached for r in first.records] == [False]
    again = LLMCaller(llm, cache)
    assert again.complete("route", HI, 32) == "re: Say hello."
    assert again.calls == 0 and [r.cached for r in again.records] == [True]
    assert len(llm.prompts) == 1


def test_an_empty_reply_is_not_cached() -> None:
    llm, cache = EchoLLM(reply=lambda p, t: "  "), DictCache()
    LLMCaller(llm, cache).complete("route", HI, 32)
    assert not cache.data


def test_a_rag_error_propagates_unless_the_calls_are_optional() -> None:
    down = LLMUnavailableError("Ollama is not reachable at http://x; start it with `ollama serve`.")
    llm = EchoLLM(fail=down)
    with pytest.raises(LLMUnavailableError, match="not reachable"):
        LLMCaller(llm, DictCache()).complete("route", HI, 32)
    with pytest.raises(LLMUnavailableError):
        list(run_jobs(llm, [Job("k", HI, 32)], DictCache(), workers=2))
    optional = LLMCaller(llm, DictCache(), optional=True)
    assert optional.complete("route", HI, 32) == ""
    rec = optional.records[0]
    assert rec.error and rec.error.startswith("LLMUnavailableError") and rec.calls == 1


def test_any_other_error_is_recorded_and_the_reply_is_empty() -> None:
    llm, cache = EchoLLM(fail=ValueError("bad JSON from the server")), DictCache()
    caller = LLMCaller(llm, cache)
    assert caller.complete("filter", HI, 32) == ""
    rec = caller.records[0]
    assert rec.error == "ValueError: bad JSON from the server" and not rec.cached
    assert rec.to_dict()["error"] == rec.error and caller.calls == 1
    assert not cache.data  # a failed call is asked again next time
    (job, got), = run_jobs(llm, [Job("k", HI, 32)], cache, workers=1)
    assert got.raw == "" and got.error and got.calls == 1


def test_the_retry_asks_once_more_warmer_when_the_check_fails() -> None:
    llm = EchoLLM(reply=lambda p, t: "good" if t > 0 else "bad")
    stats = CallStats()
    (_, rec), = run_jobs(llm, [Job("k", HI, 32)], DictCache(), 1, ok=lambda r: r == "good", retry=True,
                         stats=stats)
    assert rec.raw == "good" and rec.calls == 2 and stats.calls == 2
    (_, rec), = run_jobs(llm, [Job("k2", HI, 32)], DictCache(), 1, ok=lambda r: r == "good")
    assert rec.raw == "bad" and rec.calls == 1


def test_run_jobs_yields_hits_first_then_calls_in_order_and_caches_each() -> None:
    cache = DictCache()
    cache.cache_put("k1", "cached one")
    jobs = [Job(f"k{i}", _msgs(f"q{i}"), 16, tag=i) for i in range(5)]
    llm = EchoLLM(sleep=0.01)
    stats = CallStats()
    out = list(run_jobs(llm, jobs, cache, workers=3, stats=stats))
    assert [j.tag for j, _ in out] == [1, 0, 2, 3, 4]
    assert [(r.raw, r.cached, r.calls) for _, r in out][:2] == [("cached one", True, 0), ("re: q0", False, 1)]
    assert stats.calls == 4 and cache.data["k4"] == "re: q4"


def test_an_interrupted_run_keeps_the_replies_cached_before() -> None:
    cache, llm = DictCache(), EchoLLM(backend="llamacpp")
    jobs = [Job(f"k{i}", _msgs(f"q{i}"), 16) for i in range(3)]
    with pytest.raises(KeyboardInterrupt):  # as Ctrl-C during the third call would
        for n, _ in enumerate(run_jobs(llm, jobs, cache, workers=4)):
            if n == 1:
                llm.fail = KeyboardInterrupt()
    assert set(cache.data) == {"k0", "k1"}  # k2 failed: not cached, so asked again next run
    llm.fail = None
    llm.prompts.clear()
    again = list(run_jobs(llm, jobs, cache, workers=4))
    assert [r.cached for _, r in again] == [True, True, False] and llm.prompts == ["q2"]


def test_concurrent_calls_overlap_and_run_all_keeps_order() -> None:
    llm = EchoLLM(sleep=0.05)
    caller = LLMCaller(llm, None, workers=2)
    got = caller.run_all([lambda: caller.complete("a", _msgs("1"), 8),
                          lambda: caller.complete("b", _msgs("2"), 8)])
    assert got == ["re: 1", "re: 2"]
    a, b = caller.records
    assert a.start < b.end and b.start < a.end  # recorded with start/end: they overlapped
    assert run_all([lambda i=i: i for i in range(6)], workers=3) == list(range(6))  # type: ignore[misc]
    assert not LLMCaller(EchoLLM(backend="llamacpp")).parallel and LLMCaller(EchoLLM()).parallel


def test_counting_llm_counts_completions_and_streams() -> None:
    llm = CountingLLM(EchoLLM())
    llm.complete(HI)
    assert list(llm.stream(HI)) == ["re: Say hello."]
    assert llm.calls == 2 and llm.model == "echo" and llm.context_window() == 1024
