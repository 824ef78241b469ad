"""Extractive answers: made of the retrieved passages' sentences, each cited to the passage it
comes from (real MiniLM, Chroma and BM25 over a corpus with planted facts; no LLM runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import load_settings
from core.text import sentence_spans, split_sentences
from core.types import Hit, Record, TraceEntry
from ingest.pipeline import ingest
from retrieval.answer import ask
from retrieval.compose import candidates, compose
from retrieval.generate import Passage
from retrieval.respond import choose_mode
from tests.conftest import SAMPLE
from tests.retrieval.answer_corpus import FACT_Q, build, settings_for


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("compose"))


def _sentences_of(answer: str) -> list[str]:
    import re

    return [s.strip() for s in re.split(r"\s*\[\d+\]\s*", answer) if s.strip()]


def test_extractive_answer_cites_the_passage_holding_a_planted_fact(corpus: Path) -> None:
    res = ask(FACT_Q, settings_for(corpus, answer={"mode": "extractive"}))
    assert not res.abstained and res.mode == "extractive"
    assert "37 hours" in res.answer
    assert res.citations and all(Path(c.source).name == "lighthouse.md" for c in res.citations)
    cited = {c.n: c.text for c in res.citations}
    for s in _sentences_of(res.answer):  # correct by construction: every sentence is in a cited passage
        assert any(s in " ".join(t.split()) for t in cited.values()), s
    assert "generate" not in [t.stage for t in res.trace]  # no LLM call
    assert any(t.stage == "compose" for t in res.trace)


def test_auto_is_extractive_for_the_embedded_model_and_small_names(corpus: Path) -> None:
    from core.llm import LlamaCppLLM, OllamaLLM

    s = settings_for(corpus)
    assert choose_mode(s, LlamaCppLLM(s))[0] == "extractive"
    assert choose_mode(s, OllamaLLM(load_settings(llm={"model": "smollm2:360m"})))[0] == "extractive"
    assert choose_mode(s, OllamaLLM(load_settings(llm={"model": "llama3.1:8b"})))[0] == "generative"
    forced = settings_for(corpus, answer={"mode": "generative"})
    assert choose_mode(forced, LlamaCppLLM(s)) == ("generative", "answer.mode = generative")


def test_readme_quick_start_question_gets_the_four_minutes_sentence(tmp_path: Path) -> None:
    index_dir = tmp_path / "sample-index"
    assert not ingest([SAMPLE], load_settings(index_dir=index_dir, search={"ltr_self_train": False})).failed
    res = ask(
        "How long should coffee steep in a French press?",
        load_settings(index_dir=index_dir, llm={"provider": "llamacpp"}),
    )
    assert not res.abstained and "four minutes" in res.answer
    first = res.answer.split("[", 1)[0]
    assert "four minutes" in first  # the answering sentence comes first
    assert "coffee-brewing.md" in {Path(c.source).name for c in res.citations}


def _hit(i: int, text: str, title: str = "") -> Hit:
    return Hit(Record(f"id{i}", text, f"/d/doc{i}.md", title=title, start=0, end=len(text)), 1.0 / i)


def test_compose_keeps_budget_order_and_skips_headings() -> None:
    hits = [
        _hit(
            1,
            "## French press\nUse a coarse grind. Steep the coffee for four minutes, then press.\n"
            "Pour it all out.",
            "Coffee > French press",
        ),
        _hit(2, "Espresso needs a fine grind. A French press is a glass jug.", "Grinds"),
    ]
    s = load_settings(answer={"extractive_max_sentences": 2, "extractive_min_rel": 0.0})
    trace: list[TraceEntry] = []
    gen = compose("How long should coffee steep in a French press?", hits, s, trace)
    assert gen.text.startswith("Steep the coffee for four minutes, then press. [1]")  # the answer leads
    assert "French press [1]" not in gen.text and gen.text.count("[") == 2
    assert {c.n for c in gen.citations} == {int(x) for x in __import__("re").findall(r"\[(\d)\]", gen.text)}
    assert trace[-1].stage == "compose" and trace[-1].detail["chosen"]
    tight = compose(
        "How long should coffee steep in a French press?",
        hits,
        load_settings(answer={"extractive_max_chars": 60}),
        [],
    )
    assert len(tight.text) < 80 and tight.text.count("[") == 1


def test_a_chinese_question_matches_sentences_by_character_bigrams_too() -> None:
    """jieba cuts 苦肉计 in the question but 受苦 / 肉之计 in the text that answers: by words
    alone the sentence sharing 黄盖 and 甘愿 wins, from the second passage; the bigrams (受苦,
    苦肉) find the answer."""
    hits = [_hit(1, "黄盖甘受苦肉之计，以诈降曹操。"), _hit(2, "黄盖甘愿留守江东。")]
    gen = compose("黄盖为什么甘愿受苦肉计？", hits, load_settings(answer={"extractive_max_sentences": 1}), [])
    assert gen.text == "黄盖甘受苦肉之计，以诈降曹操。 [1]"


def test_clauses_joined_by_a_semicolon_are_quoted_as_one_sentence() -> None:
    """The clause that repeats the question's words and the clause after the semicolon that
    answers it are one sentence: quoted clause by clause (one sentence allowed), the answer was
    "须用火攻；" without 连环计. A new line after a semicolon (a list) still starts a new one."""
    text = ("统密谓肃曰：“欲破曹兵，须用火攻；除非献连环计，教他钉作一处，然后功可成也。”"
            "肃以告瑜。\n一、火攻；\n二、连环计。")
    gen = compose("庞统认为要火攻破曹，必须先做什么？", [_hit(1, text)],
                  load_settings(answer={"extractive_max_sentences": 1}), [])
    assert gen.text == "统密谓肃曰：“欲破曹兵，须用火攻；除非献连环计，教他钉作一处，然后功可成也。” [1]"
    from retrieval.compose import _clauses_joined

    assert [text[a:b].strip() for a, b in _clauses_joined(text, sentence_spans(text))][-2:] == [
        "一、火攻；", "二、连环计。"
    ]


def test_a_semicolon_at_a_hard_wrapped_line_end_does_not_end_the_sentence() -> None:
    """Hard-wrapped prose breaks its lines anywhere: "works best;" at a line's end, the sentence
    going on in lowercase on the next, is one sentence (the sample's water paragraph had been
    quoted as "... works best;" without why). A list whose items open with a capital or a
    marker still ends at each semicolon."""
    text = ("Water that is too hot extracts bitter compounds. Filtered water with moderate mineral "
            "content works best;\ndistilled water produces flat coffee because minerals help extraction.\n\n"
            "Keep whole beans;\n- a burr grinder;\n3. a scale.")
    gen = compose("Why does distilled water make flat coffee?", [_hit(1, text)],
                  load_settings(answer={"extractive_max_sentences": 1}), [])
    assert gen.text == ("Filtered water with moderate mineral content works best; distilled water "
                        "produces flat coffee because minerals help extraction. [1]")
    from retrieval.compose import _clauses_joined

    assert [text[a:b].strip() for a, b in _clauses_joined(text, sentence_spans(text))][-3:] == [
        "Keep whole beans;", "- a burr grinder;", "3. a scale."
    ]
    from retrieval.check import split_claims

    claims = split_claims("It works best;\ndistilled water is flat. [1] Whole beans;\nA scale. [1]", 1)
    assert [c.text for c in claims] == [
        "It works best; distilled water is flat. [1]", "Whole beans;", "A scale. [1]"
    ]


def test_compose_with_nothing_to_quote_declines() -> None:
    gen = compose("anything?", [_hit(1, "Short.")], load_settings(), [])
    assert gen.declined and gen.text == "" and gen.citations == []


def test_sentence_splitting_is_shared_and_cjk_aware() -> None:
    from ingest import chunking

    assert chunking._split_sentences is split_sentences  # one definition (core/text.py)
    t = "Transformer架构于2017年提出。它使用注意力！Use 3.5 g per cup. Done?\n\n1. Rinse it.\n# Head\nNext"
    got = [t[a:b] for a, b in sentence_spans(t)]
    assert got == [
        "Transformer架构于2017年提出。",
        "它使用注意力！",
        "Use 3.5 g per cup.",
        "Done?",
        "1. Rinse it.",
        "# Head",
        "Next",
    ]


def test_an_image_in_markdown_is_not_cut_at_its_exclamation_mark() -> None:
    """An ASCII "!" ends a sentence anywhere (Chinese text writes 好!), but not in "![alt](src)"
    or "!=": split there, the image's "[](f583.png)" was quoted as an answer's first sentence."""
    t = "目前市面上常见的大模型有：\n![](f583.png)\n好!下一句。a != b 对吗?是的"
    assert [t[a:b] for a, b in sentence_spans(t)] == [
        "目前市面上常见的大模型有：\n![](f583.png)\n好!", "下一句。", "a != b 对吗?", "是的"]
    text = "现阶段大模型分为开源模型以及闭源模型。\n![](f583c3c2.png)\n目前市面上常见的大模型有很多种类。"
    hit = Hit(Record("c1", text, "notes.md"), 1.0)
    texts = [s.text for s in candidates([Passage(1, hit, hit.record.text)])]
    assert texts and not any("png" in x or x.startswith("[") for x in texts)


def test_a_closing_quote_after_cjk_terminal_punctuation_ends_the_sentence() -> None:
    """Chinese dialogue closes each line with 。” / ！” / ？”: each is a sentence of its own, not
    one run-on "sentence" of the whole scene (which the composer quoted, or dropped as too long)."""
    t = ("玄德曰：“天下英雄，实有未知。”操曰：“今天下英雄，惟使君与操耳！”"
         "玄德闻言，吃了一惊。他（刘备）说“是”。")
    assert [t[a:b] for a, b in sentence_spans(t)] == [
        "玄德曰：“天下英雄，实有未知。”",
        "操曰：“今天下英雄，惟使君与操耳！”",
        "玄德闻言，吃了一惊。",
        "他（刘备）说“是”。",
    ]


def test_table_rows_carry_their_column_names_and_the_header_row_is_never_quoted() -> None:
    from retrieval.compose import candidates
    from retrieval.generate import Passage

    text = ("Brewing times we use.\n\n| Method | Grind | Steep time |\n| --- | :-: | --- |\n"
            "| French press | Coarse | 4 minutes |\n| Espresso machine | Fine | 25 seconds |\n\n"
            "After the table.")
    hit = Hit(Record("t1", text, "/d/brew.md", title="Brewing"), 1.0, {})
    rows = [s.text for s in candidates([Passage(1, hit, text)])]
    assert "French press: Grind Coarse, Steep time 4 minutes" in rows
    assert "Espresso machine: Grind Fine, Steep time 25 seconds" in rows
    assert not any("Method" in r for r in rows)  # the header row names columns, answers nothing
    assert not any(set(r) <= set("-:; |") for r in rows)
    # a window that starts inside a table, below its header: rows as they are
    cut = "| French press | Coarse | 4 minutes |\n| Espresso machine | Fine | 25 seconds |"
    rows = [s.text for s in candidates([Passage(1, Hit(Record("t2", cut, "/d/b.md"), 1.0, {}), cut)])]
    assert "French press: Coarse, 4 minutes" in rows
    # the HTML loader's tables: the rule row is no block of its own (core/text.py), so the
    # header and the rule arrive as one span; the header is still never quoted
    html = "| Method | Grind | Contact time |\n|---|---|---|\n| Espresso | Fine | 25 seconds |"
    rows = [s.text for s in candidates([Passage(1, Hit(Record("t3", html, "/d/g.html"), 1.0, {}), html)])]
    assert rows == ["Espresso: Grind Fine, Contact time 25 seconds"]


def test_a_sentence_from_another_document_needs_answer_extractive_other_rel_of_the_best() -> None:
    """Hand-scored sentences: the best (1.0) in a.md, one at 0.7 in the same document, one at
    0.8 in b.md. min_rel 0.6 alone takes all three; with other_rel 0.85 the b.md sentence is
    left out (0.8 < 0.85), while the same-document one still joins at 0.7."""
    from retrieval.compose import Sentence, select

    sents = [
        Sentence(1, 0, "Steep the coffee for four minutes.", {"steep", "coffe", "minut"}, score=1.0),
        Sentence(1, 1, "Press the plunger down slowly.", {"press", "plunger", "slowli"}, score=0.7),
        Sentence(2, 0, "Espresso extraction takes thirty seconds.", {"espresso", "extract", "second"},
                 score=0.8),
    ]
    src = {1: "a.md", 2: "b.md"}
    loose = load_settings(answer={"extractive_min_rel": 0.6, "extractive_other_rel": 0.0})
    assert [(s.n, s.pos) for s in select(sents, loose, src)] == [(1, 0), (1, 1), (2, 0)]
    strict = load_settings(answer={"extractive_min_rel": 0.6, "extractive_other_rel": 0.85})
    assert [(s.n, s.pos) for s in select(sents, strict, src)] == [(1, 0), (1, 1)]
    assert [(s.n, s.pos) for s in select(sents, strict)] == [(1, 0), (1, 1), (2, 0)]  # no sources: one rule


def test_a_label_of_few_words_does_not_outscore_the_sentence_that_answers() -> None:
    """"Tensor Sketch" (2 content words, both the question's) covers the question as well as
    the sentence after it, and comes first, so it would lead (ties go to document order); it
    is a label: scaled by 2 / SHORT_TERMS it falls below the sentence that says what Tensor
    Sketch is."""
    from retrieval.compose import SHORT_TERMS, Sentence, score, select
    from retrieval.generate import Passage

    text = "Tensor Sketch. Tensor Sketch computes a count sketch of the outer product with an FFT."
    passages = [Passage(1, Hit(Record("c1", text, "k.md"), 1.0), text)]
    from retrieval.compose import candidates

    sents = candidates(passages)
    assert [len(s.terms) for s in sents][0] == 2 < SHORT_TERMS
    score("What is Tensor Sketch?", passages, sents, None)
    label, answer = sents
    assert label.score * SHORT_TERMS / 2 >= answer.score > label.score  # unscaled, the label led
    assert isinstance(label, Sentence)
    assert [s.pos for s in select(sents, load_settings())][0] == answer.pos


def test_the_passage_prior_follows_the_retrieval_score_gap_not_the_rank() -> None:
    """rank_prior by hand: exp(-gap / (0.5 * std of the scores)). A passage retrieval scored
    about as high as the best keeps about the same prior, so the sentence that answers there
    leads; far below, the first passage's sentence wins on its prior."""
    import math

    import numpy as np

    from retrieval.compose import rank_prior
    from retrieval.generate import Passage

    def passages(*scored: tuple[str, float]) -> list[Passage]:
        return [Passage(i, Hit(Record(f"id{i}", t, f"/d/doc{i}.md", start=0, end=len(t)), sc), t)
                for i, (t, sc) in enumerate(scored, 1)]

    ps = passages(("a b c", 2.0), ("d e f", 1.9), ("g h i", 0.0))
    sd = float(np.std([2.0, 1.9, 0.0]))
    want = {1: 1.0, 2: math.exp(-0.1 / (0.5 * sd)), 3: math.exp(-2.0 / (0.5 * sd))}
    assert rank_prior(ps) == pytest.approx(want)
    assert rank_prior(passages(("x", 1.0), ("y", 1.0))) == {1: 1.0, 2: 1.0}  # no spread: no prior
    # the second passage's sentence covers one question term more (steep) than the first's
    question = "coffee steep french press minutes grind water kettle beans temperature"
    first, second = "Coffee beans need water and a grind.", "Steep coffee beans in water with a grind."
    s = load_settings(answer={"extractive_max_sentences": 1})
    near = passages((first, 1.0), (second, 0.98), ("Milk foams at sixty degrees.", 0.1))
    assert compose(question, [], s, [], passages=near).text == f"{second} [2]"
    far = passages((first, 1.0), (second, 0.1), ("Milk foams at sixty degrees.", 0.08))
    assert compose(question, [], s, [], passages=far).text == f"{first} [1]"


def test_sentences_out_of_reach_are_not_embedded_and_the_answer_is_the_same() -> None:
    """An English answer's sentences are encoded only where the cosine could still matter: a
    sentence whose score with a cosine of 1 stays below extractive_min_rel of the best is left
    out, and the sentences chosen (and their scores) are those of scoring them all."""
    from core.models import get_embedder
    from retrieval.compose import LEAD_ROUND, QuestionVector, candidates, score, select
    from retrieval.generate import Passage

    emb = get_embedder(load_settings().embedding)
    seen: list[str] = []

    class Counting:
        def embed(self, texts: list[str]) -> object:
            seen.extend(texts)
            return emb.embed(texts)

    answer = "Steep the coarse coffee for four minutes before you press the plunger."
    filler = [f"The {w} shop on {s} street sells postcards, maps and umbrellas to visitors."
              for w, s in zip(["red", "blue", "green", "old", "new", "tall", "small", "quiet"],
                              ["Elm", "Oak", "Pine", "Ash", "Fir", "Yew", "Bay", "Ivy"], strict=True)]
    texts = [answer + " " + " ".join(filler[:2]), " ".join(filler[2:5]), " ".join(filler[5:])]
    scores = [2.0, 0.5, 0.1]
    passages = [Passage(i, Hit(Record(f"c{i}", t, f"/d/{i}.md"), sc), t)
                for i, (t, sc) in enumerate(zip(texts, scores, strict=True), 1)]
    question = "How long should coffee steep in a French press?"
    settings = load_settings()
    qv = QuestionVector(Counting(), emb.embed([question])[0])  # type: ignore[arg-type]
    everything = candidates(passages)
    score(question, passages, everything, qv)  # keep_rel 0: every sentence embedded
    assert len(seen) == len(everything) == 9
    seen.clear()
    pruned = candidates(passages)
    score(question, passages, pruned, qv, settings.answer.extractive_min_rel)
    assert LEAD_ROUND <= len(seen) < len(pruned)
    chosen = select(pruned, settings)
    assert [(s.n, s.pos, s.score) for s in chosen] == [(s.n, s.pos, s.score)
                                                       for s in select(everything, settings)]
    assert chosen[0].text.startswith("Steep the coarse coffee")
    skipped = [s for s in pruned if s.text not in seen]
    best = max(s.score for s in pruned)
    rel = settings.answer.extractive_min_rel
    assert skipped and all(s.features["cosine"] == 0.0 and s.score < rel * best for s in skipped)


def test_an_english_questions_translations_count_as_its_words() -> None:
    """The keyword query of "Why are LLMs weak at processing long texts?" over Chinese notes
    carries 弱 处理 长 文本. Counted as terms of their own beside the English words, a Chinese
    sentence could cover at most half the question, and the first passage's prior won; one
    unit per word and its translation, the sentence that answers covers most of it."""
    q = "Why are LLMs weak at processing long texts? 弱 处理 长 文本"
    groups = {"weak": ["弱"], "process": ["处理"], "long": ["长"], "text": ["文本"]}
    hits = [_hit(1, "LLM 的训练需要大量文本数据，参数规模庞大。"),
            _hit(2, "长文本处理能力较弱: LLM 受限于有限的上下文窗口。"), _hit(3, "RAG 可以减少幻觉。")]
    for h, score in zip(hits, (3.0, 2.6, 1.0), strict=True):
        h.score = score
    s = load_settings(answer={"extractive_max_sentences": 1})
    assert compose(q, hits, s, []).text.endswith("[1]")  # without the groups: the first passage
    gen = compose(q, hits, s, [], groups=groups)
    assert gen.text == "长文本处理能力较弱: LLM 受限于有限的上下文窗口。 [2]"


def test_a_title_line_repeated_at_the_start_of_its_paragraph_is_quoted_once() -> None:
    """Notes copied from the web repeat an article's title as the first words of its summary:
    the title line shares every word with the sentence after it, but few enough of that
    sentence's words that Jaccard overlap let both through."""
    title = "Efficient fine-tuning methods compared: P-tuning, LoRA and prefix tuning"
    text = f"{title}\n\n{title} LoRA freezes the weights and trains two small low-rank matrices beside them."
    s = load_settings(answer={"extractive_min_rel": 0.0})
    gen = compose("How does LoRA fine-tuning compare with prefix tuning?", [_hit(1, text)], s, [])
    assert gen.text.count("Efficient fine-tuning methods compared") == 1, gen.text


def test_a_run_of_short_lines_is_quoted_line_by_line_and_wrapped_prose_whole() -> None:
    notes = ("LLAMA3 decoder-only架构\nTokenizer: TikToken\nGQA\nRMSNorm\nRoPE\nKV-Cache\n"
             "PEFT parameter efficient fine-tuning\nLoRA Low-Rank Adaptation\nQLoRA 量化+LoRA")
    s = load_settings(answer={"extractive_max_sentences": 1})
    assert compose("What is QLoRA?", [_hit(1, notes)], s, []).text == "QLoRA 量化+LoRA [1]"
    prose = ("The French press is the simplest way to brew a full-bodied cup: add coarse\n"
             "grounds, pour water just off the boil, and steep the coffee for four minutes\n"
             "before pressing the plunger down slowly.")
    got = compose("How long should coffee steep in a French press?", [_hit(1, prose)], s, []).text
    assert got == " ".join(prose.split()) + " [1]"  # one sentence over three lines, whole
    # a sentence that starts late on one long line and ends early on the next is two short
    # pieces of wrapped prose, not a list (the sample's brew ratio was quoted "use about [1]")
    ratio = ("A good starting ratio is 1 gram of coffee to 16 grams of water. For a 500 ml pot, use about\n"
             "31 grams of coffee. Adjust by one gram at a time: more coffee for a stronger cup, less for a\n"
             "lighter one.")
    got = compose("How much coffee do I need for a 500 ml pot?", [_hit(1, ratio)], s, []).text
    assert got == "For a 500 ml pot, use about 31 grams of coffee. [1]"
    # a docstring's parameter entry: short lines at the median, but its description wraps a full
    # line mid-sentence ("How do I choose the number of clusters?" quoted "... the number of")
    entry = ("n_clusters : int, default=8\n    The number of clusters to form as well as the number of\n"
             "    centroids to generate.\n\n    See the user guide.")
    got = compose("What is the number of clusters to form?", [_hit(1, entry)], s, []).text
    assert got == "The number of clusters to form as well as the number of centroids to generate. [1]"
    # Chinese notes end a line anywhere: a next line in English is another note
    lines = ("表示激活函数时Sigmoid和σ完全等价,不过标准差或者求和时就不等价了好的好的好的好的好的好的\n"
             "decoding在采样时可以用Beam Search替代Greedy Search\nGQA\nRoPE\nRMSNorm\nKV-Cache")
    got = compose("Why use beam search in decoding?", [_hit(1, lines)], s, []).text
    assert got == "decoding在采样时可以用Beam Search替代Greedy Search [1]"


def test_a_plain_text_table_is_quoted_row_by_row() -> None:
    """A reStructuredText table ("=====  =====" rules) has no sentence ends: it was one run-on
    span, too long to quote, so "How many samples ...?" was answered from the prose around it."""
    text = ("The KDD Cup 99 data come from simulated intrusions into a military network.\n\n"
            "================      ==========================================\n"
            "Samples total         4898431\n"
            "Dimensionality        41\n"
            "Features              discrete (int) or continuous (float)\n"
            "Targets               str, the name of the anomaly type or normal\n"
            "================      ==========================================\n")
    from retrieval.compose import candidates
    from retrieval.generate import Passage

    rows = [c.text for c in candidates([Passage(1, _hit(1, text), text)])]
    assert rows[1:3] == ["Samples total 4898431", "Dimensionality 41"]
    assert not any("===" in r for r in rows)  # the rules are no rows
    s = load_settings(answer={"extractive_max_sentences": 1})
    assert compose("How many samples in total?", [_hit(1, text)], s, []).text == "Samples total 4898431 [1]"


def test_what_is_x_questions_and_the_sentences_that_introduce_x() -> None:
    from retrieval.compose import defined_term, defines

    assert defined_term("What is RLHF?") == "RLHF" and defined_term("What are embeddings?") == "embeddings"
    assert defined_term("What does SFT stand for?") == "SFT" and defined_term("什么是 LoRA？") == "LoRA"
    assert defined_term("KV-Cache 是什么？") == "KV-Cache"
    assert defined_term("What is LoRA? 低秩") == "LoRA"  # the keyword query of an English question
    # what X is for: the sentence that introduces X says that too
    assert defined_term("What does LoRA do?") == "LoRA" and defined_term("LoRA 有什么用？") == "LoRA"
    assert defined_term("What is a retriever used for?") == "retriever"
    assert defined_term("What is the purpose of the KV cache?") == "KV cache"
    assert defined_term("Chains 是做什么的？") == "Chains"
    # the named part of "X 的 Y" / "X's Y component": the text introduces it as "链(Chains):"
    assert defined_term("LangChain 的 Chains 是什么？") == "Chains"
    assert defined_term("What is LangChain's Memory component for?") == "Memory"
    assert defined_term("郊外小儿唱的童谣是什么？") == "郊外小儿唱的童谣"  # no named term in it
    assert defined_term("What does the model do with padding tokens?") is None
    assert defined_term("How does LoRA work?") is None
    assert defined_term("What is the default value of alpha in ridge regression?") is None  # a value
    assert defines("LORA: 微调大模型时,可以只更新两个小矩阵", "LoRA")
    assert defines("**RLHF**（基于人类反馈的强化学习）", "RLHF")
    assert defines("他是人类反馈强化学习(#RLHF)的共同发明人。", "RLHF")
    assert defines("监督微调（Supervised Fine-Tuning, SFT）是对预训练模型的训练", "SFT")
    assert defines("teacher-forcing： 每次使用标准答案作为输入", "teacher forcing")
    assert defines("- 3. Teacher forcing is a training strategy", "teacher forcing")
    assert not defines("LLM微调方法[P-tuning、Lora、Prefix tuning等]", "LoRA")  # a mention in a list
    assert not defines("teacher forcing最初的motivation就是解决这个问题的", "teacher forcing")
    assert not defines("LoRAs are great", "LoRA")


def test_the_sentence_that_introduces_x_answers_what_is_x_from_a_lower_passage() -> None:
    """The first passage mentions LoRA in an article title; the fourth defines it. The passage
    prior alone chose the title."""
    hits = [_hit(1, "LLM微调方法六大主流方法：思路讲解与优缺点对比[P-tuning、LoRA、Prefix tuning等]"),
            _hit(2, "Prefix Tuning 输入增加可训练的上下文前缀，同一个模型可以完成不同任务。"),
            _hit(3, "P-Tuning 输入增加可训练的 LSTM 生成的嵌入向量提示。"),
            _hit(4, "LoRA: 微调大模型时只更新两个小矩阵，它们是一个参数矩阵的低秩分解。")]
    for h, score in zip(hits, (3.0, 2.9, 2.8, 2.7), strict=True):
        h.score = score
    s = load_settings(answer={"extractive_max_sentences": 1})
    assert compose("What is LoRA?", hits, s, []).text.startswith("LoRA: 微调大模型时")
    assert not compose("Which fine-tuning methods are compared?", hits, s, []).text.startswith("LoRA")
    # with room for more, the definition is not followed by other passages' mere mentions of LoRA
    # (the title), while a sentence of its own passage may go on with it
    hits[3] = _hit(4, "LoRA: 微调大模型时只更新两个小矩阵，它们是一个参数矩阵的低秩分解。"
                      " LoRA 因此加速了微调。")
    hits[3].score = 2.7
    full = compose("What does LoRA do?", hits, load_settings(), [])
    assert full.text.startswith("LoRA: 微调大模型时") and {c.n for c in full.citations} == {4}
    assert "LoRA 因此加速了微调" in full.text


def test_the_sentence_that_states_the_asked_quantity_answers_a_how_many_question() -> None:
    """"七星坛有多高？" asks a height: the sentence that gives one (高九尺) answers it, not the
    sentence that shares more of the question's words (two passages retrieval could not tell
    apart). Without the quantity bonus the first passage's sentence won."""
    hits = [_hit(1, "孔明令人在南屏山筑七星坛，祭风借东南风，坛上插旗，孔明登坛作法。"),
            _hit(2, "坛名曰七星坛：高九尺，作三层，用一百二十人执旗。")]
    hits[1].score = hits[0].score
    s = load_settings(answer={"extractive_max_sentences": 1})
    gen = compose("孔明为借东南风搭的七星坛有多高？", hits, s, [])
    assert gen.text.startswith("坛名曰七星坛：高九尺")
    assert not compose("孔明为什么搭七星坛？", hits, s, []).text.startswith("坛名曰")


def test_the_sentence_that_states_a_count_of_the_counted_thing_answers_how_many() -> None:
    """"How many ... cases ...?" is answered by the sentence with a number beside "cases" (the
    breast cancer data's class distribution, retrieval ranked it third), not by the first
    passage's sentence that shares more of the question's words; a year beside the words, or a
    number the question holds itself, is no count."""
    hits = [_hit(1, "The breast cancer dataset is a classic binary classification dataset, "
                    "collected in 1995."),
            _hit(2, "Class distribution: 212 malignant, 357 benign."),
            _hit(3, "Wine recognition data has thirteen chemical measurements.")]
    hits[0].score, hits[1].score, hits[2].score = 1.0, 0.9, 0.2  # the count ranked a little lower
    s = load_settings(answer={"extractive_max_sentences": 1})
    q = "How many malignant and benign cases does the breast cancer dataset contain?"
    trace: list[TraceEntry] = []
    assert compose(q, hits, s, trace).text.startswith("Class distribution: 212 malignant"), trace
    # the same passages, a question that counts nothing: the first passage leads
    other = compose("Which breast cancer cases does the dataset hold?", hits, s, [])
    assert other.text.startswith("The breast")


def test_a_sentence_that_points_at_what_its_passage_does_not_hold_is_not_quoted() -> None:
    """"RAG 的流程是什么？" over the shared notes was answered "更加具体的流程如下：" alone: an
    image followed it. A pointer is quoted where a sentence follows it (then the reply rule
    takes that too), and an answer is made of what the passages say instead."""
    flow = ("用户的数据库被切成小块，把这些小块存储在向量数据库中，检索后交给大模型生成答案。\n\n"
            "更加具体的流程如下：\n\n![image-2024](LLms基本.assets/image-2024.png)\n")
    s = load_settings(answer={"extractive_max_sentences": 1})
    gen = compose("RAG 的流程是什么？", [_hit(1, flow)], s, [])
    assert gen.text.startswith("用户的数据库被切成小块"), gen.text
    listed = "更加具体的流程如下：\n1. 把文档切成小块并存储为向量。\n2. 检索相关的块交给大模型。\n"
    two = load_settings(answer={"extractive_max_sentences": 3})
    assert "更加具体的流程如下：" in compose("RAG 的流程是什么？", [_hit(1, listed)], two, []).text


def test_a_question_about_x_is_not_answered_by_a_sentence_about_something_else() -> None:
    """"位置编码的作用是什么？" over the shared notes led with "Mask的作用是保证翻译都顺序" (it
    shares 的作用, and its passage ranked higher) over the sentence saying what 位置编码 does."""
    hits = [_hit(1, "其中Mask的作用是保证翻译都顺序，防止提前知道之后的信息。"),
            _hit(2, "为序列中的每个token加入位置编码，向模型提供序列中元素的位置信息。"),
            _hit(3, "模型在海量文本上预训练。")]
    hits[0].score, hits[1].score, hits[2].score = 1.0, 0.8, 0.2
    s = load_settings(answer={"extractive_max_sentences": 1})
    trace: list[TraceEntry] = []
    assert compose("位置编码的作用是什么？", hits, s, trace).text.startswith("为序列中的每个token"), trace
    # a question that is not about X alone keeps the higher passage's sentence
    assert compose("Mask和位置编码的作用分别是什么？", hits, s, []).text.startswith("其中Mask")


def test_a_question_in_a_passage_does_not_follow_the_lead() -> None:
    """"什么是向量数据库？" over the shared notes went on after the definition with the note's
    own question "向量数据库是如何工作的?" (a question answers nothing)."""
    def note(i: int, text: str, score: float) -> Hit:  # passages of one note
        return Hit(Record(f"id{i}", text, "/d/notes.md", start=100 * i, end=100 * i + len(text)), score)

    hits = [note(1, "向量数据库是如何工作的?\n\n向量数据库正在革新我们搜索复杂数据的方式。", 1.0),
            note(2, "现在我们已经在向量数据库中索引了我们的数据集。", 0.6),
            note(3, "向量数据库: 通过RAG限定LLM的上下文，而RAG的核心就是构造向量数据库。", 0.1)]
    gen = compose("什么是向量数据库？", hits, load_settings(), [])
    assert gen.text.startswith("向量数据库: 通过RAG") and "如何工作" not in gen.text, gen.text


def test_a_term_on_a_line_of_its_own_is_quoted_with_the_line_it_names() -> None:
    """The notes set a term above its gloss ("MHA" / "Multi-head Attention slow"): a one-word
    line is too short to quote, so "What is the difference between MHA and MQA?" found no
    sentence naming either and quoted "BatchNorm → LayerNorm → RMSNorm"."""
    from retrieval.compose import candidates

    notes = ("MHA\nMulti-head Attention slow\nMQA\nMulti-query Attention fast\nGQA\n"
             "Group-query Attention 折中方案\nBatchNorm → LayerNorm → RMSNorm 预归一化\n"
             "SwiGLU\nPEFT parameter effective fine-tuning\nForest covertypes\nThe samples are patches.")
    hit = _hit(1, notes)
    texts = [c.text for c in candidates([Passage(1, hit, notes)])]
    assert "MHA Multi-head Attention slow" in texts and "GQA Group-query Attention 折中方案" in texts
    # a line that opens with a term of its own is another item; a title is not a term
    assert "PEFT parameter effective fine-tuning" in texts and "The samples are patches." in texts
    gen = compose("What is the difference between MHA and MQA?", [hit], load_settings(), [])
    assert gen.text.startswith(("MHA Multi-head", "MQA Multi-query")) and "BatchNorm" not in gen.text
    assert "MHA Multi-head Attention slow" in " ".join(notes.split())  # quoted as the text has it


def test_an_abbreviation_before_a_lowercase_word_does_not_end_the_sentence() -> None:
    """"derived from the 1990 U.S. census" was quoted as "... the 1990 U.S." and "census, ...":
    the answer without its answer. A period before a capital still ends the sentence."""
    t = "This dataset was derived from the 1990 U.S. census, using one row per census\nblock group. Next one."
    assert [t[a:b] for a, b in sentence_spans(t)] == [
        "This dataset was derived from the 1990 U.S. census, using one row per census\nblock group.",
        "Next one.",
    ]
    # chunking still cuts there
    assert split_sentences(t)[0] == (0, len("This dataset was derived from the 1990 U.S."))
    gen = compose("Which census was the data derived from?", [_hit(1, t)],
                  load_settings(answer={"extractive_max_sentences": 1}), [])
    assert "1990 U.S. census" in gen.text


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("In Hastie et al. 2009, Example 10.2. Next.", ["In Hastie et al. 2009, Example 10.2.", "Next."]),
        ("As Fig. 3 shows, it drops. Then it rises.", ["As Fig. 3 shows, it drops.", "Then it rises."]),
        ("See Eq. (2) for the loss. Done.", ["See Eq. (2) for the loss.", "Done."]),
        ("Dr. Smith said so. It held.", ["Dr. Smith said so.", "It held."]),
        ("Optimisers, e.g. Adam, work. Others fail.", ["Optimisers, e.g. Adam, work.", "Others fail."]),
        # a capital after "et al." or "Inc." may open the next sentence; a number after a word too
        ("Shown by Smith et al. The results hold.", ["Shown by Smith et al.", "The results hold."]),
        ("Apple Inc. The firm is big.", ["Apple Inc.", "The firm is big."]),
        ("It costs 5 USD. 3 of them cost 15.", ["It costs 5 USD.", "3 of them cost 15."]),
    ],
)
def test_an_abbreviation_that_introduces_a_number_or_a_name_does_not_end_the_sentence(
    text: str, sentences: list[str]
) -> None:
    """Scientific English cites "Hastie et al. 2009", "Fig. 3", "Eq. (2)": the composer quoted
    "Generate data ... used in Hastie et al." and "2009, Example 10.2." as two sentences."""
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("You can use the ? operator on Result values. It returns early!",
         ["You can use the ? operator on Result values.", "It returns early!"]),
        ("“Why?” she asked. Then she left! Okay.", ["“Why?” she asked.", "Then she left!", "Okay."]),
        ("Is it fast? Yes. 好!他说。", ["Is it fast?", "Yes.", "好!", "他说。"]),
    ],
)
def test_an_english_question_or_exclamation_mark_before_a_lowercase_word_does_not_end_the_sentence(
    text: str, sentences: list[str]
) -> None:
    """The Rust book's "You can use the ? operator on Result values." was quoted as "operator on
    Result values." for "What does the ? operator do?"."""
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ('s.push_str(", world!"); // appends', ['s.push_str(", world!");', " // appends"]),
        ('println!("hi"); if a != b { x }', ['println!("hi");', " if a != b { x }"]),
        ("See ![](f.png) and https://x.org/?q=1 now. Next",
         ["See ![](f.png) and https://x.org/?q=1 now.", " Next"]),
        ("好!他说。真的?是的。", ["好!", "他说。", "真的?", "是的。"]),
    ],
)
def test_an_ascii_mark_before_an_ascii_character_is_code_not_an_end(text: str, sentences: list[str]) -> None:
    """Code, markup and addresses: `s.push_str(", world!");` was cut at its "!" and `"); // push_str()
    appends a literal to a String` quoted as an answer's sentence. Before a CJK character an ASCII
    "!" or "?" still ends one (Chinese text writes 好!)."""
    assert [text[a:b] for a, b in split_sentences(text)] == sentences


def test_hard_wrapped_lines_of_one_sentence_are_quoted_together() -> None:
    """A sentence wrapped over three lines, the first and last short, was read as a list (one
    item a line, by the median length) and quoted as "... of the samples, then" without what
    follows. A list of short items is still read a line at a time."""
    from retrieval.compose import _lines

    t = ("When random\nsubsets of the dataset are drawn as random subsets of the samples, then\n"
         "this algorithm is known as Pasting [1]_.")
    assert _lines(t, 0, len(t)) == [(0, len(t))]
    items = "GQA\nRMSNorm\nQLoRA 量化+LoRA"
    assert [items[a:b] for a, b in _lines(items, 0, len(items))] == ["GQA", "RMSNorm", "QLoRA 量化+LoRA"]
    gen = compose("What is it called when random subsets of samples are drawn?", [_hit(1, t)],
                  load_settings(answer={"extractive_max_sentences": 1}), [])
    assert "known as Pasting" in gen.text


def test_a_lead_sentence_that_asks_is_followed_by_its_reply() -> None:
    """In dialogue the sentence that repeats the question's words is the one asking; the answer
    is the reply after it. Quoted alone, "其兆若何？" answered nothing."""
    from retrieval.compose import opens_reply

    text = ("卓出坞上车，望长安来。卓问肃曰：“车折轮，马断辔，其兆若何？”"
            "肃曰：“乃太师应绍汉禅，弃旧换新，将乘玉辇金鞍之兆也。”卓喜而信其言。")
    gen = compose("董卓车折轮、马断辔，李肃怎么解释这个征兆？", [_hit(1, text)], load_settings(), [])
    sents = gen.text.split(" [1] ")
    assert sents[0].startswith("卓问肃曰") and "将乘玉辇金鞍之兆也" in sents[1]
    assert opens_reply("飞乃厉声大喝曰：“我乃燕人张翼德也！")  # a quotation left open
    assert opens_reply("Inputs are uniformly distributed on the intervals:")
    assert not opens_reply("肃曰：“将乘玉辇金鞍之兆也。”") and not opens_reply("Use a coarse grind.")
    one = compose("董卓车折轮、马断辔，李肃怎么解释这个征兆？", [_hit(1, text)],
                  load_settings(answer={"extractive_max_sentences": 1}), [])
    assert one.text.count("[1]") == 1  # the sentence limit holds


def test_a_web_address_is_quoted_only_when_the_question_asks_where_to_find_something() -> None:
    """The words of an address's path ("tokenizer-js/example-demo/build") covered "How does the
    Unigram tokenizer build its vocabulary?" better than the sentence that answers, and the
    address alone was quoted. They are not terms now, so the address is no candidate; a question
    that asks where to find something is still answered by it."""
    text = ("https://belladoreai.github.io/unigram-tokenizer/example-demo/build/vocabulary\n\n"
            "The Unigram model starts from a large vocabulary and removes the symbols whose loss "
            "increases least, until the vocabulary has the size wanted.")
    hits = [_hit(1, text)]
    s = load_settings(answer={"extractive_max_sentences": 1})
    how = compose("How does the Unigram tokenizer build its vocabulary?", hits, s, [])
    assert how.text.startswith("The Unigram model starts from a large vocabulary")
    assert "https://" not in how.text
    where = compose("Where can I find the Unigram tokenizer demo?", hits, s, [])
    assert where.text.startswith("https://belladoreai.github.io/unigram-tokenizer")
    from retrieval.compose import asks_for_link

    assert asks_for_link("项目的网址是什么？") and not asks_for_link("What is BPE?")


def test_restructuredtext_markup_is_not_quoted_and_a_literal_block_answers_its_colon() -> None:
    """Docstrings in reStructuredText: "... is defined by::" introduces the literal block that
    holds the answer, and a directive line ("code-block:: text") says how to render what follows.
    The "::" reads as ":", so the block is quoted after it as a reply; no directive line is
    quoted ("The chi-squared kernel is given by:" had been followed by "code-block:: text")."""
    from retrieval.compose import clean

    text = ("Generate data for binary classification.\n\nThe ten features are standard independent "
            "Gaussian and\nthe target ``y`` is defined by::\n\n  y[i] = 1 if np.sum(X[i] ** 2) > 9.34 "
            "else -1\n\n.. code-block:: text\n\n    pip install scikit-learn\n")
    gen = compose("How is the target y defined for the Gaussian features?", [_hit(1, text)],
                  load_settings(), [])
    sents = gen.text.split(" [1] ")
    assert sents[0].endswith("the target ``y`` is defined by:")
    assert sents[1].startswith("y[i] = 1 if np.sum(X[i] ** 2) > 9.34")
    assert "code-block" not in gen.text and "::" not in gen.text
    assert clean(".. code-block:: text") == "" and clean("code-block:: python") == ""
    assert clean("versionadded:: 1.2 `base_estimator` was renamed.") == "`base_estimator` was renamed."
    assert clean("See the ratio a::b in the note") == "See the ratio a::b in the note"


def test_an_english_question_of_chinese_text_prefers_the_sentence_with_the_asked_figure() -> None:
    """"How old was Zhou Yu when he died?" over the novel: the sentences that name 周瑜 and his
    death tie on the question's translated words; the one that says 寿三十六岁 answers it."""
    hits = [_hit(1, "却说孔明在荆州，夜观天文，见将星坠地，乃笑曰：“周瑜死矣。”"),
            _hit(2, "瑜昏绝，徐徐又醒，仰天长叹曰：“既生瑜，何生亮！”连叫数声而亡。寿三十六岁。")]
    hits[1].score = hits[0].score
    groups = {"zhou yu": ["周瑜", "瑜"], "died": ["死", "亡"]}
    gen = compose("How old was Zhou Yu when he died?", hits,
                  load_settings(answer={"extractive_max_sentences": 1}), [], groups=groups)
    assert "寿三十六岁" in gen.text, gen.text


def test_a_lead_in_is_followed_by_the_items_it_introduces() -> None:
    """"LangChain 主要由以下 6 个核心组件组成:" answers "which components?" only with the list after
    it: the items that follow it come next, as many as the answer holds (README, Asking
    questions)."""
    text = ("LangChain 是一个开源框架。 LangChain 主要由以下 6 个核心组件组成:\n"
            "• 模型输入/输出(Model I/O):与语言模型交互的接口\n"
            "• 数据连接(Data connection):与特定应用程序的数据进行交互的接口\n"
            "• 链(Chains):将组件组合实现端到端应用\n"
            "• 记忆(Memory):用于链的多次运行之间持久化应用程序状态\n"
            "• 代理(Agents):扩展模型的推理能力\n")
    gen = compose("LangChain 主要由哪些核心组件组成？", [_hit(1, text)], load_settings(), [])
    sents = gen.text.split(" [1]")
    assert sents[0].startswith("LangChain 主要由以下 6 个核心组件组成")
    assert "模型输入/输出" in sents[1] and "数据连接" in sents[2] and "链(Chains)" in sents[3]
    assert gen.text.count("[1]") == 4  # answer.extractive_max_sentences
    two = compose("LangChain 主要由哪些核心组件组成？", [_hit(1, text)],
                  load_settings(answer={"extractive_max_sentences": 2}), [])
    assert two.text.count("[1]") == 2 and "模型输入/输出" in two.text
    # after "is defined as:" a formula's lines are no list: one follows the lead, then the
    # sentences that score (here the one that answers)
    formula = ("The half loss is defined as:\nloss = max(y, 0) ** (2 - p) / (1 - p)\n"
               "y * pred ** (1 - p) / (1 - p)\npred ** (2 - p) / (2 - p)\n\n"
               "It needs y positive when the power is at least two.")
    lines = [x for x in candidates([Passage(1, _hit(1, formula), formula)]) if "**" in x.text]
    assert lines and not any(x.item for x in lines)
    got = compose("How is the half loss defined, and when must y be positive?", [_hit(1, formula)],
                  load_settings(answer={"extractive_min_rel": 0.0}), [])
    assert got.text.startswith("The half loss is defined as: [1] loss = max(y, 0)")
    assert "y positive when the power" in got.text and got.text.count("**") <= 2


def test_a_line_of_code_is_scaled_down_but_still_follows_a_lead_that_introduces_it() -> None:
    """A line of a fenced block names the question's terms without saying anything of them: the
    Rust book's `let mut scores = HashMap::new();` had been quoted for "How do I insert a value
    into a hash map only if its key isn't there yet?"."""
    text = ("The entry API inserts a value only when its key is absent from the hash map.\n\n"
            "~~~\nlet mut scores = HashMap::new(); scores.entry(key).or_insert(value);\n~~~\n")
    sents = candidates([Passage(1, _hit(1, text), text)])
    assert [s.code for s in sents] == [False, True]
    s = load_settings(answer={"extractive_max_sentences": 1})
    question = "How do I insert a value into a hash map only if the key is absent?"
    gen = compose(question, [_hit(1, text)], s, [])
    assert gen.text.startswith("The entry API inserts")
    # the same line outside a fence is a sentence like any other, and scores higher than in one
    plain = text.replace("~~~\n", "")
    asks_code = "How do I insert a value into a hash map with scores entry or_insert?"
    trace: list[TraceEntry] = []
    compose(asks_code, [_hit(1, plain)], s, trace)
    fenced_trace: list[TraceEntry] = []
    compose(asks_code, [_hit(1, text)], s, fenced_trace)
    code_score = {t["text"][:7]: t["score"] for t in trace[-1].detail["top"]}["let mut"]
    fenced_score = {t["text"][:7]: t["score"] for t in fenced_trace[-1].detail["top"]}["let mut"]
    assert fenced_score == pytest.approx(code_score * 0.5, rel=0.05)


def test_a_line_of_contents_is_never_quoted() -> None:
    text = ("Contents\n2.1 ASN.1 syntax … 2\nasn1_der_coding … 9\n\n"
            "The function asn1_der_coding encodes an ASN.1 element in DER.")
    sents = candidates([Passage(1, _hit(1, text), text)])
    assert [s.text for s in sents] == ["The function asn1_der_coding encodes an ASN.1 element in DER."]


def test_a_plain_text_chapter_line_is_never_quoted() -> None:
    """A novel's chapter line (第二回 ...) is a heading, not an answer, even when it shares the
    question's words."""
    text = "第二回　张翼德怒鞭督邮\n　　张飞大怒，把督邮绑在马桩上，鞭打二百。"
    gen = compose("张飞为什么鞭打督邮？", [_hit(1, text)], load_settings(), [])
    assert "第二回" not in gen.text and "鞭打二百" in gen.text


def test_the_sentence_that_states_the_asked_number_leads_the_answer() -> None:
    """The first passage's sentence shares more of the question's words, but the second
    passage's states the weight asked for: both are quoted, the one with the number first."""
    hits = [
        _hit(1, "关兴得了父亲关羽的青龙偃月刀，骑了潘璋的马，望本营而来。"),
        _hit(2, "云长造青龙偃月刀，又名“冷艳锯”，重八十二斤。"),
    ]
    s = load_settings(answer={"extractive_min_rel": 0.0, "extractive_other_rel": 0.0})
    gen = compose("关羽的青龙偃月刀有多重？", hits, s, [])
    assert gen.text.startswith("云长造青龙偃月刀，又名“冷艳锯”，重八十二斤。 [2]"), gen.text
    assert "[1]" in gen.text  # the other sentence still follows
