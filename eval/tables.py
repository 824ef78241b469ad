"""Text-to-SQL measured against the same pipeline without it:
`rag eval --tables data/eval/tables` or
`python -m eval.tables data/eval/tables [--arms rules,llm,off] [--limit N] [--out DIR]`.

The set's `docs/` folder is ingested (the real `ingest.pipeline.ingest`) into a fresh temporary
index; then, for every question of `questions.jsonl` ({_id, text, lang, kind: table|prose,
expected: [values], wrong: [values], source: file, answer}):
- the router's decision (`retrieval.sql.is_table_question`) against the label `kind == "table"`:
  precision, recall, accuracy;
- the whole answer path (`retrieval.answer.ask`, as `rag ask` runs it) with the configured LLM,
  once per arm (`ARMS`: the rules write the SQL, the model writes it, `auto`, or `off`:
  passages only). Per answer: correct when every expected value is in
  the answer's text (numbers compared as numbers: 7,100 == 7100 == 7100.0; an answer with more
  decimals is rounded to the expected value's); strict when, besides, it names none of the
  question's `wrong` values (the other rows' candidates: a dump of the whole table is not an
  answer); whether it came from table rows, citing the question's table; whether the SQL step
  fell back, and why (the `sql` trace entry).
Prints a Markdown summary and writes it (report.md) with results.json under --out."""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from core.settings import Settings, load_settings
from eval import configs as cfgs

log = logging.getLogger(__name__)

# A number as answers write it: 7,100 / 7100 / 7100.0 / -3.5 (thousands commas only in groups of 3).
_NUM = re.compile(r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_MARKER = re.compile(r"\[\d+\]")
_SPACE = re.compile(r"\s+")


@dataclass
class Question:
    qid: str
    text: str
    lang: str
    kind: str  # table | prose
    expected: list[str]
    wrong: list[str] = field(default_factory=list)  # the other candidates (other rows' values)
    source: str = ""  # the file that answers it ("" for a question no document answers)

    @property
    def is_table(self) -> bool:
        return self.kind == "table"


@dataclass
class Answer:
    """One question answered in one arm (sql.mode)."""

    qid: str
    arm: str  # the arm (ARMS) it ran with
    kind: str
    answer: str
    correct: bool | None  # every expected value is in the answer (None: nothing expected)
    strict: bool | None  # correct, and no `wrong` value is (a dump of the whole table is not)
    from_sql: bool  # the answer is table rows (mode "sql")
    cited_table: bool  # a table citation from the question's source file
    cited_source: bool  # any citation from the question's source file
    abstained: bool
    sql: str  # answered | fallback | router_no | skipped | not_run
    reason: str = ""  # why (skipped / fallback), coarse
    errors: list[str] = field(default_factory=list)  # per failed SQL attempt, coarse
    written_sql: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- scoring (pure) ---------------------------------------------------------------------------

def number(text: str) -> Decimal | None:
    """`text` as a number when the whole of it is one (7,100 -> 7100; 7100.0 -> 7100.0), else None."""
    t = text.strip()
    m = _NUM.fullmatch(t)
    if m is None:
        return None
    try:
        return Decimal(t.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def numbers_in(text: str) -> list[Decimal]:
    """Every number written in `text` (citation markers [n] left out)."""
    return [Decimal(m.replace(",", "")) for m in _NUM.findall(_MARKER.sub(" ", text))]


def same_number(expected: Decimal, found: Decimal) -> bool:
    """Equal as numbers (7100 == 7100.0 == 7,100); a `found` with more decimals than `expected`
    is rounded (half up) to its places, so an average 3.6667 answers 3.67."""
    if expected == found:
        return True
    places = _places(expected)
    return _places(found) > places and found.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP) == expected


def _places(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def _squash(text: str) -> str:
    return _SPACE.sub("", text).casefold()


def value_found(expected: str, answer: str) -> bool:
    """A number anywhere among the answer's numbers; other text as a substring (case and
    whitespace ignored)."""
    n = number(expected)
    if n is not None:
        return any(same_number(n, f) for f in numbers_in(answer))
    return _squash(expected) in _squash(answer)


def is_correct(expected: list[str], answer: str) -> bool | None:
    """Every expected value is in the answer; None when nothing is expected."""
    if not expected:
        return None
    return all(value_found(e, answer) for e in expected)


def is_strict(expected: list[str], wrong: list[str], answer: str) -> bool | None:
    """Correct, and none of the other candidates is named: an answer that lists every row holds
    the right value too, but does not answer the question."""
    ok = is_correct(expected, answer)
    return ok if not ok else not any(value_found(w, answer) for w in wrong)


def router_metrics(labels: list[bool], predicted: list[bool]) -> dict[str, Any]:
    """Precision, recall and accuracy of the router's yes (predicted) against table questions (labels)."""
    tp = sum(a and b for a, b in zip(labels, predicted, strict=True))
    fp = sum(b and not a for a, b in zip(labels, predicted, strict=True))
    fn = sum(a and not b for a, b in zip(labels, predicted, strict=True))
    tn = len(labels) - tp - fp - fn
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "accuracy": round((tp + tn) / len(labels), 3) if labels else None,
    }


_ERRORS = ("no such column", "no such table", "no such function", "syntax error", "incomplete SQL",
           "wrote nothing", "returns no rows", "time limit", "not authorized", "ambiguous column",
           "misuse of aggregate", "no SQL statement", "only execute one statement")


def coarse(message: str) -> str:
    """A SQL error or fallback message without the names in it, so like ones count together."""
    for e in _ERRORS:
        if e.lower() in message.lower():
            return e
    return re.split(r" \(|; |: ", message, maxsplit=1)[0][:60]


def head(message: str) -> str:
    """A fallback message's first clause: "no usable SQL after a retry (OperationalError: ...);
    answering from passages" -> "no usable SQL after a retry"."""
    return re.split(r" \(|; ", message, maxsplit=1)[0][:80]


def sql_status(detail: dict[str, Any] | None) -> tuple[str, str, list[str]]:
    """(status, reason, attempt errors) from an answer's `sql` trace entry; no entry (sql.mode
    off: the step returns before it writes one) is "not_run"."""
    if detail is None:
        return "not_run", "", []
    errors = [coarse(a["error"]) for a in detail.get("attempts", []) if a.get("error")]
    if "skipped" in detail:
        return "skipped", str(detail["skipped"]), errors
    if not detail.get("route", {}).get("go", False):
        return "router_no", str(detail.get("route", {}).get("reason", "")), errors
    if "fallback" in detail:
        return "fallback", head(str(detail["fallback"])), errors
    return "answered", "", errors


# --- running ----------------------------------------------------------------------------------

def load_questions(path: Path) -> list[Question]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out.append(Question(r["_id"], r["text"], r.get("lang", ""), r["kind"], list(r["expected"]),
                                    list(r.get("wrong", [])), r.get("source", "")))
    return out


def _answer(q: Question, arm: str, settings: Settings, index: Any, llm: Any) -> Answer:
    from retrieval.answer import ask

    t0 = time.perf_counter()
    res = ask(q.text, settings, index=index, llm=llm)
    secs = time.perf_counter() - t0
    detail = next((t.detail for t in res.trace if t.stage == "sql"), None)
    status, reason, errors = sql_status(detail)
    text = res.answer if not res.abstained else ""
    mine = [c for c in res.citations if q.source and Path(c.source).name == q.source]
    return Answer(
        q.qid, arm, q.kind, res.answer, is_correct(q.expected, text), is_strict(q.expected, q.wrong, text),
        res.mode == "sql",
        any(c.table for c in mine), bool(mine), res.abstained, status, reason, errors,
        [a.get("sql", "") for a in (detail or {}).get("attempts", [])], round(secs, 3),
    )


def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


def arm_summary(rows: list[Answer]) -> dict[str, Any]:
    """Per arm: answer accuracy on table and prose questions, how many table answers came from
    rows and cited their table, prose questions taken by SQL, fallbacks by reason, p50 seconds."""
    table = [r for r in rows if r.kind == "table"]
    prose = [r for r in rows if r.kind != "table" and r.correct is not None]
    secs = [r.seconds for r in rows]
    return {
        "table_questions": len(table),
        "table_correct": _rate([bool(r.correct) for r in table]),
        "table_strict": _rate([bool(r.strict) for r in table]),
        "table_from_sql": sum(r.from_sql for r in table),
        "table_cited_table": sum(r.cited_table for r in table),
        "table_sql_correct_strict": f"{sum(bool(r.correct) and r.from_sql for r in table)} / "
                                    f"{sum(bool(r.strict) and r.from_sql for r in table)}",
        "prose_questions": len(prose),
        "prose_correct": _rate([bool(r.correct) for r in prose]),
        "prose_answered_by_sql": sum(r.from_sql for r in rows if r.kind != "table"),
        "abstained": sum(r.abstained for r in rows),
        "sql_status": dict(Counter(r.sql for r in rows)),
        "fallback_reasons": dict(Counter(r.reason for r in rows if r.sql == "fallback")),
        "attempt_errors": dict(Counter(e for r in rows for e in r.errors)),
        "p50_s": round(statistics.median(secs), 2) if secs else None,
        "total_s": round(sum(secs), 1),
    }


ROWS = [  # (label, arm_summary key) of the report's table
    ("table questions: correct (every expected value in the answer)", "table_correct"),
    ("table questions: strict (correct, no other row's value named)", "table_strict"),
    ("table questions answered from rows (SQL)", "table_from_sql"),
    ("... citing the question's table", "table_cited_table"),
    ("... correct / strict", "table_sql_correct_strict"),
    ("other questions: correct", "prose_correct"),
    ("other questions answered from rows (SQL)", "prose_answered_by_sql"),
    ("abstained (all questions)", "abstained"),
    ("p50 seconds per question", "p50_s"),
    ("total seconds", "total_s"),
]


def markdown(report: dict[str, Any]) -> list[str]:
    r = report["router"]
    keys = ["precision", "recall", "accuracy", "tp", "fp", "fn", "tn"]
    md = [f"Set {report['set']}: {report['questions']} questions ({report['table_questions']} about table "
          f"data); LLM {report['llm']}; answer mode {report['answer_mode']}.", "",
          "| router | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|",
          "| is_table_question | " + " | ".join(str(r[k]) for k in keys) + " |", ""]
    arms = list(report["arms"])
    md += ["| | " + " | ".join(f"arm {a}" for a in arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for label, key in ROWS:
        md.append(f"| {label} | " + " | ".join(str(report["arms"][a][key]) for a in arms) + " |")
    for arm, s in report["arms"].items():
        md += ["", f"arm {arm}: steps {s['sql_status']}; fallbacks {s['fallback_reasons'] or '{}'}; "
                   f"failed SQL attempts {s['attempt_errors'] or '{}'}"]
    return md


def per_question(report: dict[str, Any]) -> list[str]:
    """One line per question: the router's call, then per arm the SQL step and the score."""
    arms = list(report["arms"])
    by = {(r["qid"], r["arm"]): r for r in report["rows"]}
    md = ["| question | kind | router | " + " | ".join(f"{a}: sql step, correct/strict" for a in arms) + " |",
          "|---" * (len(arms) + 3) + "|"]
    for qid, route in report["routes"].items():
        cells = []
        for a in arms:
            r = by[(qid, a)]
            score = "-" if r["correct"] is None else f"{int(r['correct'])}/{int(bool(r['strict']))}"
            cells.append(f"{r['sql']}{' (' + r['reason'] + ')' if r['sql'] == 'fallback' else ''}, {score}")
        md.append(f"| {qid} | {by[(qid, arms[0])]['kind']} | {'yes' if route['go'] else 'no'} | "
                  + " | ".join(cells) + " |")
    return md


# The arms a run compares: each is settings overrides of the `sql` section.
ARMS: dict[str, dict[str, str]] = {
    "auto": {"mode": "auto"},  # what a user gets: the model writes SQL when capable, else the rules
    "rules": {"mode": "on", "writer": "rules"},  # retrieval/sql_rules.py, no LLM call
    "llm": {"mode": "on", "writer": "llm"},  # the model writes it, whatever its size
    "on": {"mode": "on"},
    "off": {"mode": "off"},  # passages only
}


def run(folder: Path, arms: list[str], limit: int | None, base: Settings) -> dict[str, Any]:
    from core.index import Index
    from core.llm import get_llm
    from ingest.pipeline import ingest
    from retrieval.respond import choose_mode
    from retrieval.sql import is_table_question

    for need in ("docs", "questions.jsonl"):
        if not (folder / need).exists():
            from eval.datasets import DatasetError

            raise DatasetError(f"{folder} is not a table-question set: it has no {need}; point it at a "
                               "folder like data/eval/tables (docs/ and questions.jsonl).")
    questions = load_questions(folder / "questions.jsonl")
    if limit:  # the first `limit` of each kind, so both stay represented
        questions = ([q for q in questions if q.is_table][:limit]
                     + [q for q in questions if not q.is_table][:limit])
    if unknown := [a for a in arms if a not in ARMS]:
        from eval.datasets import DatasetError

        raise DatasetError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    with tempfile.TemporaryDirectory(prefix="rag-eval-tables-") as tmp:
        s = cfgs.apply(base, {"index_dir": tmp, "collection": "eval", "chroma_url": None})
        index = Index(s)
        rep = ingest([folder / "docs"], s, prune=True, index=index)
        llm = get_llm(s)
        routes = {q.qid: is_table_question(q.text, index.tables, s) for q in questions}
        rows: list[Answer] = []
        warm = next((q for q in questions if q.is_table), questions[0])
        _answer(warm, arms[0], cfgs.apply(s, {"sql": ARMS[arms[0]]}), index, llm)  # loads the models:
        # untimed, so the first arm's first question does not pay for loading them
        for arm in arms:
            arm_s = cfgs.apply(s, {"sql": ARMS[arm]})
            for i, q in enumerate(questions, 1):
                rows.append(_answer(q, arm, arm_s, index, llm))
                log.info("%s %d/%d %s", arm, i, len(questions), rows[-1].sql)
        report: dict[str, Any] = {
            "set": str(folder), "questions": len(questions),
            "table_questions": sum(q.is_table for q in questions),
            "llm": f"{llm.backend} {llm.model}", "answer_mode": choose_mode(s, llm)[0],
            "ingest": {"files": len(rep.files),
                       "failed": [f"{Path(f.path).name}: {f.error}" for f in rep.failed],
                       "tables": [t.name for t in index.tables.catalogue()],
                       "seconds": round(rep.seconds, 1)},
            "router": router_metrics([q.is_table for q in questions], [routes[q.qid].go for q in questions]),
            "routes": {k: v.to_dict() for k, v in routes.items()},
            "arms": {arm: arm_summary([r for r in rows if r.arm == arm]) for arm in arms},
            "rows": [asdict(r) for r in rows],
        }
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.tables", description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="a set like data/eval/tables (docs/ and questions.jsonl)")
    ap.add_argument("--arms", default="rules,llm,off",
                    help=f"comma-separated arms to compare, from {', '.join(ARMS)} (default rules,llm,off)")
    ap.add_argument("--limit", type=int, default=None, help="the first N table and N other questions")
    ap.add_argument("--out", type=Path, default=Path("reports/tables"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = run(args.folder, [a.strip() for a in args.arms.split(",") if a.strip()], args.limit,
                 load_settings())
    md = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    full = [*md, "", "### Per question", "", *per_question(report)]
    (args.out / "report.md").write_text("\n".join(full) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
