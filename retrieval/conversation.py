"""Follow-up questions in a chat: "and how is it trained?" becomes a standalone question
("How is a transformer trained?") before retrieval, using the recent chat history.

The LLM's rewrite is parsed defensively: labels, quotes and extra lines are stripped, and
a rewrite that is empty, far too long, reads like an answer, or (for a short follow-up)
brings in nothing from the conversation is replaced by the last user question joined with
the follow-up, which still retrieves the right topic. The trace says which happened."""

from __future__ import annotations

import logging
import re
import time

from core.errors import RagError
from core.keyword import tokenize
from core.llm import LLM, Message
from core.settings import Settings
from core.types import TraceEntry

log = logging.getLogger(__name__)

HISTORY_TURNS = 6  # messages of history shown to the model
TURN_CHARS = 600  # each cut to this many characters
SHORT_FOLLOW_UP = 8  # words; a follow-up this short usually leans on the conversation

SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation: "
    "replace pronouns and references with what they refer to. Do not answer it. "
    "Reply with the rewritten question only."
)
_QUESTION_START = re.compile(
    r"(?:and |but |so )?(?:what|how|why|when|where|which|who|whom|whose|is|are|was|were|do|does|did|"
    r"can|could|should|would|will|may|might|has|have|had|tell me|explain|describe|list|compare)\b", re.I)
_ZH_QUESTION = re.compile(r"[吗呢么]|什么|怎么|如何|为什么|哪|多少|是否")
_LABEL = re.compile(r"^\s*(?:standalone|rewritten|reformulated|new)?\s*(?:question|query)\s*[:：-]\s*", re.I)


def _history_text(history: list[Message]) -> str:
    lines = []
    for m in history[-HISTORY_TURNS:]:
        role = "User" if m.get("role") == "user" else "Assistant"
        content = " ".join(str(m.get("content", "")).split())[:TURN_CHARS]
        lines.append(f"{role}: {content}")
    return "\n".join(lines)


def clean_rewrite(raw: str) -> str:
    """The first non-empty line without labels or quotes."""
    for line in raw.strip().splitlines():
        line = _LABEL.sub("", line.strip()).strip().strip("\"'`“”‘’*").strip()
        if line:
            return line
    return ""


def _last_user(history: list[Message]) -> str:
    for m in reversed(history):
        if m.get("role") == "user" and str(m.get("content", "")).strip():
            return " ".join(str(m["content"]).split())
    return ""


def _is_question(text: str) -> bool:
    t = text.strip()
    return t.endswith(("?", "？")) or bool(_QUESTION_START.match(t)) or bool(_ZH_QUESTION.search(t))


def check_rewrite(rewrite: str, question: str, history: list[Message]) -> str | None:
    """Why `rewrite` is unusable, or None when it is fine."""
    if not rewrite:
        return "empty rewrite"
    if len(rewrite) > max(300, 3 * len(question)):
        return "rewrite too long"
    if _is_question(question) and not _is_question(rewrite):
        return "rewrite is not a question (the model answered or echoed instead)"
    if len(question.split()) <= SHORT_FOLLOW_UP:
        context = set(tokenize(_history_text(history)))
        new = set(tokenize(rewrite)) - set(tokenize(question))
        if not new & context:
            return "rewrite adds nothing from the conversation"
    return None


def condense(
    question: str, history: list[Message] | None, llm: LLM, settings: Settings, trace: list[TraceEntry],
) -> str:
    """A standalone form of `question` given the chat `history` (unchanged when there is none)."""
    if not history or not any(str(m.get("content", "")).strip() for m in history):
        return question
    t0 = time.perf_counter()
    detail: dict[str, object] = {"question": question}
    user = f"Conversation:\n{_history_text(history)}\n\nLast question: {question}\nRewritten question:"
    try:
        raw = llm.complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                           max_tokens=64, temperature=0.0)
    except RagError:  # Ollama down, model not pulled: the user must fix it, say so now
        raise
    except Exception as e:  # anything else the backend throws: fall back, never crash the query
        raw, detail["error"] = "", f"{type(e).__name__}: {e}"
    rewrite = clean_rewrite(raw)
    why = check_rewrite(rewrite, question, history)
    detail["raw"] = raw[:500]
    if why is None:
        out = rewrite
    else:
        last = _last_user(history)
        out = f"{last} {question}".strip() if last else question
        detail["fallback"] = why
        log.info("follow-up rewrite not used (%s); using %r", why, out)
    detail["standalone"] = out
    trace.append(TraceEntry("condense", (time.perf_counter() - t0) * 1000, detail))
    return out
