"""The evaluation report under `reports/NAME/`:
- `index.html`: tables and plots (metrics per configuration, latency per stage, per-query
  wins and losses against the baseline), PNGs embedded;
- `report.md`: the same tables for a terminal or a commit (plots beside it as PNG files);
- `results.json`: metrics, latency, skips, and the qrels and runs as dicts that
  `ranx.Qrels.from_dict` / `ranx.Run.from_dict` load (TREC files under `runs/` too)."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import Any

from eval.evaluate import EvalResult
from eval.metrics import METRICS, PASSAGE_METRICS, PRIMARY

LABELS = {
    "ndcg@10": "nDCG@10",
    "recall@5": "R@5",
    "recall@10": "R@10",
    "recall@100": "R@100",
    "mrr@10": "MRR@10",
    "map@100": "MAP@100",
    "passage_hit@1": "P-hit@1",
    "passage_hit@5": "P-hit@5",
    "passage_mrr@10": "P-MRR@10",
}


def columns(r: EvalResult) -> list[str]:
    """The metrics a table shows: the passage-level ones right after nDCG@10 when some
    scored question carried evidence (they are not computed otherwise)."""
    if not r.evidence_queries:
        return list(METRICS)
    at = METRICS.index(PRIMARY) + 1
    return [*METRICS[:at], *PASSAGE_METRICS, *METRICS[at:]]


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#f3f3f3}"
    "img{max-width:100%;display:block;margin:1em 0}"
)


def _mean(xs: list[int]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def metrics_rows(r: EvalResult) -> tuple[list[str], list[list[str]]]:
    cols = columns(r)
    head = [
        "configuration",
        *[LABELS.get(m, m) for m in cols],
        f"p ({LABELS[PRIMARY]} vs {r.baseline})",
        "W/T/L",
        "ms p50",
        "ms p95",
        "LLM calls/q (cached)",
    ]
    rows = []
    for c in r.configs:
        t = r.tests.get(c.name, {}).get(PRIMARY)
        lat = c.latency().get("total", {})
        rows.append(
            [
                c.name,
                *[f"{r.metrics[c.name][m]:.3f}" for m in cols],
                "baseline" if t is None else f"{t['p']:.3g}" + (" *" if t["p"] < 0.05 else ""),
                "-" if t is None else f"{t['wins']}/{t['ties']}/{t['losses']}",
                f"{lat.get('p50', 0):.1f}",
                f"{lat.get('p95', 0):.1f}",
                f"{_mean(c.llm_calls):.2f} ({_mean(c.llm_cache_hits):.2f})",
            ]
        )
    return head, rows


def latency_rows(r: EvalResult) -> tuple[list[str], list[list[str]]]:
    stages: list[str] = []
    for c in r.configs:
        stages += [s for s in c.latency_ms if s not in stages and s != "total"]
    stages.append("total")
    rows = []
    for c in r.configs:
        lat = c.latency()
        rows.append(
            [c.name, *[f"{lat[s]['p50']:.1f} / {lat[s]['p95']:.1f}" if s in lat else "-" for s in stages]]
        )
    return ["configuration (ms p50 / p95)", *stages], rows


def skip_rows(r: EvalResult) -> tuple[list[str], list[list[str]]]:
    rows = [
        [k, str(v["count"]), str(v["what"]), "; ".join(v["examples"])] for k, v in r.issues.to_dict().items()
    ]
    return ["skipped", "count", "what", "examples"], rows


def _md(head: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in esc]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def summary(r: EvalResult) -> str:
    """The Markdown metrics table the command prints."""
    return _md(*metrics_rows(r))


_LEVEL = {"doc": "aggregated to documents by best rank", "chunk": "scored as chunk ids"}


def _header(r: EvalResult) -> list[str]:
    idx = "; ".join(
        f"{k}: {v.get('path')} ({'reused' if v.get('reused') else 'built'}"
        f"{'; built from ' + str(v['built_from']) if v.get('built_from') else ''})"
        for k, v in r.index.items()
    )
    split = f" ({r.split} split)" if r.split else ""
    passage = (
        [
            f"Passage level, over the {r.evidence_queries} questions with evidence strings: P-hit@k = share "
            "with a retrieved passage (chunk) holding the evidence in the top k; P-MRR@10 = mean 1/rank "
            "of the first such passage (whitespace ignored when matching)."
        ]
        if r.evidence_queries
        else []
    )
    return [
        f"Dataset **{r.dataset}**{split}: {len(r.queries)} queries scored at {r.level} level "
        f"(chunk hits {_LEVEL[r.level]}), "
        f"top {r.depth} retrieved per query; {r.seconds:.1f} s.",
        *passage,
        f"Index: {idx}.",
        f"Paired two-sided t-test on per-query {LABELS[PRIMARY]} against **{r.baseline}**; * = p < 0.05. "
        "W/T/L = queries where the configuration wins, ties, loses against the baseline. "
        "LLM calls count real calls (cached translations are not calls).",
    ]


def _notes(r: EvalResult) -> list[str]:
    return [f"{c.name}: {n}" for c in r.configs for n in c.notes]


def _plots(r: EvalResult) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out: dict[str, bytes] = {}
    names = [c.name for c in r.configs]

    def save(fig: Any, key: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        out[key] = buf.getvalue()

    cols = columns(r)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cols)), 4))
    w = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        ax.bar(np.arange(len(cols)) + i * w, [r.metrics[n][m] for m in cols], w, label=n)
    ax.set_xticks(np.arange(len(cols)) + w * (len(names) - 1) / 2, [LABELS[m] for m in cols])
    ax.set_ylim(0, 1)
    ax.set_title("Metrics per configuration")
    ax.legend(fontsize=8)
    save(fig, "metrics.png")

    stages = [s for s in dict.fromkeys(s for c in r.configs for s in c.latency_ms) if s != "total"] + [
        "total"
    ]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(stages)), 4))
    for i, c in enumerate(r.configs):
        lat = c.latency()
        p50 = [lat.get(s, {}).get("p50", 0.0) for s in stages]
        p95 = [lat.get(s, {}).get("p95", 0.0) for s in stages]
        x = np.arange(len(stages)) + i * w
        ax.bar(x, p50, w, label=c.name)
        ax.scatter(x, p95, marker="_", color="black", s=80)
    ax.set_xticks(np.arange(len(stages)) + w * (len(names) - 1) / 2, stages, rotation=30)
    ax.set_ylabel("ms (bar p50, tick p95)")
    ax.set_title("Latency per stage")
    ax.legend(fontsize=8)
    save(fig, "latency.png")

    others = [n for n in names if n != r.baseline]
    if others:
        fig, axes = plt.subplots(len(others), 1, figsize=(7, 2.2 * len(others)), squeeze=False)
        base = r.per_query[r.baseline][PRIMARY]
        for ax, n in zip(axes[:, 0], others, strict=True):
            mine = r.per_query[n][PRIMARY]
            d = sorted((mine[q] - base[q] for q in base), reverse=True)
            ax.bar(range(len(d)), d, color=["tab:green" if v > 0 else "tab:red" for v in d], width=1.0)
            t = r.tests[n][PRIMARY]
            ax.set_title(
                f"{n} - {r.baseline}: {LABELS[PRIMARY]} per query "
                f"(wins {t['wins']}, ties {t['ties']}, losses {t['losses']})",
                fontsize=9,
            )
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xticks([])
        save(fig, "wins.png")
    return out


def _cell(r: EvalResult, c: Any, q: str) -> str:
    """nDCG@10 of one query, and the rank of its first answer passage when it has evidence
    ("p-" = none retrieved), so a reader sees doc- and passage-level misses side by side."""
    cell = f"{r.per_query[c.name][PRIMARY].get(q, 0):.2f}"
    if q in c.passage_ranks:
        rank = c.passage_ranks[q]
        cell += f" p{rank if rank is not None else '-'}"
    return cell


def _per_query_rows(r: EvalResult, limit: int = 300) -> tuple[list[str], list[list[str]]]:
    head = ["query", *[c.name for c in r.configs]]
    rows = []
    for q in list(r.queries)[:limit]:
        rows.append([f"{q}: {r.queries[q][:90]}", *[_cell(r, c, q) for c in r.configs]])
    return head, rows


def results_json(r: EvalResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "dataset": r.dataset,
        "split": r.split,
        "level": r.level,
        "depth": r.depth,
        "seconds": r.seconds,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "baseline": r.baseline,
        "metrics": r.metrics,
        "significance": r.tests,
        "latency_ms": {c.name: c.latency() for c in r.configs},
        "llm_calls_per_query": {c.name: _mean(c.llm_calls) for c in r.configs},
        "llm_cache_hits_per_query": {c.name: _mean(c.llm_cache_hits) for c in r.configs},
        "configurations": [
            {"name": c.name, "description": c.description, "notes": c.notes, "errors": c.errors[:50]}
            for c in r.configs
        ],
        "skipped": r.issues.to_dict(),
        "index": r.index,
        "queries": r.queries,
        "qrels": r.qrels,
        "runs": {c.name: c.run for c in r.configs},
        "per_query": r.per_query,
        # rank of the first hit holding the evidence per query (null: none in the results)
        "passage": {
            "questions": r.evidence_queries,
            "ranks": {c.name: c.passage_ranks for c in r.configs if c.passage_ranks},
        },
    }


def _trec(r: EvalResult, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "qrels.trec").open("w", encoding="utf-8") as f:
        for q, judged in r.qrels.items():
            for d, grade in judged.items():
                f.write(f"{q} 0 {d} {grade}\n")
    for c in r.configs:
        with (folder / f"{c.name}.trec").open("w", encoding="utf-8") as f:
            for q, docs in c.run.items():
                for rank, (d, s) in enumerate(sorted(docs.items(), key=lambda kv: -kv[1]), 1):
                    f.write(f"{q} Q0 {d} {rank} {s:.6f} {c.name}\n")


def write(r: EvalResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(r)
    for key, png in plots.items():
        (out_dir / key).write_bytes(png)
    notes = _notes(r)
    md = [
        f"# Retrieval evaluation: {r.name}",
        "",
        *_header(r),
        "",
        "## Metrics",
        "",
        _md(*metrics_rows(r)),
        "",
        "## Latency per stage",
        "",
        _md(*latency_rows(r)),
        "",
        "## Skipped input",
        "",
        _md(*skip_rows(r)) if r.issues.counts else "Nothing was skipped.",
        "",
    ]
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    md += [f"![{k}]({k})" for k in plots] + [""]
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")
    imgs = "".join(
        f'<img alt="{k}" src="data:image/png;base64,{base64.b64encode(v).decode()}">'
        for k, v in plots.items()
    )
    head = "".join(f"<p>{html.escape(p.replace('**', ''))}</p>" for p in _header(r))
    skipped = _html_table(*skip_rows(r)) if r.issues.counts else "<p>Nothing was skipped.</p>"
    note_list = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    note_html = f"<h2>Notes</h2><ul>{note_list}</ul>" if notes else ""
    per_query_note = "; pN = rank of the first answer passage" if r.evidence_queries else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(r.name)}</title>
<style>{_CSS}</style></head><body><h1>Retrieval evaluation: {html.escape(r.name)}</h1>{head}
<h2>Metrics</h2>{_html_table(*metrics_rows(r))}
<h2>Latency per stage</h2>{_html_table(*latency_rows(r))}
<h2>Skipped input</h2>{skipped}{note_html}
<h2>Plots</h2>{imgs}
<h2>Per query ({html.escape(LABELS[PRIMARY])}{per_query_note})</h2>{_html_table(*_per_query_rows(r))}
</body></html>"""
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    (out_dir / "results.json").write_text(
        json.dumps(results_json(r), indent=1, ensure_ascii=False, default=str)
    )
    _trec(r, out_dir / "runs")
    return {"html": out_dir / "index.html", "md": out_dir / "report.md", "json": out_dir / "results.json"}
