"""A SELECT written from the question by rules, without an LLM: the SQL writer for a model too
small to write SQL (the embedded 135M model wrote a usable query for 8 of 25 routed questions,
naming columns that do not exist in 14 of its 21 failed attempts; README "Tables and SQL").

The rules read one table (the router's best match) and cover the common shapes of a question
about table data, and nothing else:

    which / who ... highest | most | largest ... <number column>   -> ORDER BY it DESC LIMIT 1
    ... lowest | least | smallest ...                               -> ORDER BY it ASC LIMIT 1
    ... the second / third ... highest                             -> ... LIMIT 1 OFFSET 1 / 2
    which has more <number column>, A or B?                         -> the larger of A and B
    how many ... (no number column named)                           -> COUNT(*) (with no filter,
                                                                        only of what the rows are)
    total | sum ... <number column>                                  -> SUM(it)
    average | mean ... <number column>                               -> AVG(it)
    <a cell value> ... (a column named, or none of the above)        -> the matching rows
    (several values of one column, "how much longer is A than B": the rows of each, no difference)

Filters come from cell values the question quotes ("in Kenya", "2023", "绿茶"): a text value
found in the question as a whole word (as a substring for Chinese), a number equal to a value of
a whole-number column. A number column is "named" when the question shares a term with its
name. Where a shape needs a number column and none is named (and the table has more than one),
or a lookup has no filter, there is no plan and the passages answer: the rules never guess.
Every value comes from the table itself (never from the question's text) and is written as a
SQLite literal, quotes doubled; the statement then runs through the same read-only checks as a
model's (`TableStore.run_readonly`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.keyword import tokenize
from core.tables import ROW, TableInfo, TableStore, quote
from retrieval.quantity import counted_phrase

_MAX = re.compile(r"\b(highest|most|largest|biggest|greatest|maximum|max|top|best|longest|heaviest)\b"
                  r"|最高|最多|最大|最长|最重", re.I)
_MIN = re.compile(r"\b(lowest|least|smallest|fewest|minimum|min|shortest|lightest)\b"
                  r"|最低|最少|最小|最短|最轻", re.I)
_COUNT = re.compile(r"\b(how many|number of|count)\b|多少个|几个|几种|多少种|几家|多少家|几位", re.I)
_SUM = re.compile(r"\b(total|sum|altogether|combined|in all)\b|总共|总计|合计|总和|一共|总", re.I)
_AVG = re.compile(r"\b(average|mean)\b|平均", re.I)
# "the second highest": the nth row of the superlative's order
_ORDINAL = re.compile(r"\b(second|2nd|third|3rd|fourth|4th|fifth|5th)\b|第([二三四五])", re.I)
_ORDINALS = {"second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5,
             "二": 2, "三": 3, "四": 4, "五": 5}
# "Which has more beds, A or B?": the larger of the rows named (a difference, "how much more",
# is not computed: both rows are shown)
_MORE = re.compile(r"\b(more|larger|bigger|longer|higher|greater|heavier|older)\b|更多|更长|更大|更高", re.I)
_LESS = re.compile(r"\b(fewer|less|smaller|shorter|lower|lighter|younger)\b|更少|更短|更小|更低", re.I)
_WHICH = re.compile(r"\b(which|who|what)\b|哪", re.I)
_HOW_MUCH = re.compile(r"\bhow (much|many)\b|多少|几", re.I)
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")
_CJK = re.compile(r"[\u3400-\u9fff]")
# The words a count counts: in English `quantity.counted_phrase` ("how many fiction titles ...",
# "the number of suppliers ..."); in Chinese the word after 多少 / 几 and its measure word ("有几种
# 茶", "多少个供应商")
_COUNTED_ZH = re.compile(r"(?:多少|几)[个种家位条项类款名只]?([\u4e00-\u9fff]{1,4})")
# Counting the table's rows by these words needs no name of the table
_ROW_WORDS = frozenset(tokenize("rows records entries items lines"))
MAX_VALUES = 500  # distinct values read per text column


@dataclass
class RulePlan:
    sql: str
    shape: str  # max | min | count | sum | avg | lookup
    table: str
    reason: str


def _literal(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _named(question_terms: set[str], info: TableInfo, col: str) -> int:
    """Terms the question shares with a column's name (as found, and as stored)."""
    name = f"{info.original(col)} {col.replace('_', ' ')}"
    return len(question_terms & set(tokenize(name)))


def _mentions(question: str, value: str) -> bool:
    v = value.strip().casefold()
    if len(v) < 2 or _NUMBER.fullmatch(v):
        return False
    if _CJK.search(v):
        return v in question
    return re.search(rf"(?<!\w){re.escape(v)}(?!\w)", question) is not None


def _filters(question: str, info: TableInfo, store: TableStore) -> list[tuple[str, list[object]]]:
    """(column, values) for the cell values the question quotes: every value of a column it
    names ("Orthopedics or Geriatrics"), less those inside a longer one it also names."""
    q = question.casefold()
    numbers = {float(n) for n in _NUMBER.findall(question)}
    out: list[tuple[str, list[object]]] = []
    for col, kind in zip(info.sql_columns, info.types, strict=True):
        if col == ROW:
            continue
        c, t = quote(col), quote(info.name)
        if kind == "TEXT":
            res = store.run_readonly(f"SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL", MAX_VALUES, 2.0)
            found = [str(r[0]) for r in res.rows if _mentions(q, str(r[0]))]
            found = [v for v in found if not any(v != w and v.casefold() in w.casefold() for w in found)]
            if found:
                out.append((col, list(dict.fromkeys(found))))
        elif kind == "INTEGER" and numbers:
            res = store.run_readonly(f"SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL", MAX_VALUES, 2.0)
            hit = [r[0] for r in res.rows if float(r[0]) in numbers]
            if len(hit) == 1:
                out.append((col, [hit[0]]))
    return out


def counts_rows(question: str, info: TableInfo) -> bool:
    """Whether a count asks for the table's rows: the words it counts name them (the table's
    name or caption, its first text column, or "rows", "entries"). A COUNT(*) with no filter
    answers the same for any question the router sends, so it must be about these rows:
    "How many times can oolong tea leaves be infused?" reached the sample's grind table by its
    "Contact time" column and was answered "Count: 5" (its number of brewing methods)."""
    label = next((c for c, k in zip(info.columns, info.types, strict=True) if k == "TEXT"), "")
    names = f"{info.name.replace('_', ' ')} {info.caption} {label}"
    counted = counted_phrase(question)  # "How many teas ...": "teas" (retrieval/quantity.py)
    if counted is not None:
        return bool(set(tokenize(counted)) & (set(tokenize(names)) | _ROW_WORDS))
    zh = _COUNTED_ZH.search(question)  # jieba cuts 茶 and 茶名 apart: by character
    return zh is not None and any(c in names for c in zh.group(1)[:2])


def plan(question: str, info: TableInfo, store: TableStore, show_rows: int = 10) -> RulePlan | None:
    """The SELECT for `question` over `info`, or None when no rule fits (module docstring)."""
    terms = set(tokenize(question))
    filters = _filters(question, info, store)
    used = {c for c, _ in filters}
    numeric = [c for c, k in zip(info.sql_columns, info.types, strict=True)
               if k in ("INTEGER", "REAL") and c not in used and c != ROW]
    named = sorted(((n, c) for c in numeric if (n := _named(terms, info, c)) > 0), key=lambda x: -x[0])
    measure = named[0][1] if named else (numeric[0] if len(numeric) == 1 else None)
    # what the answer names: the column whose values the question compares, else the first
    # text column the question did not fix
    label = next((c for c, vs in filters if len(vs) > 1), None) or next(
        (c for c, k in zip(info.sql_columns, info.types, strict=True) if k == "TEXT" and c not in used), None)
    where = " AND ".join(f"{quote(c)} = {_literal(vs[0])}" if len(vs) == 1 else
                         f"{quote(c)} IN ({', '.join(_literal(v) for v in vs)})" for c, vs in filters)
    several = any(len(vs) > 1 for _, vs in filters)
    t = quote(info.name)
    cond = f" WHERE {where}" if where else ""
    why = f"filters {', '.join(f'{info.original(c)} in {vs}' for c, vs in filters) or 'none'}"
    which = bool(_WHICH.search(question)) and not _HOW_MUCH.search(question)
    shape = ("max" if _MAX.search(question) else "min" if _MIN.search(question)
             else "max" if several and which and _MORE.search(question)
             else "min" if several and which and _LESS.search(question)
             else "lookup" if several
             else "avg" if _AVG.search(question) else "sum" if _SUM.search(question)
             else "count" if _COUNT.search(question) and not named else "lookup")
    m = _ORDINAL.search(question)
    nth = _ORDINALS[(m.group(1) or m.group(2)).lower()] if m and shape in ("max", "min") else 1
    if shape in ("max", "min", "avg", "sum") and measure is None:
        return None
    if shape == "count" and not filters and not counts_rows(question, info):
        return None  # a count of every row, but not of what the question counts
    if shape in ("max", "min"):
        assert measure is not None
        cols = ", ".join(quote(c) for c in dict.fromkeys([ROW, *(x for x in [label] if x), *used, measure]))
        sql = (f"SELECT {cols} FROM {t}{cond} ORDER BY {quote(measure)} "
               f"{'DESC' if shape == 'max' else 'ASC'} LIMIT 1" + (f" OFFSET {nth - 1}" if nth > 1 else ""))
    elif shape in ("sum", "avg"):
        assert measure is not None
        fn = "SUM" if shape == "sum" else "AVG"
        sql = f"SELECT {fn}({quote(measure)}) AS {quote(f'{shape}_{measure}')} FROM {t}{cond}"
    elif shape == "count":
        sql = f"SELECT COUNT(*) AS {quote('count')} FROM {t}{cond}"
    else:
        if not filters:
            return None
        sql = f"SELECT * FROM {t}{cond} ORDER BY {ROW} LIMIT {int(show_rows)}"
    return RulePlan(sql, shape, info.name, f"{shape} over {info.name}; {why}"
                    + (f"; measure {info.original(measure)}" if measure and shape != "lookup" else ""))
