"""core.lang's "is this CJK", on mixed text: the one definition the eval set builders
(eval/labelled.py, eval/synthetic.py) now use instead of narrower copies of their own."""

from __future__ import annotations

from core.lang import cjk_count, is_cjk, is_wide


def test_cjk_count_on_mixed_text() -> None:
    assert cjk_count("Transformer 的注意力机制 (attention), 2017 年") == 7
    assert cjk_count("plain English, 3.5 g, e.g. x") == 0
    # extension A, compatibility ideographs, kana and Hangul count too (the eval copies missed them)
    assert cjk_count("\u3400\uf900") == 2
    assert cjk_count("カタカナ and ひらがな") == 8
    assert cjk_count("한국어 text") == 3
    # CJK punctuation and full-width forms are not letters: not counted
    assert cjk_count("。，！（）") == 0


def test_is_cjk_is_per_character() -> None:
    assert is_cjk("注") and is_cjk("カ") and is_cjk("한")
    assert not is_cjk("a") and not is_cjk("。") and not is_cjk("Ａ")


def test_is_wide_adds_cjk_punctuation_and_full_width_forms() -> None:
    assert all(map(is_wide, "注カ한。，（Ａ"))
    assert not any(map(is_wide, "a1 .,(-"))


def test_ocr_joins_boxes_without_a_space_only_between_wide_characters() -> None:
    from ingest.ocr import Box, layout_text

    def row(*texts: str) -> str:
        return layout_text([Box(100 * i, 0, 100 * i + 90, 20, t, 0.9) for i, t in enumerate(texts)])

    assert row("涡轮机的", "轴承温度") == "涡轮机的轴承温度"
    assert row("温度：", "（摄氏）") == "温度：（摄氏）"  # full-width punctuation joins too
    assert row("涡轮机 Turbine", "bearing") == "涡轮机 Turbine bearing"
    assert row("Turbine", "轴承") == "Turbine 轴承"


def test_synthetic_questions_judge_chinese_with_it() -> None:
    from eval.synthetic import clean_question, messages

    passage = "注意力机制让模型在生成每个词时关注输入中最相关的部分。"
    q, why = clean_question("注意力机制让模型关注什么", passage)
    assert why == "ok" and q == "注意力机制让模型关注什么？"  # 3+ CJK characters: a Chinese question mark
    english = messages("Attention lets a model weigh its inputs.")
    assert messages(passage)[1]["content"] != english[1]["content"]  # Chinese shots for Chinese text


def test_token_estimates_by_hand() -> None:
    """One definition for both estimates: chunk sizes (4 Latin characters a token) and the
    conservative count of a backend without a tokenizer (3 a token, plus one)."""
    from core.lang import approx_tokens
    from core.llm import estimate_tokens

    assert approx_tokens("abcdefgh") == 2 and approx_tokens("abcdefghi") == 3  # rounded up
    assert approx_tokens("绿茶 tea") == 2 + 1  # two CJK characters, " tea" is one token
    assert approx_tokens("abcdefghi", chars_per_token=3) == 3
    assert estimate_tokens("hello world, this is a test") == 27 // 3 + 1
    assert estimate_tokens("绿茶的冲泡水温") == 7 + 1


def test_cjk_only_and_token_prefix_by_hand() -> None:
    """CJK-only: fewer than 1 Latin letter in 20 letters (digits do not count); the prefix
    counts tokens as approx_tokens does."""
    from core.lang import approx_tokens, cjk_only, token_prefix

    assert cjk_only("刘备字玄德，涿郡涿县人。")
    assert cjk_only("2022年北京冬奥会的吉祥物是冰墩墩，2022年2月4日开幕。")  # digits are not English
    # 2 Latin letters of 2 + 36 CJK: 0.053, at the line; 1 of 37: 0.027, under it
    assert not cjk_only("AI" + "中" * 36) and cjk_only("A" + "中" * 36)
    assert not cjk_only("Transformer架构中的self-attention机制")  # notes full of English terms
    assert not cjk_only("English only.") and not cjk_only("")
    assert token_prefix("绿茶适合用八十度的水", 4) == "绿茶适合"
    assert token_prefix("abcdefgh绿茶", 3) == "abcdefgh绿"  # 8 Latin characters are 2 tokens
    assert token_prefix("abcdefghi", 2) == "abcdefgh"  # a third token would start at "i"
    assert token_prefix("短", 128) == "短" and token_prefix("长" * 10, 0) == "长" * 10
    text = "云长" * 200
    assert approx_tokens(token_prefix(text, 128)) == 128
