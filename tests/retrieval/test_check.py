"""The generative check: a "capable model" (the Ollama test server with a scripted reply, so the
reply is known) writes an answer with [n] markers; sentences their passage does not support are
dropped before they are shown, nothing supported left falls back to the extractive answer, and
the trace says what was dropped and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.models import get_embedder
from core.settings import load_settings
from core.types import Hit, Record
from retrieval.answer import AnswerResult, ask_stream
from retrieval.check import ClaimStream, check_answer, split_claims
from retrieval.generate import Passage
from tests.ollama_server import OllamaTestServer
from tests.retrieval.answer_corpus import FACT_Q, build, settings_for

MODEL = "llama3.1:8b"  # a name auto treats as capable: the generative path runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("check"))


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[MODEL]) as srv:
        yield srv


def _ask(
    corpus: Path, server: OllamaTestServer, reply: str, question: str = FACT_Q, **answer: Any
) -> tuple[list[str], AnswerResult]:
    server.reply = reply
    s = settings_for(corpus, ollama_url=server.url, llm={"provider": "ollama", "model": MODEL}, answer=answer)
    parts = list(ask_stream(question, s))
    res = parts[-1]
    assert isinstance(res, AnswerResult)
    return [p for p in parts[:-1] if isinstance(p, str)], res


def _check(res: AnswerResult) -> dict[str, Any]:
    return next(t.detail for t in res.trace if t.stage == "check")


def test_an_invented_sentence_is_removed_before_it_is_shown(corpus: Path, server: OllamaTestServer) -> None:
    reply = (
        "The keeper winds the clockwork every 37 hours [1]. "
        "The lighthouse was painted purple by Napoleon in 1802 [1]."
    )
    tokens, res = _ask(corpus, server, reply)
    assert res.mode == "generative" and not res.abstained
    assert "37 hours" in res.answer and "Napoleon" not in res.answer
    assert "Napoleon" not in "".join(tokens) and "".join(tokens).strip() == res.answer  # never streamed
    dropped = _check(res)["dropped"]
    assert len(dropped) == 1 and "Napoleon" in dropped[0]["text"] and dropped[0]["reason"]
    assert [Path(c.source).name for c in res.citations] == ["lighthouse.md"]


def test_a_changed_number_is_not_supported(corpus: Path, server: OllamaTestServer) -> None:
    _, res = _ask(
        corpus,
        server,
        "The keeper winds the clockwork every 12 hours [1]. "
        "The lamp was converted to electricity in 1971 [1].",
    )
    assert "12 hours" not in res.answer and "1971" in res.answer
    assert "number 12" in _check(res)["dropped"][0]["reason"]


def test_nothing_supported_falls_back_to_the_extractive_answer(
    corpus: Path, server: OllamaTestServer
) -> None:
    _, res = _ask(corpus, server, "The answer is: 4.5 hours. [2]")
    assert not res.abstained and "37 hours" in res.answer and "4.5" not in res.answer
    assert _check(res)["fallback"] == "extractive"
    assert any(t.stage == "compose_fallback" for t in res.trace)
    assert all(Path(c.source).name == "lighthouse.md" for c in res.citations)


def test_a_wrong_citation_is_pointed_at_the_supporting_passage(
    corpus: Path, server: OllamaTestServer
) -> None:
    _, res = _ask(corpus, server, "The Varne lighthouse keeper winds the clockwork every 37 hours [3].")
    if len(res.hits) >= 3 and Path(res.hits[2].record.source).name != "lighthouse.md":
        assert _check(res)["recited"] and "[3]" not in res.answer
    assert all(Path(c.source).name == "lighthouse.md" for c in res.citations)


def test_check_can_be_switched_off(corpus: Path, server: OllamaTestServer) -> None:
    reply = "The keeper winds it every 37 hours [1]. Napoleon painted it purple [1]."
    _, res = _ask(corpus, server, reply, check=False)
    assert "Napoleon" in res.answer and not any(t.stage == "check" for t in res.trace)


# A fact the prompt's one passage does not hold, stated by the model from another document of the
# index (a capable model knows more than the passages it is shown, or read them in an earlier turn)
SOURDOUGH = "Bulk fermentation of sourdough takes four to six hours at 24 degrees Celsius [1]."


def _retry(res: AnswerResult) -> dict[str, Any]:
    return next(t.detail for t in res.trace if t.stage == "claim_retry")


def test_a_dropped_sentence_is_searched_for_and_kept_with_the_passage_that_supports_it(
    corpus: Path, server: OllamaTestServer
) -> None:
    reply = f"The keeper winds the clockwork every 37 hours [1]. {SOURDOUGH}"
    tokens, res = _ask(corpus, server, reply, context_chunks=1)
    assert "37 hours" in res.answer and "four to six hours" in res.answer
    assert "".join(tokens).strip() == res.answer  # streamed as shown
    names = {c.n: Path(c.source).name for c in res.citations}
    assert names[1] == "lighthouse.md" and "sourdough.md" in names.values()
    n = next(k for k, v in names.items() if v == "sourdough.md")
    assert n > 1 and f"24 degrees Celsius [{n}]" in res.answer  # the next number, not the model's [1]
    detail = _retry(res)
    assert detail["kept"] == 1 and detail["claims"][0]["source"].endswith("sourdough.md")
    assert _check(res)["dropped"] == []  # kept in the end: the check's trace says so


def test_an_invention_finds_no_passage_and_stays_dropped(corpus: Path, server: OllamaTestServer) -> None:
    reply = ("The keeper winds the clockwork every 37 hours [1]. "
             "The lighthouse was painted purple by Napoleon in 1802 [1].")
    _, res = _ask(corpus, server, reply, context_chunks=1)
    assert "Napoleon" not in res.answer and "37 hours" in res.answer
    detail = _retry(res)
    assert detail["kept"] == 0 and "Napoleon" in detail["claims"][0]["claim"]
    assert [Path(c.source).name for c in res.citations] == ["lighthouse.md"]


def test_a_found_passage_must_hold_every_word_of_the_sentence(corpus: Path, server: OllamaTestServer) -> None:
    """The found passage was not in the prompt: no allowance for a word it lacks. "rye" is not in
    the sourdough page, which holds the ten other words (the prompt check would accept 10 of 11)."""
    rye = "Bulk fermentation of rye sourdough takes four to six hours at 24 degrees Celsius [1]."
    reply = f"The keeper winds the clockwork every 37 hours [1]. {rye}"
    _, res = _ask(corpus, server, reply, context_chunks=1)
    assert "rye" not in res.answer and _retry(res)["kept"] == 0


def test_a_failed_search_for_a_dropped_sentence_leaves_the_answer_standing(
    corpus: Path, server: OllamaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval import pipeline

    def gone(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("the index went away")

    monkeypatch.setattr(pipeline, "retrieve", gone)  # what the retry's search calls
    _, res = _ask(corpus, server, f"The keeper winds the clockwork every 37 hours [1]. {SOURDOUGH}",
                  context_chunks=1)
    assert "37 hours" in res.answer and "sourdough" not in res.answer.lower()
    assert "the index went away" in _retry(res)["claims"][0]["error"]


def test_the_search_for_dropped_sentences_can_be_switched_off(corpus: Path, server: OllamaTestServer) -> None:
    _, res = _ask(corpus, server, f"The keeper winds the clockwork every 37 hours [1]. {SOURDOUGH}",
                  context_chunks=1, claim_retries=0)
    assert "sourdough" not in res.answer.lower() and not any(t.stage == "claim_retry" for t in res.trace)


def test_only_a_dropped_sentence_that_is_all_the_model_wrote_can_still_answer(
    corpus: Path, server: OllamaTestServer
) -> None:
    """Nothing in the prompt supports the answer, but a search for it does: the found passage's
    sentence is the answer (cited), not the extractive fallback over the prompt passages."""
    _, res = _ask(corpus, server, SOURDOUGH, context_chunks=1)
    assert "four to six hours" in res.answer and not res.abstained
    assert [Path(c.source).name for c in res.citations] == ["sourdough.md"]
    assert "fallback" not in _check(res)


def test_a_decline_abstains(corpus: Path, server: OllamaTestServer) -> None:
    _, res = _ask(corpus, server, "I don't know based on the indexed documents.")
    assert res.abstained and res.abstain_reason == "model_declined" and res.citations == []


# ---------- the check itself, on passages built here


def _passages() -> list[Passage]:
    texts = [
        "A French press needs a coarse grind and steeps for about four minutes.",
        "Green tea is brewed with water at 80 degrees Celsius for two minutes.",
    ]
    return [
        Passage(i, Hit(Record(f"p{i}", t, f"/d/{i}.md", end=len(t)), 1.0), t) for i, t in enumerate(texts, 1)
    ]


def test_claims_take_the_markers_written_after_the_full_stop() -> None:
    cl = split_claims("Use a coarse grind. [1] Steep four minutes [1][2]. Done", 2)
    assert [c.text for c in cl] == ["Use a coarse grind. [1]", "Steep four minutes [1][2].", "Done"]
    assert [c.cited for c in cl] == [[1], [1, 2], []]


def test_bracketed_text_that_names_no_passage_is_part_of_the_claim() -> None:
    # Quoted note text holds brackets that are not citations: "[S]", a bracketed title.
    cl = split_claims(
        "↳ [S] 是特殊的开始符号 [1] [Reinforcement Learning from Human Feedback(RLHF)] 手书动画 [2]"
        " Steep four minutes [Source 2]. Done",
        2,
    )
    assert [c.text for c in cl] == [
        "↳ [S] 是特殊的开始符号 [1]",
        "[Reinforcement Learning from Human Feedback(RLHF)] 手书动画 [2]",
        "Steep four minutes [Source 2].",
        "Done",
    ]
    assert [c.cited for c in cl] == [[1], [2], [2], []]
    assert cl[0].body == "↳ [S] 是特殊的开始符号"
    # code quoted from a passage: its bracket closes after a digit, and is no marker either
    code = split_claims("Uniform on the intervals: [1] 0 <= X[:, 0] <= 100, [1] Next one. [1]", 1)
    assert [c.body for c in code] == ["Uniform on the intervals:", "0 <= X[:, 0] <= 100,", "Next one."]
    assert [c.cited for c in code] == [[1], [1], [1]]


def test_a_table_rows_answer_is_one_supported_claim() -> None:
    text = "| Method | Grind | Contact time |\n|---|---|---|\n| Cold brew | Extra coarse | 12-24 hours |"
    p = [Passage(1, Hit(Record("t", text, "/d/grind.html", end=len(text)), 1.0), text)]
    res = check_answer("Method: Cold brew, Grind: Extra coarse, Contact time: 12-24 hours [1]", p, None,
                       load_settings())
    assert [(v.kept, v.reason, v.passage) for v in res.verdicts] == [(True, "overlap", 1)]


def test_an_uncited_clause_ending_in_a_semicolon_is_one_claim_with_the_next() -> None:
    """The extractive composer quotes "A；B" as one sentence with one marker at its end: it is
    one claim, supported as quoted (it had been two, the first uncited and re-cited). A semicolon
    at a line's end (a list) still ends the claim, and a cited clause stays a claim of its own."""
    text = "统密谓肃曰：“欲破曹兵，须用火攻；除非献连环计，教他钉作一处，然后功可成也。”"
    p = [Passage(1, Hit(Record("t", text, "/d/sanguo.txt", end=len(text)), 1.0), text)]
    res = check_answer(text + " [1]", p, None, load_settings())
    assert [(v.kept, v.reason, v.claim.cited) for v in res.verdicts] == [(True, "overlap", [1])]
    assert [c.text for c in split_claims("Use a coarse grind; steep four minutes [1]. Done", 1)] == [
        "Use a coarse grind; steep four minutes [1].", "Done"
    ]
    assert [c.cited for c in split_claims("- 一、火攻；\n- 二、连环计 [1]", 1)] == [[], [1]]
    assert [c.cited for c in split_claims("火攻 [1]；连环计 [2]。", 2)] == [[1], [2]]
    # a marker that opens the next sentence cites the clause before: that clause is cited now
    assert [c.text for c in split_claims("Water works best; [1] distilled water is flat [1].", 1)] == [
        "Water works best; [1]", "distilled water is flat [1]."
    ]


def test_a_claim_read_across_markers_is_checked_part_by_part() -> None:
    """"X [1] y [2]" reads as one claim (a marker before a lower-case word does not end one): an
    extractive answer quotes such a pair, each part from its own passage, and neither passage
    alone holds the whole. Each part is checked against the passage its own marker names; a
    sentence that joins the two passages' words under markers at its end is still checked whole
    and fails, and so does a part its passage does not hold."""
    p = [Passage(i, Hit(Record(f"p{i}", t, f"/d/{i}.md", end=len(t)), 1.0), t) for i, t in enumerate(
        ["LoRA 新增低秩矩阵到原权重矩阵", "softmax:将相似度转换为概率分布(注意力权重)。"], 1)]
    both = "新增低秩矩阵到原权重矩阵 [1] softmax:将相似度转换为概率分布(注意力权重) [2]"
    res = check_answer(both, p, None, load_settings())
    assert [(v.kept, v.reason, v.claim.cited) for v in res.verdicts] == [
        (True, "each part by its own citation", [1, 2])]
    swapped = "新增低秩矩阵到原权重矩阵 [2] softmax:将相似度转换为概率分布(注意力权重) [1]"
    assert not check_answer(swapped, p, None, load_settings()).verdicts[0].kept
    joined = "新增低秩矩阵到原权重矩阵 softmax:将相似度转换为概率分布(注意力权重) [1][2]"
    assert not check_answer(joined, p, None, load_settings()).verdicts[0].kept
    invented = "新增低秩矩阵到原权重矩阵 [1] softmax:将相似度转换为42个火箭发射场 [2]"
    assert not check_answer(invented, p, None, load_settings()).verdicts[0].kept


def test_paraphrase_kept_invention_dropped_unmarked_attributed() -> None:
    emb = get_embedder(load_settings().embedding)
    res = check_answer(
        "A French press steeps for about four minutes [1]. "
        "Green tea is brewed at 80 degrees Celsius. "
        "Espresso machines were invented in Milan [2].",
        _passages(),
        emb,
        load_settings(),
    )
    kept = [v.claim.text for v in res.kept]
    assert kept[0].startswith("A French press") and "Espresso" not in res.text
    assert any(v.reason == "recited" and v.passage == 2 for v in res.kept)  # unmarked -> its passage


def test_streamed_claims_equal_the_checked_answer() -> None:
    text = "A French press steeps for about four minutes [1]. PWNED. Green tea wants 80 degrees Celsius [2]."
    stream = ClaimStream(_passages(), None, load_settings())
    shown = "".join(stream.feed(tok) for tok in text.split(" ") for tok in (tok + " ",)) + stream.finish()
    assert shown == stream.result.text and "PWNED" not in shown
    assert [v.reason for v in stream.result.verdicts if not v.kept] == ["too short to check"]


def test_echoed_questions_and_repeats_are_dropped() -> None:
    text = (
        "A French press steeps for about four minutes [1]. A French press steeps for about four minutes [1]. "
        "Question: How long does a French press steep [1]?"
    )
    res = check_answer(text, _passages(), None, load_settings())
    assert res.text == "A French press steeps for about four minutes [1]."
    assert [v.reason for v in res.verdicts if not v.kept] == [
        "repeats an earlier sentence",
        "a question, not an answer",
    ]
