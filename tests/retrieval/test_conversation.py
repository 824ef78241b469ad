"""Follow-up rewriting: a question that leans on the chat becomes standalone; whatever the
model writes, the result is usable and the trace says how it was made."""

from __future__ import annotations

import pytest

from core.llm import LLM, LlamaCppLLM, get_llm
from core.settings import Settings, load_settings
from core.types import TraceEntry
from retrieval.conversation import check_rewrite, clean_rewrite, condense
from tests.ollama_server import OllamaTestServer

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
    reason = check_rewrite(echoed, q, HISTORY)
    assert reason is not None and reason.startswith("rewrite is not a question")
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


def _scripted(srv: OllamaTestServer) -> tuple[Settings, LLM]:
    settings = load_settings(ollama_url=srv.url,
                             llm={"provider": "ollama", "model": "smollm2:135m", "temperature": 0.0})
    return settings, get_llm(settings)


def test_a_capable_models_rewrite_is_the_standalone_question() -> None:
    """A scripted model (a capable one's reply, with a label to strip): its rewrite is used,
    not the fallback, and the model was shown the conversation."""
    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        srv.reply = 'Standalone question: "How is a transformer neural network trained?"'
        settings, llm = _scripted(srv)
        trace: list[TraceEntry] = []
        out = condense("and how is it trained?", HISTORY, llm, settings, trace)
        chats = [r["body"] for r in srv.requests if r["path"] == "/api/chat"]
    assert out == "How is a transformer neural network trained?"
    (entry,) = trace
    assert entry.stage == "condense" and "fallback" not in entry.detail and "error" not in entry.detail
    assert entry.detail["standalone"] == out and entry.detail["raw"] == srv.reply
    (chat,) = chats
    prompt = chat["messages"][-1]["content"]
    assert HISTORY[1]["content"] in prompt and "and how is it trained?" in prompt


def test_an_answer_instead_of_a_rewrite_falls_back_and_says_why() -> None:
    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        srv.reply = HISTORY[1]["content"]  # what SmolLM2 writes: it answers instead
        settings, llm = _scripted(srv)
        trace: list[TraceEntry] = []
        out = condense("and how is it trained?", HISTORY, llm, settings, trace)
    assert out == "What is a transformer model? and how is it trained?"  # last user turn + follow-up
    (entry,) = trace
    assert entry.detail["fallback"].startswith("rewrite is not a question")
    assert entry.detail["standalone"] == out


@pytest.mark.slow
def test_follow_up_with_the_real_model_is_what_the_trace_says() -> None:
    """The embedded 135M model: whatever it writes, the trace tells the rewrite from the fallback,
    and the result is exactly the one the trace names (no silent third path)."""
    settings = load_settings(llm={"provider": "llamacpp", "temperature": 0.0})
    trace: list[TraceEntry] = []
    question = "and how is it trained?"
    out = condense(question, HISTORY, LlamaCppLLM(settings), settings, trace)
    (entry,) = trace
    assert entry.stage == "condense" and entry.detail["standalone"] == out and entry.detail["raw"]
    rewrite = clean_rewrite(entry.detail["raw"])
    why = check_rewrite(rewrite, question, HISTORY)
    if why is None:
        assert out == rewrite and "fallback" not in entry.detail
    else:  # SmolLM2-135M answers the question instead of rewriting it (measured): the fallback
        assert (
            entry.detail["fallback"] == why and out == "What is a transformer model? and how is it trained?"
        )
    assert "transformer" in out.lower()
