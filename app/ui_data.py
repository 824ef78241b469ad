"""What the chat UI shows, computed without Streamlit: the cited span in its surrounding
text (HTML-escaped, highlighted), the route and generated queries, candidates and scores
per stage, timings. `app/ui.py` and `app/ui_render.py` only lay these out."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from core.types import Hit, TraceEntry

CONTEXT_CHARS = 600  # document text shown before and after a cited span
SUMMARY_STAGES = ("total", "first_token", "retrieve")  # aggregates, not stages of their own
PAGE_STYLE = ("white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; "
              "font-size: 0.85rem; line-height: 1.45;")
MARK_STYLE = "background: #ffe58f; color: inherit; padding: 0 1px; border-radius: 2px;"


@dataclass
class Context:
    before: str
    span: str
    after: str
    cut_before: bool  # text precedes what is shown
    cut_after: bool


def passage_context(text: str, start: int, end: int, window: int = CONTEXT_CHARS) -> Context:
    """The span [start:end) of `text` with up to `window` characters either side, widened to
    whole lines where a line break is near."""
    n = len(text)
    start, end = max(0, min(start, n)), max(0, min(end, n))
    end = max(end, start)
    lo = max(0, start - window)
    if lo > 0:
        nl = text.find("\n", lo, start)
        lo = nl + 1 if nl != -1 else lo
    hi = min(n, end + window)
    if hi < n:
        nl = text.rfind("\n", end, hi)
        hi = nl if nl != -1 else hi
    return Context(text[lo:start], text[start:end], text[end:hi], lo > 0, hi < n)


def highlight_html(ctx: Context, anchor: str = "cited", scroll: bool = False) -> str:
    """The context as escaped, pre-wrapped HTML with the cited span in <mark>."""
    style = PAGE_STYLE + (" max-height: 28rem; overflow-y: auto;" if scroll else "")
    parts = [f'<div class="rag-passage" style="{style}">']
    if ctx.cut_before:
        parts.append("<span style='opacity:.6'>…</span>")
    parts.append(html.escape(ctx.before))
    parts.append(f'<mark id="{html.escape(anchor)}" style="{MARK_STYLE}">{html.escape(ctx.span)}</mark>')
    parts.append(html.escape(ctx.after))
    if ctx.cut_after:
        parts.append("<span style='opacity:.6'>…</span>")
    parts.append("</div>")
    return "".join(parts)


def backend_notice(backend: str, reason: str) -> str | None:
    """A warning to show when `auto` wanted Ollama but the embedded model answers."""
    if backend == "llamacpp" and reason.startswith("auto:") and "ollama" in reason.lower():
        why = reason.removeprefix("auto:").strip()
        return (f"**Ollama is not in use; the embedded model answers.** {why[0].upper()}{why[1:]}. "
                "Expect short, simple answers; start Ollama (`ollama serve`) and reload for a stronger "
                "model.")
    return None


def entries(trace: list[TraceEntry], stage: str) -> list[TraceEntry]:
    return [t for t in trace if t.stage == stage]


def route_lines(trace: list[TraceEntry], strategy: str, question: str, standalone: str) -> list[str]:
    """Markdown bullet lines: strategy, follow-up rewrite, routed collection/template/filter,
    fallbacks."""
    lines = [f"strategy: **{strategy}**"]
    if standalone and standalone != question:
        lines.append(f"follow-up rewritten with the chat history to: *{standalone}*")
    for t in entries(trace, "condense"):
        if t.detail.get("fallback"):
            lines.append(f"follow-up rewrite not used ({t.detail['fallback']})")
    for t in entries(trace, "route"):
        d = t.detail
        if d.get("collection"):
            lines.append(f"collection: **{d['collection']}**")
        if d.get("template"):
            lines.append(f"answer template: {d['template']}")
        if d.get("where"):
            lines.append(f"metadata filter: `{d['where']}`")
        lines += [f"route: {n}" for n in d.get("notes", [])]
    for t in entries(trace, "translate"):
        if t.detail.get("fallback"):
            lines.append(f"query translation fell back to the question itself: {t.detail['fallback']}")
        lines += [f"translate: {n}" for n in t.detail.get("notes", [])]
    return lines


def query_rows(trace: list[TraceEntry]) -> list[dict[str, Any]]:
    """The queries searched (original and generated) and how many candidates each found."""
    rows: list[dict[str, Any]] = []
    for t in entries(trace, "candidates"):
        for q in t.detail.get("queries", []):
            rows.append({"role": q.get("role", ""), "query": q.get("query", ""), "candidates": q.get("n", 0)})
    return rows


def funnel_rows(trace: list[TraceEntry], hits: int, cited: int) -> list[dict[str, Any]]:
    """Candidates left after each stage, in pipeline order."""
    rows: list[dict[str, Any]] = []
    for stage in ("dense", "bm25"):
        es = entries(trace, stage)
        if es:
            rows.append({"stage": stage, "candidates": sum(int(e.detail.get("n", 0)) for e in es)})
    for t in entries(trace, "fuse"):
        rows.append({"stage": "fused", "candidates": int(t.detail.get("n", 0))})
    for t in entries(trace, "coarse"):
        pool, keep = int(t.detail.get("pool", 0)), int(t.detail.get("keep", 0) or t.detail.get("pool", 0))
        rows.append({"stage": "coarse", "candidates": min(pool, keep)})
    for t in entries(trace, "ltr"):
        if "skipped" not in t.detail:
            rows.append({"stage": "ltr", "candidates": int(t.detail.get("n", 0))})
    rows.append({"stage": "top-k", "candidates": hits})
    rows.append({"stage": "cited", "candidates": cited})
    return rows


def stage_listings(trace: list[TraceEntry]) -> dict[str, list[dict[str, Any]]]:
    """Per reranking stage, its ranked candidates: rank, rank before the stage, score, title."""
    out: dict[str, list[dict[str, Any]]] = {}
    for stage in ("coarse", "ltr"):
        for t in entries(trace, stage):
            cands = t.detail.get("candidates")
            if cands:
                out[stage] = [{"rank": c.get("rank"), "was": c.get("was"), "score": c.get("score"),
                               "title": c.get("title", ""), "id": c.get("id", "")} for c in cands]
    return out


def stage_notes(trace: list[TraceEntry]) -> list[str]:
    """Why a stage did nothing (e.g. no trained ranker)."""
    return [f"{t.stage}: {t.detail['skipped']}" for t in trace if isinstance(t.detail.get("skipped"), str)]


SCORE_KEYS = ("dense", "bm25", "rrf", "union", "sbert", "coarse", "ltr")


def hit_rows(hits: list[Hit], cited: set[str]) -> list[dict[str, Any]]:
    """The final top-k with each stage's score for it."""
    rows = []
    for rank, h in enumerate(hits, start=1):
        r = h.record
        row: dict[str, Any] = {"rank": rank, "cited": "✓" if r.id in cited else "",
                               "location": r.location(),
                               "title": r.title[:80], "score": round(h.score, 4)}
        for k in SCORE_KEYS:
            if k in h.scores:
                row[k] = round(float(h.scores[k]), 4)
        rows.append(row)
    return rows


def timing_rows(timings: dict[str, float]) -> list[dict[str, Any]]:
    return [{"stage": k, "ms": round(v, 1)} for k, v in timings.items() if k not in SUMMARY_STAGES]
