"""Text helpers shared by the LLM-written representations and the RAPTOR summaries:
fitting texts into a token budget, defensive parsing of what a small model writes,
an extractive fallback, and choosing between the LLM and extractive summaries
(`summary_method`). `run_jobs` runs their prompts through `core.llmcall` (cache, retry,
thread pool, counting and its error rule live there)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from core import llmcall
from core.errors import LLMUnavailableError
from core.lang import approx_tokens, cjk_count
from core.llm import LLM, get_llm, too_small
from core.llmcall import CallStats, Check, Job, nonempty
from core.settings import Settings

log = logging.getLogger(__name__)

# Sentence ends: CJK terminal punctuation, or .!? followed by whitespace / end.
_SENT = re.compile(r"[^。！？!?.]*(?:[。！？]|[.!?]+(?=\s|$)|$)", re.S)
_LIST_PREFIX = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|Q\d*[.:]|Question\s*\d*[.:])\s*", re.I)
_LABEL = re.compile(r"^\s*(?:summary|answer|here is (?:a|the) summary[^:]*)\s*:\s*", re.I)
_META_Q = re.compile(r"\b(?:the|this) (?:text|passage|article|document|author)\b", re.I)
_QWORD = re.compile(
    r"^(what|why|how|when|where|which|who|whom|whose|is|are|can|does|do|should|could|would|will)\b", re.I)


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
    words = len(out.split()) + cjk_count(out) // 2
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


def run_jobs(
    llm: LLM, jobs: list[Job], docs: llmcall.Cache, workers: int, ok: Check, retry: bool = False,
    keep: Check = nonempty, stats: CallStats | None = None,
) -> Iterator[tuple[Job, str, bool, int]]:
    """Yield (job, raw reply, from_cache, llm_calls) as each finishes (`core.llmcall.run_jobs`):
    a reply failing `ok` is asked for once more when `retry`. Replies passing `keep` (default:
    non-empty, so a reply the model cannot improve on is not asked for again, while a failed
    call is) are cached at once, in this thread, so an interrupted run keeps them. A RagError
    (unreachable server, missing model) ends the run; any other failure is an empty reply."""
    for job, rec in llmcall.run_jobs(llm, jobs, docs, workers, ok, retry, keep, stats):
        yield job, rec.raw, rec.cached, rec.calls


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
