import pytest

from core.settings import ChunkSettings
from ingest.chunking import approx_tokens, chunk_document
from ingest.doc import LoadedDoc, Page


def _chunks(text: str, size: int = 60, size_cjk: int | None = None, **kw):  # type: ignore[no-untyped-def]
    settings = ChunkSettings(size=size, size_cjk=size if size_cjk is None else size_cjk)
    return chunk_document(LoadedDoc(text=text, title="Doc", **kw), "/x/doc.md", settings)


def test_offsets_are_exact_and_headings_give_titles() -> None:
    text = "# Doc\n\nIntro paragraph here.\n\n## Install\n\nRun the installer. " + "Then wait. " * 40 + \
        "\n\n## Use\n\nCall the tool."
    chunks = _chunks(text)
    assert len(chunks) >= 3
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.kind == "chunk" and c.level == 0 and c.source == "/x/doc.md"
        assert approx_tokens(c.text) <= 60 + 5
    assert any(c.title == "Doc > Install" for c in chunks)
    assert chunks[-1].title == "Doc > Use" and "Call the tool." in chunks[-1].text
    # Sections are not merged across headings.
    assert not any("Install" in c.text and "Call the tool" in c.text for c in chunks)


def test_ids_are_stable_and_unique() -> None:
    para = "Same line again and again. " * 2
    text = f"{para}\n\n{para}\n\nOther line, different words here."
    a, b = _chunks(text, size=16), _chunks(text, size=16)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a) == 3


def test_cjk_splits_on_sentence_punctuation_never_mid_character() -> None:
    sent = "绿茶适合用八十度左右的水冲泡。"
    text = sent * 30 + "乌龙茶需要用接近沸腾的水！" * 10
    chunks = _chunks(text, size=50)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert approx_tokens(c.text) <= 50
        assert c.text.endswith(("。", "！")), c.text[-5:]
    assert "".join(c.text for c in chunks) == text


def test_cjk_only_documents_get_the_larger_chunk_size() -> None:
    """Chinese text with (almost) no English is sized for the keyword index (size_cjk); Chinese
    notes full of English terms, and English, keep the encoder's size."""
    prose = "".join(f"第{i}段：刘备与关羽、张飞在桃园结义，誓同生死，共图大事。" for i in range(40))
    chunks = _chunks(prose, size=60, size_cjk=300)
    assert len(chunks) == -(-approx_tokens(prose) // 300) == 4  # (~1,100 tokens) / 300, rounded up
    assert all(60 < approx_tokens(c.text) <= 300 for c in chunks)
    assert "".join(c.text for c in chunks) == prose
    notes = "".join(f"第{i}节：Transformer 的 self-attention 让每个 token 关注所有位置。" for i in range(40))
    assert all(approx_tokens(c.text) <= 60 for c in _chunks(notes, size=60, size_cjk=300))
    english = "Attention lets every token look at every other position. " * 40
    assert all(approx_tokens(c.text) <= 60 for c in _chunks(english, size=60, size_cjk=300))


def test_long_sentence_without_punctuation_is_hard_split() -> None:
    text = "word " * 500
    chunks = _chunks(text.strip(), size=40)
    assert all(approx_tokens(c.text) <= 41 for c in chunks)
    assert all(not c.text.startswith(" ") for c in chunks)


def test_notes_of_a_term_and_its_gloss_per_line_are_cut_between_lines() -> None:
    """A paragraph of lines with no sentence ends (a term, then its gloss, on each line) is cut
    after a line break, never between a term and its gloss."""
    terms = ["LoRA 新增低秩矩阵到原权重矩阵", "QLoRA 量化+LoRA", "Adapter Tuning 新增小的神经网络",
             "Prefix Tuning 输入增加可训练的上下文前缀", "P-Tuning 输入增加可训练的嵌入向量提示"]
    text = "\n".join(terms * 12)
    chunks = _chunks(text, size=50)
    assert len(chunks) > 4
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.start == 0 or text[c.start - 1] == "\n", c.text[:20]
        assert approx_tokens(c.text) <= 50
    assert "".join(c.text for c in chunks).replace("\n", "") == text.replace("\n", "")
    # a line longer than the piece is still cut at whitespace
    long_line = "word " * 500
    assert all(not c.text.startswith(" ") for c in _chunks(long_line.strip() + "\nend", size=40))


def test_table_kept_whole_or_split_between_rows_with_header() -> None:
    rows = "\n".join(f"| item {i} | value {i} |" for i in range(60))
    table = "| Name | Value |\n|---|---|\n" + rows
    small = _chunks("Before.\n\n| A | B |\n|---|---|\n| 1 | 2 |\n\nAfter.", size=200)
    assert any("| A | B |\n|---|---|\n| 1 | 2 |" in c.text for c in small)
    chunks = _chunks(table, size=80)
    assert len(chunks) > 1
    seen = []
    for c in chunks:
        lines = c.text.split("\n")
        assert lines[0] == "| Name | Value |" and lines[1] == "|---|---|"
        for ln in lines[2:]:
            assert ln.startswith("| item ") and ln.endswith(" |")  # no row cut
            seen.append(ln)
    assert len(seen) == 60


def test_page_numbers_follow_page_spans() -> None:
    p1 = "First page text. " * 20
    p2 = "Second page text. " * 20
    text = p1.strip() + "\n\n" + p2.strip()
    pages = [Page(1, 0, len(p1.strip())), Page(2, len(p1.strip()) + 2, len(text))]
    chunks = _chunks(text, size=40, pages=pages)
    assert chunks[0].page_start == 1 and chunks[-1].page_end == 2
    for c in chunks:
        assert c.page_start is not None and c.page_end is not None and c.page_start <= c.page_end


def test_a_comment_in_a_fenced_code_block_is_no_heading_and_the_block_stays_whole() -> None:
    """A README's ```bash block with "# 1. install everything" had made that comment the heading
    of every section after it ("... > 1. install everything > Quick start")."""
    code = "```bash\n# 1. install everything\npip install .\n\n# 2. run the tests\npytest\n```"
    text = f"# Doc\n\n## Set up\n\nTwo commands:\n\n{code}\n\n## Quick start\n\nIngest the samples."
    chunks = _chunks(text, size=200)
    assert [c.title for c in chunks] == ["Doc > Set up", "Doc > Quick start"]
    assert code in chunks[0].text
    # a block longer than a chunk may be cut, but never at its blank line into two "sections"
    long_text = ("## Set up\n\n~~~\n# a comment\n" + "\n".join(["y = 2;"] * 80) + "\n\n# another\n"
                 + "\n".join(["z = 3;"] * 40) + "\n~~~\n")
    long_chunks = _chunks(long_text, size=60)
    assert len(long_chunks) > 1 and all(c.title == "Doc > Set up" for c in long_chunks)


def test_fenced_marks_the_lines_of_code_blocks() -> None:
    from core.text import fenced

    # a longer fence closes a shorter one of its kind; a shorter one or the other kind does not
    lines = ["text", "```python", "# not a heading", "", "````", "after", "~~~~", "~~~", "```", "~~~~",
             "tail", "```", "left open"]
    assert fenced(lines) == [False, True, True, True, True, False, True, True, True, True,
                             False, True, True]
    # an info string with a backtick opens nothing (inline code); four spaces are an indented line
    assert fenced(["``` a`b", "    ```", "text"]) == [False, False, False]


NOVEL = (
    "滚滚长江东逝水，浪花淘尽英雄。\n"
    "第一回　宴桃园豪杰三结义　斩黄巾英雄首立功\n"
    "　　话说天下大势，分久必合，合久必分。玄德见榜文，慨然长叹。\n"
    "　　第二回合，张飞挺矛出马，战不数合，刺邓茂于马下。\n"
    "第二回　张翼德怒鞭督邮　何国舅谋诛宦竖\n"
    "　　且说董卓字仲颖，陇西临洮人也。\n"
)


def test_a_plain_text_novels_chapter_lines_open_sections() -> None:
    """A Chinese novel saved as .txt marks its chapters with 第一回 lines, not `#`: each opens a
    section (the chunk's title, so the citation names the chapter), a chunk never runs from one
    chapter into the next, and prose that starts with an ordinal ("第二回合，张飞...") is no
    heading."""
    chunks = _chunks(NOVEL, size=400)
    for c in chunks:
        assert NOVEL[c.start : c.end] == c.text
    by_text = {c.text.splitlines()[0].strip(): c for c in chunks}
    first = next(c for c in chunks if "话说天下大势" in c.text)
    assert first.title == "Doc > 第一回　宴桃园豪杰三结义　斩黄巾英雄首立功"
    assert "第二回合" in first.text and "董卓" not in first.text
    last = next(c for c in chunks if "董卓" in c.text)
    assert last.title == "Doc > 第二回　张翼德怒鞭督邮　何国舅谋诛宦竖"
    assert by_text["滚滚长江东逝水，浪花淘尽英雄。"].title == "Doc"


def test_an_english_books_chapter_lines_open_sections_under_its_parts() -> None:
    text = ("PART ONE\n\nCHAPTER I.\nDown the Rabbit-Hole\n\nAlice was beginning to get very tired.\n\n"
            "Chapter 2: The Pool of Tears\n\nCuriouser and curiouser!\n\n"
            "Chapter 3 describes the race, which follows.\n\nPART TWO\n\nChapter 1\n\nThe end.\n")
    titles = {c.text.splitlines()[-1]: c.title for c in _chunks(text, size=8)}
    assert titles["Alice was beginning to get very tired."] == "Doc > PART ONE > CHAPTER I."
    # a line that is a sentence about a chapter is prose of the chapter before
    assert titles["Chapter 3 describes the race, which follows."] == \
        "Doc > PART ONE > Chapter 2: The Pool of Tears"
    assert titles["The end."] == "Doc > PART TWO > Chapter 1"


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("第一回　宴桃园豪杰三结义　斩黄巾英雄首立功", 2),
        ("第十二章", 2),
        ("第3章 引言", 2),
        ("第一卷 风起", 1),
        ("第一节 概述", 3),
        ("第二回合，张飞挺矛", None),  # prose: goes on past a comma
        ("第二回合张飞挺矛刺去", None),  # 回 not followed by a break
        ("第三日，孔明登坛", None),
        ("第一条 为了规范管理", None),  # a statute's article
        ("第一章 绪论 … 1", None),  # a contents line (PDF dot leaders)
        ("CHAPTER IV. THE RABBIT SENDS IN A LITTLE BILL", 2),
        ("Chapter 12: The Return", 2),
        ("Chapter One", 2),
        ("Part Two", 1),
        ("BOOK I", 1),
        ("Chapter 3 describes the method.", None),
        ("Chapter 5, which follows, shows it", None),
        ("Part of the reason is this.", None),
        ("Book mix", None),  # roman letters, not a numeral in capitals
        ("Chapter iv", None),
    ],
)
def test_chapter_lines(line: str, level: int | None) -> None:
    from core.text import heading

    got = heading(line)
    assert (got[0] if got else None) == level
    if got:
        assert got[1] == line


def test_a_chapter_line_after_the_last_sentence_of_the_chapter_before_is_a_block_of_its_own() -> None:
    from core.text import sentence_spans

    text = "玄德遂别而去。\n第二回　张翼德怒鞭督邮\n　　且说董卓字仲颖。"
    assert [text[a:b] for a, b in sentence_spans(text)] == \
        ["玄德遂别而去。", "第二回　张翼德怒鞭督邮", "且说董卓字仲颖。"]
