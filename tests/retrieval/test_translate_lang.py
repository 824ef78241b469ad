"""Strategy `translate`: a question written in the other script than the corpus (English over
Chinese notes) is translated into the corpus's language by the LLM and both are searched. On a
real index of Chinese passages with one planted passage that has no English in it: the
translation is the query the reranking stages score with and brings the passage to rank 1
where the English question alone does not; `retrieval.answer` picks the strategy by itself for
a capable model and skips it (saying why, with no LLM call) for a small one; a reply that is
not a translation falls back to the question; a Chinese question needs no translation.

A scripted reply of the Ollama test server stands in for a capable model (llama3.2), so the
exact translation is known; everything else (index, search, reranking, the Ollama client) is
the real product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.index import Index
from core.llm import get_llm
from core.llmcall import LLMCaller
from core.settings import Settings, load_settings
from core.types import TraceEntry
from ingest.pipeline import ingest
from retrieval.answer import ask
from retrieval.pipeline import plan_question, retrieve, route_and_translate
from retrieval.state import QueryState
from retrieval.translate import CHOICES, Translation, check_strategy, translation
from tests.files import write_docs
from tests.ollama_server import OllamaTestServer

# Neutral file names: a name the question mentions would add a metadata-filter LLM call.
DOCS = {
    "n1.md": "# 训练稳定性\n\n训练循环神经网络时，常用梯度裁剪来防止梯度爆炸：当梯度范数超过阈值时按比例缩小梯度。\n",  # noqa: E501
    "n2.md": "# 显存\n\n半精度浮点数让显存占用减半，但数值范围变小，需要损失缩放来避免下溢。\n",
    "n3.md": "# 注意力\n\n自注意力让每个词元关注序列中的其他词元，计算复杂度与序列长度的平方成正比。\n",
    "n4.md": "# 正则化\n\n随机失活在训练时随机丢弃一部分神经元，减少过拟合，推理时关闭。\n",
    "n5.md": "# 学习率\n\n学习率预热在训练开始时逐步增大学习率，之后再按余弦曲线衰减，训练更稳定。\n",
    "n6.md": "# 归一化\n\n批归一化对每一层的输入做标准化，加快收敛，并允许使用更大的学习率。\n",
}
PLANTED = "n1.md"  # 梯度裁剪 防止 梯度爆炸, no English in it
Q_EN = "Why is gradient clipping used when training recurrent networks?"
Q_ZH_TRANSLATION = "为什么训练循环神经网络时要使用梯度裁剪？"
Q_ZH = "梯度裁剪有什么用？"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("xl-translate")
    docs = write_docs(root / "docs", DOCS)
    d = root / "index"
    assert not ingest([docs], _settings(d)).failed
    return d


def _settings(index_dir: Path, **over: Any) -> Settings:
    # no translation cache: each test's scripted reply must reach the parser; no dictionary
    # translations (tests/retrieval/test_crosslingual.py): here the LLM's translation alone
    return load_settings(
        index_dir=str(index_dir),
        search={"ltr": False, "ltr_self_train": False, "translations_per_term": 0},
        translate={"cache": False},
        **over,
    )


def _ollama(index_dir: Path, srv: OllamaTestServer, model: str = "llama3.2") -> Settings:
    return _settings(index_dir, ollama_url=srv.url, llm={"provider": "ollama", "model": model})


def _translator(text: str) -> Any:
    """The scripted model: `text` for the translation prompt, an empty JSON object otherwise."""

    def reply(messages: list[dict[str, Any]]) -> str:
        return text if "translate" in messages[0]["content"] else "{}"

    return reply


def _chats(srv: OllamaTestServer) -> list[dict[str, Any]]:
    return [r for r in srv.requests if r["path"] == "/api/chat"]


def _stage(trace: list[TraceEntry], stage: str) -> list[TraceEntry]:
    return [e for e in trace if e.stage == stage]


def _planted_id(index: Index) -> str:
    return next(r.id for r in index.docs.iter_records(("chunk",)) if r.source.endswith(PLANTED))


def _auto(question: str, s: Settings, llm: Any, trace: list[TraceEntry]) -> Translation | None:
    """What the pipeline's route-and-translate stage makes of a question asked with no strategy."""
    state = QueryState(question, s, Index(s), 5, trace=trace, answer=True, llm=llm)
    return route_and_translate(state).translation


def test_translate_is_a_strategy_but_not_the_routers() -> None:
    from retrieval.route import STRATEGIES

    assert "translate" in CHOICES and "translate" not in STRATEGIES
    assert check_strategy("Translate") == "translate"


def test_the_translation_is_searched_first(index_dir: Path) -> None:
    with OllamaTestServer(models=["llama3.2:latest"], reply=_translator(Q_ZH_TRANSLATION)) as srv:
        s = _ollama(index_dir, srv)
        trace: list[TraceEntry] = []
        t = plan_question(Q_EN, "translate", s, get_llm(s), trace, index=Index(s))
        chats = _chats(srv)
    assert t.target_lang == "zh" and not t.fallback, t.notes
    assert [(q.role, q.text) for q in t.queries] == [("translated", Q_ZH_TRANSLATION), ("original", Q_EN)]
    assert t.queries[0].keyword_text == Q_ZH_TRANSLATION  # the reranking stages' BM25 query
    assert t.merge == "rrf" and t.llm_calls == 1 and len(chats) == 1
    system = chats[0]["body"]["messages"][0]["content"]
    assert "简体中文" in system and chats[0]["body"]["messages"][-1]["content"] == Q_EN
    detail = _stage(trace, "translate")[0].detail
    assert detail["strategy"] == "translate" and detail["queries"][0]["role"] == "translated"


def test_english_question_over_chinese_notes_is_translated_by_itself(index_dir: Path) -> None:
    index = Index(_settings(index_dir))
    planted = _planted_id(index)
    with OllamaTestServer(models=["llama3.2:latest"], reply=_translator(Q_ZH_TRANSLATION)) as srv:
        s = _ollama(index_dir, srv)
        llm = get_llm(s)
        trace: list[TraceEntry] = []
        t = _auto(Q_EN, s, llm, trace)
        assert t is not None and t.strategy == "translate" and not t.fallback, t and t.notes
        assert [q.role for q in t.queries] == ["translated", "original"]
        assert t.queries[0].text == Q_ZH_TRANSLATION and len(_chats(srv)) == 1
        # ask_stream passes its index through and reports the strategy it ran
        r = ask(Q_EN, s, index=Index(s), llm=llm)
    assert r.strategy == "translate"
    assert any(
        e.detail.get("queries", [{}])[0].get("role") == "translated" for e in _stage(r.trace, "translate")
    )
    alone = retrieve(Q_EN, s, index=index, k=6)
    translated = retrieve(Q_EN, t.settings, index=Index(t.settings), k=6, plan=t.plan())
    alone_ids = [h.record.id for h in alone.hits]
    assert alone_ids[0] != planted, "the English question alone already finds the planted passage"
    assert [h.record.id for h in translated.hits][0] == planted
    assert [c["role"] for c in _stage(translated.trace, "candidates")[0].detail["queries"]] == [
        "translated",
        "original",
    ]


def test_a_reply_that_is_no_translation_falls_back(index_dir: Path) -> None:
    english = "Gradient clipping stops exploding gradients."  # an answer, not a translation
    with OllamaTestServer(models=["llama3.2:latest"], reply=_translator(english)) as srv:
        s = _ollama(index_dir, srv)
        t = plan_question(Q_EN, "translate", s, get_llm(s), [], index=Index(s))
        assert len(_chats(srv)) == 1
    assert t.fallback and [(q.role, q.text) for q in t.queries] == [("original", Q_EN)]
    assert any("not Chinese" in n for n in t.notes), t.notes
    assert any("searching the question itself" in n for n in t.notes)
    with OllamaTestServer(models=["llama3.2:latest"], reply=_translator(Q_EN)) as srv:  # the question echoed
        s = _ollama(index_dir, srv)
        t = plan_question(Q_EN, "translate", s, get_llm(s), [], index=Index(s))
    assert t.fallback and len(t.queries) == 1


def test_chinese_to_english_and_its_checks() -> None:
    """The other direction, on the translation call alone: the reply must be English and not
    the question; labels and extra lines are dropped."""
    cases = [
        (
            "Translation: What is gradient clipping used for?\n(literal)",
            False,
            "What is gradient clipping used for?",
        ),
        ("梯度裁剪用于防止梯度爆炸。", True, ""),  # still Chinese
        ("", True, ""),
    ]
    for reply, fallback, value in cases:
        with OllamaTestServer(models=["llama3.2:latest"], reply=reply) as srv:
            s = load_settings(ollama_url=srv.url, llm={"provider": "ollama", "model": "llama3.2"})
            p = translation(Q_ZH, "en", s, LLMCaller(get_llm(s)))
            system = _chats(srv)[0]["body"]["messages"][0]["content"]
        assert "English" in system
        assert (p.fallback, p.value) == (fallback, value), (reply, p)


@pytest.mark.parametrize("llm", [{"provider": "llamacpp"}, {"provider": "ollama", "model": "smollm2:135m"}])
def test_a_small_model_is_not_asked_to_translate(index_dir: Path, llm: dict[str, str]) -> None:
    with OllamaTestServer(models=["smollm2:135m"], reply=_translator(Q_ZH_TRANSLATION)) as srv:
        s = _settings(index_dir, ollama_url=srv.url, llm=llm)
        trace: list[TraceEntry] = []
        assert _auto(Q_EN, s, get_llm(s), trace) is None
        assert not _chats(srv)
    (entry,) = _stage(trace, "translate")
    assert entry.detail["strategy"] == "translate"
    assert "too small to translate; keyword glosses only" in entry.detail["skipped"]
    assert not _stage(trace, "llm_calls") and not _stage(trace, "route")  # plan_question() never ran


def test_auto_language_can_be_switched_off(index_dir: Path) -> None:
    with OllamaTestServer(models=["llama3.2:latest"], reply=_translator(Q_ZH_TRANSLATION)) as srv:
        on = _ollama(index_dir, srv)
        s = on.model_copy(update={"translate": on.translate.model_copy(update={"auto_language": False})})
        trace: list[TraceEntry] = []
        assert _auto(Q_EN, s, get_llm(s), trace) is None
        assert not trace and not _chats(srv)


def test_a_chinese_question_over_chinese_notes_is_not_translated(index_dir: Path) -> None:
    with OllamaTestServer(
        models=["llama3.2:latest"], reply=_translator("What is gradient clipping for?")
    ) as srv:
        s = _ollama(index_dir, srv)
        trace: list[TraceEntry] = []
        assert _auto(Q_ZH, s, get_llm(s), trace) is None
        assert not trace
        t = plan_question(Q_ZH, "translate", s, get_llm(s), [], index=Index(s))
        assert not _chats(srv)
    assert t.target_lang is None and not t.fallback and t.llm_calls == 0
    assert [(q.role, q.text) for q in t.queries] == [("original", Q_ZH)]
    assert "translate: scripts match; nothing to translate" in t.notes
