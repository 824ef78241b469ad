"""Defensive parsing of LLM output. Small models answer with malformed JSON, prose around
the JSON, a bare list, numbered lines, empty lists, duplicates or fifty items; every
function here returns a usable value plus notes saying what was repaired or why the
fallback was taken, and never raises."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.jsontext import extract_json

_LIST_MARK = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|[a-zA-Z][.)]|Q\d*[:.])\s*")
_LABEL = re.compile(
    r"^\s*(?:answer|passage|question|query|queries|step[- ]back question|general question|"
    r"sub[- ]?questions?|output|response)\s*:\s*", re.I
)


@dataclass
class Parsed:
    """A parsed value; `fallback` is True when the value is the caller's fallback."""

    value: Any
    fallback: bool = False
    notes: list[str] = field(default_factory=list)


def clean_line(s: str) -> str:
    """One query/question: list marks, labels, quotes and extra whitespace removed."""
    s = " ".join(str(s).split())
    s = _LIST_MARK.sub("", s)
    s = _LABEL.sub("", s)
    return s.strip().strip("\"'`“”‘’").strip()


def _norm(s: str) -> str:
    return re.sub(r"[^\w]+", " ", s.casefold()).strip()


def _junk(s: str) -> bool:
    """Labels and identifiers a small model emits instead of queries ("Synonyms:", "query_1")."""
    return s.endswith(":") or (" " not in s and bool(re.search(r"_|[a-z][A-Z]", s)))


def related(text: str, to: str) -> bool:
    """Shares at least one content word (stemmed; CJK segmented) with `to`: a rewording of the
    question does, a copied prompt example or an unrelated hallucination does not."""
    from core.keyword import tokenize

    ref = set(tokenize(to))
    return not ref or bool(ref & set(tokenize(text)))


def _items_from(value: Any, keys: tuple[str, ...]) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for k in keys:
            if isinstance(value.get(k), list):
                return list(value[k])
        lists = [v for v in value.values() if isinstance(v, list)]
        if lists:
            return lists[0]
        strs = [v for v in value.values() if isinstance(v, str)]
        return strs or None
    if isinstance(value, str):
        return [value]
    return None


ITEM_MIN_CHARS, ITEM_MAX_CHARS = 3, 300  # a list item shorter is noise, longer is cut


def parse_list(
    text: str, keys: tuple[str, ...], limit: int, fallback: list[str], exclude: tuple[str, ...] = (),
    related_to: str | None = None,
) -> Parsed:
    """A list of short strings (queries, sub-questions): JSON under one of `keys`, a bare JSON
    list, or one item per line. Items are cleaned, deduplicated (case and punctuation
    insensitive, also against `exclude`), bounded in length and capped at `limit`; with
    `related_to`, items sharing no content word with it are dropped. Nothing usable -> `fallback`."""
    value, notes = extract_json(text)
    items = _items_from(value, keys) if value is not None else None
    if items is None:
        lines = [ln.strip() for ln in (text or "").splitlines()]
        items = [ln for ln in lines if ln and not ln.startswith(("{", "}"))]
        if items:
            notes.append("read one item per line")
    seen = {_norm(e) for e in exclude}
    out: list[str] = []
    dropped = {"duplicate": 0, "not text": 0, "length": 0, "junk": 0, "off-topic": 0}
    for it in items:
        if isinstance(it, dict):  # [{"query": "..."}]
            it = next((v for v in it.values() if isinstance(v, str)), None)
        if not isinstance(it, str):
            dropped["not text"] += 1
            continue
        s = clean_line(it)
        if len(s) < ITEM_MIN_CHARS:
            dropped["length"] += 1
            continue
        s = s[:ITEM_MAX_CHARS]
        if _junk(s):
            dropped["junk"] += 1
            continue
        if related_to is not None and not related(s, related_to):
            dropped["off-topic"] += 1
            continue
        key = _norm(s)
        if not key or key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        out.append(s)
    notes += [f"dropped {n} {why}" for why, n in dropped.items() if n]
    if len(out) > limit:
        notes.append(f"capped {len(out)} items to {limit}")
        out = out[:limit]
    if not out:
        notes.append("no usable items; fell back")
        return Parsed(list(fallback), True, notes)
    return Parsed(out, False, notes)


def parse_text(text: str, fallback: str, min_chars: int = 8, max_chars: int = 1200,
               keys: tuple[str, ...] = ()) -> Parsed:
    """Free text (a step-back question, a HyDE passage): JSON wrappers unwrapped, labels and
    quotes removed, cut at `max_chars`; too short -> `fallback`."""
    notes: list[str] = []
    s = (text or "").strip()
    if s.startswith(("{", "[", "```")):
        value, n = extract_json(s)
        if isinstance(value, dict):
            got = next((value[k] for k in keys if isinstance(value.get(k), str)), None)
            got = got or next((v for v in value.values() if isinstance(v, str)), None)
            if got:
                s, notes = got, notes + ["unwrapped JSON"]
        elif isinstance(value, list) and value and isinstance(value[0], str):
            s, notes = value[0], notes + ["unwrapped JSON list"]
    s = _LABEL.sub("", " ".join(s.split())).strip().strip("\"'`“”").strip()
    if len(s) > max_chars:
        s = s[:max_chars].rsplit(" ", 1)[0]
        notes.append(f"cut to {max_chars} chars")
    if len(s) < min_chars:
        notes.append("output too short; fell back")
        return Parsed(fallback, True, notes)
    return Parsed(s, False, notes)


def first_question(text: str) -> str:
    """The first sentence that is a question (or the first sentence), for step-back output
    that rambles on after the question."""
    s = " ".join(text.split())
    q = s.find("?")
    if 0 < q < 300:
        return s[: q + 1]
    m = re.search(r"[.!。！](\s|$)", s)
    return s[: m.start() + 1] if m and m.start() < 300 else s[:300]


def parse_choice(text: str, key: str, choices: list[str], fallback: str | None) -> Parsed:
    """One of `choices` under `key` (JSON), matched case-insensitively; also accepts the bare
    name anywhere in prose. Anything else -> `fallback`."""
    value, notes = extract_json(text)
    raw = value.get(key) if isinstance(value, dict) else value if isinstance(value, str) else None
    by_norm = {_norm(c): c for c in choices}
    if isinstance(raw, str) and _norm(raw) in by_norm:
        return Parsed(by_norm[_norm(raw)], False, notes)
    if raw is not None:
        notes.append(f"{key}={raw!r} is not one of {choices}")
    if value is None:  # prose: accept exactly one choice named in it
        named = [c for c in choices if re.search(rf"(?<!\w){re.escape(c)}(?!\w)", text or "", re.I)]
        if len(named) == 1:
            notes.append("choice read from prose")
            return Parsed(named[0], False, notes)
    notes.append(f"fell back to {fallback!r}")
    return Parsed(fallback, True, notes)
