"""core.tokens.cut: jieba's segmentation run by jieba-rs must give jieba's own words, since an
index written before the switch is queried after it (TOKENIZER_VERSION was not changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import tokens

REPO = Path(__file__).resolve().parents[2]

_CASES = [
    "北京大学生物系",
    "中华人民共和国成立了",
    "的卢马跳檀溪",  # an unknown name: the HMM's words
    "张飞挺丈八蛇矛直出",
    "㐀㐁中文",  # CJK Extension A: jieba splits it into characters, jieba-rs would not
    "鿿鿽中国",  # beyond jieba's Han range (U+9FD5)
    "中文カナ한국",  # kana and Hangul inside a CJK run
    "大模型的微调需要多少显存",
]


@pytest.fixture(scope="module")
def jieba() -> object:
    import jieba as jb

    jb.initialize()
    return jb


@pytest.mark.parametrize("text", _CASES)
def test_cut_is_jiebas_segmentation(jieba: object, text: str) -> None:
    assert tokens.cut(text) == list(jieba.cut(text))  # type: ignore[attr-defined]
    assert tokens.cut(text, search=True) == list(jieba.cut_for_search(text))  # type: ignore[attr-defined]


def test_cut_matches_jieba_on_every_cjk_run_of_a_labelled_corpus(jieba: object) -> None:
    """Every CJK run that `tokenize` segments in the zh-prose novel (30k runs)."""
    runs = []
    for line in (REPO / "data/eval/zh-prose/corpus.jsonl").read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        found = (m.group(0) for m in tokens._TOKEN.finditer(text))
        runs += [tokens.fold(r) for r in found if tokens._CJK_RUN.match(r)]
    assert len(runs) > 10_000
    cut_for_search = jieba.cut_for_search  # type: ignore[attr-defined]
    differ = [r for r in runs if tokens.cut(r, search=True) != list(cut_for_search(r))]
    assert differ == []
