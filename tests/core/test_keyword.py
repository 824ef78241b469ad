"""Tokenisation of mixed Chinese-English text, the keyword index's neighbour and document
scores, and the rebuild of an index an older tokenizer wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.keyword import TOKENIZER_VERSION, KeywordIndex, tokenize
from core.lang import approx_tokens, cjk_share


def test_latin_and_digit_runs_do_not_swallow_the_chinese_after_them() -> None:
    toks = tokenize("2022年北京冬奥会的吉祥物是什么？")
    assert "2022" in toks and "北京" in toks and "吉祥物" in toks
    assert not any("2022" in t and len(t) > 4 for t in toks)
    toks = tokenize("Transformer架构中的self-attention机制")
    assert toks[:2] == ["transform", "架构"]  # stemmed English, then jieba's words
    assert "attent" in toks and "机制" in toks
    assert tokenize("GPT-4和LoRA微调") [:3] == ["gpt", "4", "lora"]


def test_english_tokens_are_stemmed_without_stop_words() -> None:
    assert tokenize("The glaciers are carving valleys") == ["glacier", "carv", "valley"]


def test_cjk_share_and_token_estimate_on_mixed_text() -> None:
    assert cjk_share("attention") == 0.0 and cjk_share("注意力") == 1.0
    assert cjk_share("Transformer架构") == pytest.approx(2 / 13)
    assert approx_tokens("注意力") == 3 and approx_tokens("abcdefgh") == 2
    assert approx_tokens("注意力abcd。") == 3 + 1 + 1  # the CJK full stop counts as one


def _index(tmp_path: Path) -> KeywordIndex:
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build(
        [
            ("a1", "glaciers carve valleys", "a"),
            ("a2", "ice moves slowly downhill", "a"),
            ("a3", "glaciers melt in summer", "a"),
            ("b1", "volcanoes erupt lava", "b"),
            ("s1", "a summary about glaciers", ""),  # derived record: no neighbours
        ]
    )
    return kw


def test_context_scores_give_neighbours_and_the_document_best(tmp_path: Path) -> None:
    kw = _index(tmp_path)
    own = kw.score_ids("glaciers", ["a1", "a2", "a3", "b1", "s1"])
    ctx = kw.context_scores("glaciers", ["a2", "a1", "b1", "s1"])
    assert own[1] == 0 and own[0] > 0 and own[2] > 0 and own[3] == 0
    # a2 sits between a1 and a3, both of which match
    assert ctx["bm25"][0] == 0 and ctx["bm25_prev"][0] == pytest.approx(own[0])
    assert ctx["bm25_next"][0] == pytest.approx(own[2])
    assert ctx["bm25_doc"][0] == pytest.approx(max(own[0], own[2]))
    assert ctx["bm25_prev"][1] == 0  # a1 opens its document
    assert ctx["bm25_doc"][2] == 0  # nothing in b matches
    assert ctx["bm25_prev"][3] == 0 and ctx["bm25_next"][3] == 0  # s1 has no group
    assert kw.neighbours("a2") == ("a1", "a3") and kw.neighbours("a1") == (None, "a2")
    assert kw.neighbours("s1") == (None, None)
    fresh = KeywordIndex(tmp_path / "bm25")  # read back from disk
    assert fresh.neighbours("a3") == ("a2", None)
    assert np.allclose(fresh.context_scores("glaciers", ["a2"])["bm25_doc"], ctx["bm25_doc"][:1])


def test_index_written_by_an_older_tokenizer_is_rebuilt(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from core.index import Index
    from ingest.pipeline import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "n.txt").write_text("Transformer架构中的注意力机制很重要。", encoding="utf-8")
    ingest([docs], settings)
    man_path = Index(settings).keyword.manifest_path
    man = json.loads(man_path.read_text())
    man["tokenizer"] = "en-snowball+jieba-search/1"
    man_path.write_text(json.dumps(man))
    index = Index(settings)
    assert index.keyword.is_current()  # rebuilt when first opened
    assert json.loads(man_path.read_text())["tokenizer"] == TOKENIZER_VERSION
    assert index.keyword.search("架构", 3)


def test_saved_scores_equal_bm25s_without_importing_it(tmp_path: Path) -> None:
    import bm25s

    from core.keyword import SavedScores, load_saved_scores

    texts = [
        "Steep the coffee for four minutes in a French press.",
        "Green tea wants water at about 80 degrees; 绿茶的水温大约八十度。",
        "Transformer架构中的self-attention计算注意力权重 attention attention",
        "The grind size for espresso is fine; for a French press coarse.",
        "北京冬奥会的吉祥物是冰墩墩。",
    ]
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(texts))
    kw.load()
    assert isinstance(kw._bm25, SavedScores)
    ref = bm25s.BM25.load(str(kw.path))
    queries = ["french press coffee", "绿茶 水温", "attention attention Transformer", "冬奥会吉祥物",
               "espresso grind"]
    for q in queries:
        ids = [ref.vocab_dict[t] for t in tokenize(q) if t in ref.vocab_dict]
        assert ids, q
        got, want = kw._bm25.get_scores(ids), np.asarray(ref.get_scores(ids))
        assert got.dtype == want.dtype and np.array_equal(got, want), q
    assert kw.search("french press", 2)[0][0] in ("r0", "r3")
    params = kw.path / "params.index.json"
    p = json.loads(params.read_text())
    params.write_text(json.dumps({**p, "method": "bm25+"}))  # needs more than the matrix: bm25s loads it
    assert load_saved_scores(kw.path) is None
