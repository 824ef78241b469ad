"""Follow-up rewriting: a question that leans on the chat becomes standalone; whatever the
model writes, the result is usable and the trace says how it was made."""

from __future__ import annotations

import pytest

from core.llm import LlamaCppLLM
from core.settings import load_settings
from core.types import TraceEntry
from retrieval.conversation import check_rewrite, clean_rewrite, condense

HISTORY = [
    {"role": "user", "content": "What is a transformer model?"},
    {"role": "assistant", "content": "A transformer is a neural network built on self-attention."},
]


def test_labels_quotes_and_extra_lines_are_stripped() -> None:
    assert clean_rewrite('Standalone question: "How is a transformer trained?"\nIt is trained...') == (
        "How is a transformer trained?"
    )
    assert clean_rewrite("\n\n  **How is it trained?**  ") == "How is it trained?"
    assert clean_rewrite("   \n") == ""


def test_unusable_rewrites_are_refused_with_a_reason() -> None:
    q = "and how is it trained?"
    assert check_rewrite("How is a transformer model trained?", q, HISTORY) is None
    assert check_rewrite("", q, HISTORY) == "empty rewrite"
    assert check_rewrite("x" * 400, q, HISTORY) == "rewrite too long"
    assert check_rewrite("How is it trained?", q, HISTORY) == "rewrite adds nothing from the conversation"
    echoed = "A transformer is a neural network built on self-attention."  # what SmolLM2 once wrote
    assert check_rewrite(echoed, q, HISTORY).startswith("rewrite is not a question")
    assert check_rewrite("Explain how transformer models are trained", q, HISTORY) is None
    zh = [{"role": "user", "content": "什么是变压器模型？"}]
    assert check_rewrite("变压器模型是如何训练的", "它是怎么训练的？", zh) is None


def test_without_history_the_question_is_unchanged() -> None:
    trace: list[TraceEntry] = []
    llm = LlamaCppLLM(load_settings())  # never called: nothing to rewrite
    assert condense("How is a transformer trained?", None, llm, load_settings(), trace) == (
        "How is a transformer trained?"
    )
    assert condense("q?", [{"role": "user", "content": "  "}], llm, load_settings(), trace) == "q?"
    assert trace == []


@pytest.mark.slow
def test_follow_up_becomes_standalone_with_the_real_model() -> None:
    settings = load_settings(llm={"provider": "llamacpp", "temperature": 0.0})
    trace: list[TraceEntry] = []
    out = condense("and how is it trained?", HISTORY, LlamaCppLLM(settings), settings, trace)
    assert "transformer" in out.lower()  # the reference is resolved, by the model or by the fallback
    (entry,) = trace
    assert entry.stage == "condense" and entry.detail["standalone"] == out and "raw" in entry.detail
