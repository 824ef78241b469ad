"""Generation: the prompt fits the context by relevance, citations only name passages that
were in the prompt and that the answer cites (by [n] markers or by lexical overlap), and the
real embedded model streams an answer over hits built here."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ContextTooLongError
from core.llm import LlamaCppLLM
from core.settings import Settings, load_settings
from core.types import Hit, Record, TraceEntry
from retrieval.generate import (
    Generation,
    Passage,
    Writer,
    attribute,
    cite,
    declined,
    fit_passages,
    messages_for,
    parse_markers,
)

TEXTS = [
    "Espresso needs a fine grind, like table salt powder, and 25 to 30 seconds of contact time.",
    "A French press needs a coarse grind, like breadcrumbs, and steeps for about four minutes.",
    "Green tea is brewed with water at 80 degrees Celsius for two minutes to avoid bitterness.",
]


def _hits(texts: list[str]) -> list[Hit]:
    return [
        Hit(Record(f"id{i}", t, f"/docs/doc{i}.md", start=i * 1000, end=i * 1000 + len(t), title=f"Doc {i}"),
            1.0 / (i + 1), {"dense": 0.9 - i * 0.1})
        for i, t in enumerate(texts, start=1)
    ]


def _passages(texts: list[str]) -> list[Passage]:
    return [Passage(i, h, h.record.text) for i, h in enumerate(_hits(texts), start=1)]


def _settings(**llm: Any) -> Settings:
    return load_settings(llm={"provider": "llamacpp", "temperature": 0.0, "max_tokens": 24, **llm})


# ---------- citations (pure)


def test_markers_in_the_forms_models_write() -> None:
    ans = "Fine grind [1]. Coarse [2, 3]. Also [Passage 1][3]. Ranges [1-2]. Bad [7] and [0]."
    assert parse_markers(ans, 3) == ([1, 2, 3], [0, 7])
    assert parse_markers("no markers here, 2024 [sic]", 3) == ([], [])


def test_markers_cite_only_prompt_passages() -> None:
    ps = _passages(TEXTS[:2])
    cits, info = cite("Use a fine grind [2] and see [5].", ps, 0.5)
    assert [c.n for c in cits] == [2] and cits[0].chunk_id == "id2" and cits[0].via == "marker"
    assert info == {"method": "marker", "cited": [2], "out_of_range": [5]}
    c = cits[0]
    assert (c.source, c.start, c.end, c.text, c.title) == ("/docs/doc2.md", 2000, 2000 + len(TEXTS[1]),
                                                           TEXTS[1], "Doc 2")


def test_without_markers_sentences_are_attributed_by_overlap() -> None:
    ps = _passages(TEXTS)
    ans = ("A French press steeps coarse grounds for four minutes. "
           "Green tea water should be 80 degrees. Penguins live in Antarctica and eat fish.")
    got = attribute(ans, ps, 0.5)
    assert set(got) == {2, 3}  # the penguin sentence is nobody's
    cits, info = cite(ans, ps, 0.5)
    assert [c.n for c in cits] == [2, 3] and {c.via for c in cits} == {"overlap"}
    assert info["method"] == "overlap"
    # a stricter threshold attributes less, never more
    assert set(attribute(ans, ps, 0.95)) <= {2, 3}


def test_an_answer_supported_by_nothing_cites_nothing() -> None:
    cits, info = cite("Penguins live in Antarctica and eat fish all year.", _passages(TEXTS), 0.5)
    assert cits == [] and info["method"] == "none"


def test_declines_are_recognised() -> None:
    assert declined("I don't know based on the indexed documents.")
    assert declined("I do not know the answer.")
    assert not declined("Espresso needs a fine grind [1].")


# ---------- fitting the prompt to the context (real tokenizer)


@pytest.fixture(scope="module")
def llm() -> LlamaCppLLM:
    return LlamaCppLLM(_settings())


def test_passages_are_dropped_least_relevant_first_to_fit(llm: LlamaCppLLM) -> None:
    long = [f"Passage {i}: " + "the grind size changes the extraction of coffee. " * 30 for i in range(8)]
    hits = _hits(long)
    window, max_tokens = 1024, 128
    ps, info = fit_passages("How fine?", hits, window, max_tokens, llm.count_tokens)
    assert 1 <= len(ps) < len(hits) and info["dropped"] == len(hits) - len(ps)
    assert [p.hit.record.id for p in ps] == [h.record.id for h in hits[: len(ps)]]  # relevance order kept
    assert [p.n for p in ps] == list(range(1, len(ps) + 1))
    prompt = sum(llm.count_tokens(m["content"]) for m in messages_for("How fine?", ps))
    assert prompt + max_tokens <= window


def test_a_single_huge_passage_is_cut_not_dropped(llm: LlamaCppLLM) -> None:
    huge = _hits(["word " * 3000])
    ps, info = fit_passages("q?", huge, 1024, 128, llm.count_tokens)
    assert len(ps) == 1 and ps[0].cut and info["cut"] == 1
    assert len(ps[0].text) < len(huge[0].record.text)


def test_a_window_too_small_for_any_passage_is_a_clear_error() -> None:
    small = LlamaCppLLM(_settings(n_ctx_llamacpp=96))
    with pytest.raises(ContextTooLongError, match="no room for any passage"):
        list(Writer(small, _settings(), []).stream("How fine should espresso be?", _hits(TEXTS)))


# ---------- generation with the real embedded model


@pytest.mark.slow
def test_stream_answer_streams_then_cites_prompt_passages(llm: LlamaCppLLM) -> None:
    trace: list[TraceEntry] = []
    hits = _hits(TEXTS)
    parts = list(Writer(llm, _settings(), trace).stream("How fine should the grind be for espresso?", hits))
    tokens, gen = parts[:-1], parts[-1]
    assert isinstance(gen, Generation) and all(isinstance(t, str) for t in tokens) and len(tokens) >= 2
    text = "".join(t for t in tokens if isinstance(t, str))  # all of them (asserted above)
    assert gen.text == text.strip() and gen.first_token_ms is not None
    ids = {p.hit.record.id for p in gen.passages}
    assert ids == {h.record.id for h in hits}
    assert all(c.chunk_id in ids for c in gen.citations)
    assert [t.stage for t in trace] == ["prompt", "generate", "cite"]


@pytest.mark.slow
def test_backend_refusing_a_long_prompt_is_retried_with_fewer_passages() -> None:
    # A token counter that underestimates makes the prompt too long for a 512-token window;
    # llama.cpp refuses it and generation retries with fewer passages instead of crashing.
    small = LlamaCppLLM(_settings(n_ctx_llamacpp=512, max_tokens=8))
    hits = _hits([t + " " + "More detail about brewing coffee and tea. " * 12 for t in TEXTS * 2])
    trace: list[TraceEntry] = []
    writer = Writer(small, _settings(max_tokens=8), trace, count=lambda s: 1)
    parts = list(writer.stream("How fine for espresso?", hits))
    gen = parts[-1]
    assert isinstance(gen, Generation) and 0 < len(gen.passages) < len(hits)
    assert any(t.stage == "prompt_retry" for t in trace)
