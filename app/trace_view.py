"""Readable `--trace` lines for routing and query translation: the route and why (scores),
every generated query, the candidates each query retrieved (by location, not id), the LLM
calls, and each decomposed sub-question with its sources and answer. Other stages are
printed generically by the caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.index import Index
from core.settings import Settings
from core.types import TraceEntry


class Locator:
    """Chunk id -> `file [start:end]`, looked up in the index the route chose."""

    def __init__(self, settings: Settings, trace: list[TraceEntry]) -> None:
        route = next((t.detail for t in trace if t.stage == "route"), {})
        s = settings
        if route.get("index_dir"):
            s = settings.model_copy(update={"index_dir": Path(route["index_dir"])})
        self.index = Index(s)

    def names(self, ids: list[str]) -> list[str]:
        recs = self.index.docs.get(ids) if self.index.exists() else {}
        return [f"{recs[i].location()} [{recs[i].start}:{recs[i].end}]" if i in recs else i for i in ids]


def _scores(d: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


def _route(d: dict[str, Any]) -> list[str]:
    out = [f"collection={d.get('collection')} strategy={d.get('strategy')} template={d.get('template')} "
           f"where={d.get('where')}"]
    for name, sc in (d.get("scores") or {}).items():
        out.append(f"  {name}: {_scores(sc)}")
    out += [f"  note: {n}" for n in d.get("notes", [])]
    return out


def _translate(d: dict[str, Any]) -> list[str]:
    out = [f"strategy={d.get('strategy')} merge={d.get('merge')} fallback={d.get('fallback')}"]
    out += [f"  [{q['role']}] {q['text']}" for q in d.get("queries", [])]
    out += [f"  note: {n}" for n in d.get("notes", [])]
    return out


def _candidates(d: dict[str, Any], loc: Locator) -> list[str]:
    out = []
    for q in d.get("queries", []):
        out.append(f"  [{q['role']}] {q['query'][:100]} -> {q['n']} candidates")
        out += [f"      {r}. {name}" for r, name in enumerate(loc.names(q.get("top", [])), 1)]
    return out


def _llm_calls(d: dict[str, Any]) -> list[str]:
    out = [f"calls={d.get('calls')} cache_hits={d.get('cache_hits')} concurrent={d.get('concurrent')}"]
    for r in d.get("records", []):
        raw = " ".join(str(r.get("raw", "")).split())[:160]
        out.append(f"  {r['kind']}: {'cached' if r['cached'] else str(r['ms']) + ' ms'} "
                   f"{'ERROR ' + r['error'] if r.get('error') else raw}")
    return out


def _sub_answer(d: dict[str, Any]) -> list[str]:
    out = [f"Q: {d.get('question')}", f"  A: {' '.join(str(d.get('answer', '')).split())[:300]}"]
    out += [f"  source: {s['location']} {s.get('title', '')}".rstrip() for s in d.get("sources", [])]
    return out


def _rerank_stage(d: dict[str, Any], loc: Locator) -> list[str]:
    """Coarse / LTR stage: its scorer, then the top candidates with score and rank change."""
    if "skipped" in d:
        return [f"skipped: {d['skipped']}"]
    out = [", ".join(f"{k}={d[k]}" for k in ("scorer", "pool", "keep", "model", "n") if k in d)]
    cands = d.get("candidates", [])[:10]
    for c, name in zip(cands, loc.names([c["id"] for c in cands]), strict=True):
        move = "  new" if c.get("was") is None else f"{c['was']:>3}->{c['rank']}"
        out.append(f"  {move:<8} {c['score']:>9.4f}  {name}  {c.get('title', '')}".rstrip())
    return out


def format_entry(t: TraceEntry, loc: Locator) -> list[str] | None:
    """Lines for the stages this module knows; None for the others."""
    d = t.detail
    if t.stage == "route":
        return _route(d)
    if t.stage == "translate" and "queries" in d:
        return _translate(d)
    if t.stage == "candidates":
        return _candidates(d, loc)
    if t.stage == "llm_calls":
        return _llm_calls(d)
    if t.stage == "sub_answer":
        return _sub_answer(d)
    if t.stage in ("coarse", "ltr"):
        return _rerank_stage(d, loc)
    if t.stage == "sql" and "route" in d:
        return _sql(d)
    return None


def _sql(d: dict[str, Any]) -> list[str]:
    """The table route, each SQL attempt (and SQLite's error), the rows, or why passages answered."""
    r = d["route"]
    out = [f"tables={r.get('tables')} go={r.get('go')} ({r.get('reason')})"]
    for n, a in enumerate(d.get("attempts", []), 1):
        out.append(f"  attempt {n}: {' '.join(str(a.get('sql', '')).split())[:300]}")
        out.append(f"    -> {'error: ' + a['error'] if a.get('error') else str(a.get('rows')) + ' rows'}")
    if d.get("rows") is not None:
        out.append(f"  columns: {d.get('columns')}" + (f"  order: {d['order']}" if d.get("order") else ""))
        out += [f"    {row}" for row in d["rows"][:10]]
        out.append(f"  answer: {d.get('answer')}; cited: {d.get('cited')}")
    if d.get("fallback"):
        out.append(f"  fallback: {d['fallback']}")
    return out
