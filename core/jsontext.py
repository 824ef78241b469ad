"""Finding the JSON value in an LLM's reply: the whole text, a ``` fence, the first balanced
{...} / [...], or a truncated value closed. Shared by the query path (retrieval/parse.py:
routes, filters, lists) and ingest (ingest/graph.py: extracted entities and relations), so it
lives here; it never raises."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _balanced(text: str, start: int) -> str | None:
    """The JSON object/array starting at `start`, by bracket matching outside strings."""
    opener = text[start]
    closer = "}" if opener == "{" else "]"
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def _loads(s: str) -> Any:
    """json.loads, then a light repair (trailing commas, single quotes, Python literals)."""
    try:
        return json.loads(s)
    except (json.JSONDecodeError, RecursionError):
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", s)
    fixed = re.sub(r"\bNone\b", "null", re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", fixed)))
    if '"' not in fixed:
        fixed = fixed.replace("'", '"')
    try:
        return json.loads(fixed)
    except (json.JSONDecodeError, RecursionError):
        return None


def extract_json(text: str) -> tuple[Any, list[str]]:
    """The first JSON value in `text` (whole text, a ``` fence, or the first balanced {...} / [...]).
    Returns (value or None, notes)."""
    notes: list[str] = []
    if not text or not text.strip():
        return None, ["empty output"]
    value = _loads(text.strip())
    if value is not None:
        return value, notes
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates += [b for i, c in enumerate(text) if c in "{[" and (b := _balanced(text, i))]
    for cand in candidates:
        value = _loads(cand.strip())
        if value is not None:
            notes.append("JSON found inside surrounding text")
            return value, notes
    # Truncated output (max_tokens hit): close open strings/brackets and retry once.
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        value = _loads(_close(text[start:]))
        if value is not None:
            notes.append("truncated JSON closed")
            return value, notes
    notes.append("no parseable JSON")
    return None, notes


def _close(s: str) -> str:
    stack: list[str] = []
    in_str = esc = False
    for c in s:
        if in_str:
            esc = (not esc) if c == "\\" else False
            if c == '"' and not esc:
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]" and stack:
            stack.pop()
    s = s.rstrip().rstrip(",")
    return s + ('"' if in_str else "") + "".join(reversed(stack))
