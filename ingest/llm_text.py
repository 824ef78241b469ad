"""Text helpers shared by the LLM-written representations and the RAPTOR summaries:
fitting texts into a token budget, defensive parsing of what a small model writes,
an extractive fallback, running many prompts (concurrently where the backend allows) with
each raw reply cached by the hash of its input, and choosing between the LLM and
extractive summaries (`summary_method`)."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.docstore import DocStore
from core.errors import LLMUnavailableError, RagError
from core.lang import approx_tokens
from core.llm import LLM, Message, get_llm, too_small
from core.settings import Settings

log = logging.getLogger(__name__)

# Sentence ends: CJK terminal punctuation, or .!? followed by whitespace / end.
_SENT = re.compile(r"[^。！？!?.]*(?:[。！？]|[.!?]+(?=\s|$)|$)", re.S)
_LIST_PREFIX = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|Q\d*[.:]|Question\s*\d*[.:])\s*", re.I)
_LABEL = re.compile(r"^\s*(?:summary|answer|here is (?:a|the) summary[^:]*)\s*:\s*", re.I)
_META_Q = re.compile(r"\b(?:the|this) (?:text|passage|article|document|author)\b", re.I)
_QWORD = re.compile(
    r"^(what|why|how|when|where|which|who|whom|whose|is|are|can|does|do|should|could|would|will)\b", re.I)


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.findall(text) if s.strip()]


def truncate(text: str, budget: int) -> str:
    """The leading sentences of `text` that fit `budget` approximate tokens (a hard cut
    inside the first sentence when even that is too long)."""
    if approx_tokens(text) <= budget:
        return text
    out: list[str] = []
    used = 0
    for s in sentences(text):
        t = approx_tokens(s)
        if used + t > budget:
            break
        out.append(s)
        used += t
    if out:
        return " ".join(out)
    # One long sentence: cut by characters (CJK chars count 1 token, others 1/4).
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if approx_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def fit_budget(texts: list[str], budget: int) -> list[str]:
    """Share `budget` tokens fairly: short texts stay whole, long ones keep their leading
    sentences (water-filling), so every child of a cluster is represented."""
    sizes = [approx_tokens(t) for t in texts]
    if sum(sizes) <= budget:
        return list(texts)
    order = sorted(range(len(texts)), key=lambda i: sizes[i])
    left, n_left = budget, len(texts)
    caps = [0] * len(texts)
    for i in order:
        share = max(left // max(n_left, 1), 8)
        caps[i] = min(sizes[i], share)
        left -= caps[i]
        n_left -= 1
    return [truncate(t, c) for t, c in zip(texts, caps, strict=True)]


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def clean_summary(raw: str, max_chars: int = 1500) -> str | None:
    """A usable summary from raw model output, or None: labels stripped, repeated
    sentences dropped, a sentence cut off by the token limit removed."""
    text = " ".join(_LABEL.sub("", raw or "").split())
    sents = sentences(text)
    seen: set[str] = set()
    keep: list[str] = []
    for s in sents:
        k = _norm(s)
        if k and k not in seen:
            seen.add(k)
            keep.append(s)
    if len(keep) > 1 and not re.search(r"[.!?。！？\"')\]]$", keep[-1]):
        keep.pop()  # truncated by max_tokens
    out = " ".join(keep)[:max_chars].strip()
    words = len(out.split()) + sum(1 for c in out if "\u4e00" <= c <= "\u9fff") // 2
    return out if words >= 3 else None


def parse_questions(raw: str, n: int) -> list[str]:
    """Up to `n` distinct questions from raw output: one per line (or per `?`),
    list markers stripped; lines that are not questions are dropped."""
    lines: list[str] = []
    for ln in (raw or "").splitlines():
        parts = re.findall(r"[^?？]+[?？]", ln) or [ln]
        lines.extend(parts)
    out: list[str] = []
    seen: set[str] = set()
    for ln in lines:
        q = _LIST_PREFIX.sub("", ln).strip().strip('"').strip()
        q = _LIST_PREFIX.sub("", q).strip()
        is_q = q.endswith(("?", "？")) or bool(_QWORD.match(q))
        k = _norm(q)
        if not is_q or len(k) < 6 or k in seen or _META_Q.search(q):  # "What is the text about?" says nothing
            continue
        seen.add(k)
        out.append(q)
        if len(out) >= n:
            break
    return out


def extractive_summary(texts: list[str], budget: int) -> str:
    """The fallback when the model gives nothing usable: each child's leading sentence."""
    firsts = [(sentences(t) or [t])[0] for t in texts if t.strip()]
    return " ".join(fit_budget(firsts, max(budget, 16)))


@dataclass
class Job:
    key: str  # cache key (hash of prompt inputs)
    messages: list[Message]
    max_tokens: int
    tag: object = None  # caller's handle


Check = Callable[[str], bool]


def _call(llm: LLM, job: Job, ok: Check, retry: bool) -> tuple[str, int]:
    """The raw reply and how many calls it took; one retry (warmer sampling) when the
    reply fails `ok`. Errors other than user-facing ones count as a failed reply."""
    calls, out = 0, ""
    for attempt in range(2 if retry else 1):
        calls += 1
        try:
            temp = 0.0 if attempt == 0 else 0.7
            out = llm.complete(job.messages, max_tokens=job.max_tokens, temperature=temp)
        except RagError:
            raise
        except Exception as e:  # noqa: BLE001 - a backend hiccup must not end the run
            log.warning("LLM call failed (%s: %s)", type(e).__name__, e)
            out = ""
        if ok(out):
            break
    return out, calls


def _nonempty(raw: str) -> bool:
    return bool(raw.strip())


@dataclass
class CallStats:
    """LLM calls made and the wall-clock seconds they took (concurrent calls overlap, so
    seconds / calls is the cost of one call in a run like this one)."""

    calls: int = 0
    seconds: float = 0.0


def run_jobs(
    llm: LLM, jobs: list[Job], docs: DocStore, workers: int, ok: Check, retry: bool = False,
    keep: Check = _nonempty, stats: CallStats | None = None,
) -> Iterator[tuple[Job, str, bool, int]]:
    """Yield (job, raw reply, from_cache, llm_calls) as each finishes; a reply failing `ok`
    is asked for once more when `retry`. Replies passing `keep` (default: non-empty, so a
    reply the model cannot improve on is not asked for again, while a failed call is) are
    cached at once, in the main thread, so an interrupted run keeps them. `stats` adds up
    the calls and the seconds spent waiting for them."""
    todo: list[Job] = []
    for j in jobs:
        hit = docs.cache_get(j.key)
        if hit is not None:
            yield j, hit, True, 0
        else:
            todo.append(j)
    stats = stats if stats is not None else CallStats()
    workers = 1 if llm.backend == "llamacpp" else max(1, workers)  # llama.cpp serialises anyway
    if workers == 1:
        for j in todo:
            t0 = time.perf_counter()
            out, calls = _call(llm, j, ok, retry)
            stats.calls, stats.seconds = stats.calls + calls, stats.seconds + time.perf_counter() - t0
            if keep(out):
                docs.cache_put(j.key, out)
            yield j, out, False, calls
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rag-llm") as pool:
        futs = [(j, pool.submit(_call, llm, j, ok, retry)) for j in todo]
        for j, f in futs:
            t0 = time.perf_counter()
            out, calls = f.result()
            stats.calls, stats.seconds = stats.calls + calls, stats.seconds + time.perf_counter() - t0
            if keep(out):
                docs.cache_put(j.key, out)
            yield j, out, False, calls


def summary_method(choice: str, setting: str, settings: Settings, llm: LLM | None,
                   ) -> tuple[str, str, LLM | None]:
    """(method, why, llm) for a summaries setting (`auto | llm | extractive`): "auto" is
    extractive when `core.llm.too_small` says so (the rule `answer.mode = auto` follows) or
    no LLM is reachable, the LLM otherwise. No LLM is made for "extractive"."""
    if choice == "extractive":
        return "extractive", f"{setting} = extractive", llm
    if choice == "llm":
        return "llm", f"{setting} = llm", llm or get_llm(settings)
    try:
        llm = llm or get_llm(settings)
    except LLMUnavailableError as e:
        return "extractive", f"auto: no LLM is available ({e})", None
    small = too_small(settings, llm)
    if small:
        why = f"auto: {small} is too small to summarise well ({setting} = \"llm\" uses it anyway)"
        return "extractive", why, llm
    return "llm", f"auto: {llm.backend} model {llm.model} summarises", llm
