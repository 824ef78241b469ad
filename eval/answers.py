"""Answer-level evaluation: `python -m eval.answers DATASET... [--modes extractive,generative]`.

For labelled answerable questions (queries.jsonl with `evidence` strings, judged in
qrels/<split>.tsv) and unanswerable ones (unanswerable.jsonl, `"unanswerable": true`), each
question is answered once per mode with abstention switched off (answer.min_score = 0, no
corrective retry), and the original question's evidence (retrieval/grade.py) is recorded. The
abstain decision is then replayed offline for every (dense weight, min_score, absent gate) on a grid, for
each kind of question apart (retrieval/grade.py `question_kind`: same script as the corpus,
Chinese of Chinese, crosslingual; the same support means less where question and text share
fewer words): per kind, the pair with the best balanced accuracy (answer rate on answerable +
abstention rate on unanswerable, halved; within one question of it, the absent gate on: `choose`)
on the DEV questions is chosen (answer.abstain) and
reported on the TEST ones, with the whole trade-off curve. Under it, per kind, the hedge floor
(`choose_hedge`): the highest threshold at which HEDGE_AIM of the answerable dev questions get an
answer; between the two the product answers, marked as weakly supported. Unanswerable questions
are split like the datasets' queries: dev when int(sha1(id), 16) % 10 < 4; a set's
paraphrases.jsonl (its questions asked in other words) takes each original's split.

Metrics per mode, over the questions answered at the chosen threshold:
- evidence_cited: a cited passage contains one of the question's evidence strings;
- evidence_in_answer: the answer text itself contains one;
- citation_precision: cited passages from a document judged relevant (grade > 0);
- supported: share of answer sentences their cited passage supports (retrieval/check.py);
- answer_rate (answerable), abstention_rate (unanswerable); p50 / p95 seconds per question;
- answer_or_hedge_rate (answerable given any answer), refusal_rate (unanswerable given none),
  evidence_cited_hedged (over the weakly supported answers).
Writes reports/answers/results.json and report.md; prints the tables."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.lang import cjk_share
from core.settings import AbstainRule, Settings, load_settings
from core.types import Hit, Record
from eval import configs as cfgs
from eval.datasets import Issues, load_dataset, load_queries
from eval.evaluate import EvalIndex, corpus_index
from eval.sets.common import read_jsonl
from retrieval.grade import dense_weight, passage_kind
from retrieval.grade import support as grade_support

log = logging.getLogger(__name__)

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 17))  # 0.10 .. 0.80


@dataclass
class Row:
    """One question answered in one mode (abstention off), with its evidence for replay."""

    dataset: str
    qid: str
    split: str  # dev | test
    answerable: bool
    mode: str
    question: str
    kind: str = "same"  # retrieval/grade.py question_kind
    answer: str = ""
    passages: list[dict[str, float]] = field(default_factory=list)  # dense, coverage, absent per top passage
    cjk: float = 0.0
    absent: float = 0.0  # share of the question's terms the index never holds (grade.term_stats)
    evidence_cited: bool = False
    evidence_in_answer: bool = False
    citations: int = 0
    relevant_citations: int = 0
    sentences: int = 0
    supported_sentences: int = 0
    seconds: float = 0.0
    declined: bool = False  # the answer step itself produced nothing (no sentence, model declined)
    sql: bool = False  # answered from table rows (retrieval/table_answer.py): no passage is graded


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s).casefold()


def _split_of(qid: str) -> str:
    return "dev" if int(hashlib.sha1(qid.encode()).hexdigest(), 16) % 10 < 4 else "test"


def _rule_for(kind: str, rules: Rules) -> AbstainRule:
    return rules.get(kind, rules.get("same", AbstainRule(min_score=0.5)))


def _supports(row: Row, rules: Rules) -> list[tuple[float, AbstainRule]]:
    """Each top passage's support under its own kind's rule (`passage_kind`: a passage in the
    other script than the question's is judged as crosslingual), with that rule; a passage that
    lacks the quantity the question asks for (`quantity` False, retrieval/quantity.py) supports
    nothing. A passage recorded without its script (an older results.json) takes the question's
    kind."""
    out = []
    for p in row.passages:
        same = p.get("same_script")
        kind = row.kind if same is None else passage_kind(row.kind, bool(same))
        r = _rule_for(kind, rules)
        s = grade_support(p["dense"], p["coverage"], float(p.get("absent", row.absent)),
                          dense_weight(r, kind, row.cjk), r.absent_gate, bool(same),
                          None if p.get("quantity") is None else bool(p["quantity"]))
        out.append((s, r))
    return out


def passes(row: Row, rules: Rules) -> bool:
    """The product's decision replayed (retrieval/grade.evidence): some passage's support
    reaches its rule's min_score."""
    return any(s >= r.min_score for s, r in _supports(row, rules))


def hedges(row: Row, rules: Rules) -> bool:
    """Below min_score, the product's weakly supported answer replayed (retrieval/grade.hedgeable):
    some passage's support reaches its rule's hedge_score."""
    return _outcome(row, rules)[1]


def _outcome(row: Row, rules: Rules) -> tuple[bool, bool]:
    """(answered, weakly supported) replayed from one pass over the passages' supports. A row the
    product declined is neither; one answered from table rows (sql) was answered without
    grading passages (nothing to replay)."""
    if row.declined:
        return False, False
    if row.sql:
        return True, False
    sup = _supports(row, rules)
    ok = any(s >= r.min_score for s, r in sup)
    return ok, not ok and any(r.hedge_score is not None and s >= r.hedge_score for s, r in sup)


def _paraphrases(path: Path) -> dict[str, tuple[str, str]]:
    """paraphrases.jsonl: id -> (text, id of the question it asks again in other words). The
    questions of data/eval were written by reading the passages and share their words; a
    user who has not read them does not, and the abstain rules must be chosen on both."""
    f = path / "paraphrases.jsonl"
    if not f.exists():
        return {}
    return {str(o["_id"]): (str(o["text"]).strip(), str(o["of"])) for o in read_jsonl(f)}


def _questions(path: Path) -> tuple[Any, list[tuple[str, str, str, bool]]]:
    """The dataset (test qrels; dev qrels merged) and (qid, text, split, answerable) per question."""
    test = load_dataset(path, split="test")
    out: list[tuple[str, str, str, bool]] = []
    qrels = dict(test.qrels)
    if (path / "qrels" / "dev.tsv").exists():
        dev = load_dataset(path, split="dev")
        qrels.update(dev.qrels)
        out += [(q, dev.queries[q], "dev", True) for q in dev.qrels if q in dev.evidence and q in dev.queries]
    out += [
        (q, test.queries[q], "test", True) for q in test.qrels if q in test.evidence and q in test.queries
    ]
    # The same facts asked in other words (paraphrases.jsonl, `of` naming the question): the
    # original's split, evidence and judgements.
    split_of = {q: sp for q, _, sp, _ in out}
    for qid, (text, orig) in _paraphrases(path).items():
        if orig in split_of:
            test.queries[qid] = text
            test.evidence[qid] = test.evidence[orig]
            qrels[qid] = qrels[orig]
            out.append((qid, text, split_of[orig], True))
    test.qrels = qrels
    un = path / "unanswerable.jsonl"
    has_dev = (path / "qrels" / "dev.tsv").exists()
    if un.exists():  # a set without a dev split is reported, never tuned on
        for qid, text in load_queries(un, Issues()).items():
            out.append((qid, text, _split_of(qid) if has_dev else "test", False))
    return test, out


def _settings_for(base: Settings, target: EvalIndex, mode: str) -> Settings:
    return cfgs.apply(
        base,
        {
            "index_dir": str(target.index.path),
            "collection": target.index.settings.collection,  # the one its folder holds
            "chroma_url": None,
            "answer": {"mode": mode, "min_score": 0.0, "corrective": False},
        },
    )


def run_one(
    ds: Any, target: EvalIndex, settings: Settings, q: tuple[str, str, str, bool], mode: str, llm: Any
) -> Row:
    from retrieval.answer import ask
    from retrieval.check import check_answer
    from retrieval.generate import Passage

    qid, text, split, answerable = q
    t0 = time.perf_counter()
    res = ask(text, settings, index=target.index, llm=llm)
    row = Row(
        ds.name,
        qid,
        split,
        answerable,
        mode,
        text,
        answer=res.answer,
        seconds=time.perf_counter() - t0,
        cjk=round(cjk_share(text), 3),
        declined=res.abstained,
        sql=res.mode == "sql",
    )
    ev = next((t.detail for t in res.trace if t.stage == "abstain_check"), {})
    row.kind = str(ev.get("kind", "same"))
    row.absent = float(ev.get("absent", 0.0))
    row.passages = [
        {k: p[k] for k in ("dense", "coverage", "sentence_coverage", "same_script", "absent", "quantity",
                           "quantity_cover")
         if k in p}
        for p in ev.get("passages", [])
    ]
    if res.abstained:
        return row
    evid = [_norm(e) for e in ds.evidence.get(qid, [])]
    rel = {d for d, g in ds.qrels.get(qid, {}).items() if g > 0}
    row.citations = len(res.citations)
    row.relevant_citations = sum(target.doc_of_source(c.source) in rel for c in res.citations)
    row.evidence_cited = any(e in _norm(c.text) for c in res.citations for e in evid)
    row.evidence_in_answer = any(e in _norm(res.answer) for e in evid)
    passages = [
        Passage(c.n, Hit(Record(c.chunk_id, c.text, c.source, title=c.title), c.score), c.text)
        for c in res.citations
    ]
    chk = check_answer(res.answer, passages, target.index.embedder, settings)
    row.sentences = len(chk.verdicts)
    row.supported_sentences = sum(v.kept and v.reason != "recited" for v in chk.verdicts)
    return row


def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


Rules = dict[str, AbstainRule]  # kind -> rule


def metrics(rows: list[Row], rules: Rules) -> dict[str, Any]:
    # each row's outcome replayed once: answered, or (below min_score) a weakly supported answer
    outcome = {id(r): _outcome(r, rules) for r in rows}
    ok = {k: v[0] for k, v in outcome.items()}
    weak = {k: v[1] for k, v in outcome.items()}
    ans = [r for r in rows if r.answerable]
    un = [r for r in rows if not r.answerable]
    answered = [r for r in ans if ok[id(r)]]
    hedged = [r for r in ans if weak[id(r)]]
    shipped = [r for r in rows if ok[id(r)] or weak[id(r)]]
    secs = sorted(r.seconds for r in rows)
    cits = sum(r.citations for r in answered)
    sents = sum(r.sentences for r in shipped)
    return {
        "answerable": len(ans),
        "unanswerable": len(un),
        "answer_rate": _rate([ok[id(r)] for r in ans]),
        "abstention_rate": _rate([not ok[id(r)] for r in un]),
        # weakly supported answers (retrieval/grade.hedgeable): given, marked, between the floors
        "hedge_rate": _rate([weak[id(r)] for r in ans]),
        "answer_or_hedge_rate": _rate([ok[id(r)] or weak[id(r)] for r in ans]),
        "refusal_rate": _rate([not ok[id(r)] and not weak[id(r)] for r in un]),
        "evidence_cited_hedged": _rate([r.evidence_cited for r in hedged]),
        "evidence_cited": _rate([r.evidence_cited for r in answered]),
        "evidence_cited_all": _rate([r.evidence_cited and ok[id(r)] for r in ans]),
        "evidence_in_answer": _rate([r.evidence_in_answer for r in answered]),
        "citation_precision": round(sum(r.relevant_citations for r in answered) / cits, 3) if cits else None,
        "supported": round(sum(r.supported_sentences for r in shipped) / sents, 3) if sents else None,
        "p50_s": round(statistics.median(secs), 3) if secs else None,
        "p95_s": round(secs[min(len(secs) - 1, int(0.95 * len(secs)))], 3) if secs else None,
    }


def choose(rows: list[Row], defaults: Rules | None = None) -> tuple[Rules, list[dict[str, Any]]]:
    """Per kind of question, the rule (dense weight, threshold, absent gate) with the best
    balanced accuracy on the dev questions, and the whole dev curve. Rules less than one
    question short of the best (of either class) count as ties; a tie goes to the absent gate
    (a question naming what the corpus never mentions cannot be answered from it: without the
    gate, "Which company develops the Mixtral models?" was answered from notes that never name
    Mixtral), then to the better balanced accuracy, then to the lower weight and threshold. A
    kind without both answerable and unanswerable dev questions keeps the default rule."""
    dev = [r for r in rows if r.split == "dev"]
    curve: list[dict[str, Any]] = []
    rules: Rules = {}
    for kind in sorted({r.kind for r in rows}):
        mine = [r for r in dev if r.kind == kind]
        if not any(r.answerable for r in mine) or all(r.answerable for r in mine):
            continue
        points = []
        for gate in (False, True):
            for w in WEIGHTS:
                for t in THRESHOLDS:
                    m = metrics(mine, {**(defaults or {}),
                                       kind: AbstainRule(min_score=t, dense_weight=w, absent_gate=gate)})
                    bal = ((m["answer_rate"] or 0) + (m["abstention_rate"] or 0)) / 2
                    points.append({"kind": kind, "weight": w, "threshold": t, "absent_gate": gate,
                                   "balanced": round(bal, 4), "answer_rate": m["answer_rate"],
                                   "abstention_rate": m["abstention_rate"]})
        n_ans = sum(r.answerable for r in mine)
        # one question of the larger class: the smallest step balanced accuracy takes
        tie = min(1 / (2 * n_ans), 1 / (2 * (len(mine) - n_ans)))
        top = max(c["balanced"] for c in points)
        near = [c for c in points if c["balanced"] > top - tie]
        best = max(near, key=lambda c: (c["absent_gate"], c["balanced"], -c["weight"], -c["threshold"]))
        rules[kind] = AbstainRule(min_score=best["threshold"], dense_weight=best["weight"],
                                  absent_gate=best["absent_gate"])
        curve += points
    return rules, curve


HEDGE_AIM = 0.9  # the issue's answer-rate aim: the share of answerable dev questions given an answer


def choose_hedge(rows: list[Row], rules: Rules) -> Rules:
    """Per kind, the hedge floor under its rule: the highest threshold (at the rule's weight and
    gate, no higher than its min_score) at which HEDGE_AIM of the answerable dev questions are
    answered, or the lowest threshold on the grid when none is; None when min_score already
    answers that many. A kind without answerable dev questions keeps its rule's floor."""
    dev = [r for r in rows if r.split == "dev"]
    out: Rules = {}
    for kind, rule in rules.items():
        mine = [r for r in dev if r.kind == kind]
        if not any(r.answerable for r in mine):
            continue
        floor: float | None = min(THRESHOLDS)
        for t in sorted((t for t in THRESHOLDS if t <= rule.min_score), reverse=True):
            m = metrics(mine, {**rules, kind: rule.model_copy(update={"min_score": t})})
            if (m["answer_rate"] or 0) >= HEDGE_AIM:
                floor = None if t >= rule.min_score else t
                break
        out[kind] = rule.model_copy(update={"hedge_score": floor})
    return out


def _table(title: str, by: dict[str, dict[str, Any]]) -> str:
    cols = [
        "answer_rate",
        "abstention_rate",
        "answer_or_hedge_rate",
        "refusal_rate",
        "evidence_cited_hedged",
        "evidence_cited",
        "evidence_in_answer",
        "citation_precision",
        "supported",
        "p50_s",
        "p95_s",
        "answerable",
        "unanswerable",
    ]
    lines = [f"### {title}", "", "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in by.items():
        lines.append(f"| {name} | " + " | ".join("" if m[c] is None else str(m[c]) for c in cols) + " |")
    return "\n".join(lines)


def build_report(rows: list[Row], defaults: Rules) -> tuple[dict[str, Any], list[str]]:
    """The rules chosen on dev (per kind; `defaults` for a kind dev cannot choose for), the
    metrics on test and dev by mode, dataset and kind, and the trade-off curves: results.json's
    object and report.md's lines."""
    chosen, curve = choose(rows, defaults)
    rules = {**defaults, **chosen}
    rules.update(choose_hedge(rows, rules))
    report: dict[str, Any] = {
        "chosen": {"abstain": {k: r.model_dump() for k, r in rules.items()}, "on": "dev"},
        "test": {},
        "dev": {},
        "curve_dev": curve,
        "rows": [asdict(r) for r in rows],
    }
    md = ["Chosen on dev per kind of question (best balanced accuracy; the hedge floor answers "
          f"{HEDGE_AIM:.0%} of the answerable): "
          + "; ".join(f"{k}: dense_weight = {r.dense_weight}, min_score = {r.min_score}, "
                      f"absent_gate = {r.absent_gate}, hedge_score = {r.hedge_score}"
                      for k, r in sorted(rules.items())), ""]
    for split in ("test", "dev"):
        by: dict[str, dict[str, Any]] = {}
        for mode in sorted({r.mode for r in rows}):
            mine = [r for r in rows if r.mode == mode and r.split == split]
            by[f"{mode} (all)"] = metrics(mine, rules)
            for name in sorted({r.dataset for r in mine}):
                by[f"{mode} {name}"] = metrics([r for r in mine if r.dataset == name], rules)
            for kind in sorted({r.kind for r in mine}):
                by[f"{mode} kind={kind}"] = metrics([r for r in mine if r.kind == kind], rules)
        report[split] = by
        md.append(_table(f"{split} questions", by))
        md.append("")
    test = [r for r in rows if r.split == "test"]
    md += [
        "### Trade-off on test (each kind's chosen weight; one threshold for all kinds)",
        "",
        "| min_score | answer_rate | abstention_rate |",
        "|---|---|---|",
    ]
    for th in THRESHOLDS:
        m = metrics(test, {k: r.model_copy(update={"min_score": th}) for k, r in rules.items()})
        md.append(f"| {th} | {m['answer_rate']} | {m['abstention_rate']} |")
    md += ["", "### Trade-off on test per kind (chosen weight and gate)", ""]
    for kind, rule in sorted(rules.items()):
        mine = [r for r in test if r.kind == kind]
        if mine:
            cells = []
            for th in THRESHOLDS:
                m = metrics(mine, {kind: rule.model_copy(update={"min_score": th})})
                cells.append(f"{th}: {m['answer_rate']}/{m['abstention_rate']}")
            md.append(f"{kind}: " + ", ".join(cells))
    return report, md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.answers", description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="*", type=Path)
    ap.add_argument("--modes", default="extractive", help="comma-separated: extractive,generative")
    ap.add_argument(
        "--limit", type=int, default=None, help="questions per dataset, split and kind (for slow modes)"
    )
    ap.add_argument("--out", type=Path, default=Path("reports/answers"))
    ap.add_argument("--cache", type=Path, default=Path("reports/.cache"))
    ap.add_argument("--replay", type=Path, default=None,
                    help="re-choose thresholds from a results.json of an earlier run (answers nothing)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    base = load_settings()
    rows: list[Row] = []
    from core.llm import get_llm

    if args.replay:
        rows = [Row(**r) for r in json.loads(args.replay.read_text())["rows"]]
        args.datasets = []
    for path in args.datasets:
        ds, qs = _questions(path)
        if args.limit:
            groups: dict[tuple[str, bool], list[Any]] = {}
            for q in qs:
                groups.setdefault((q[2], q[3]), []).append(q)
            qs = [q for g in groups.values() for q in g[: args.limit]]
        target = corpus_index(ds, base, args.cache)
        para = _paraphrases(path)
        for mode in args.modes.split(","):
            s = _settings_for(base, target, mode.strip())
            llm = get_llm(s)
            for i, q in enumerate(qs):
                rows.append(run_one(ds, target, s, q, mode.strip(), llm))
                if q[0] in para:  # reported apart: the same facts, asked in other words
                    rows[-1].dataset = f"{ds.name}/paraphrased"
                if (i + 1) % 25 == 0:
                    print(f"{ds.name} {mode}: {i + 1}/{len(qs)}", flush=True)
    defaults = dict(base.answer.abstain)
    report, md = build_report(rows, defaults)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    (args.out / "report.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
