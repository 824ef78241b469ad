"""Sentence splitting and heading lines, the one definition ingest (chunking) and retrieval
(extractive answers, the answer check) share. CJK terminal punctuation `。！？；` ends a
sentence wherever it stands; `.!?;` only before whitespace, so "3.5 g", "e.g.x" and URLs stay
whole."""

from __future__ import annotations

import re

# A sentence ends after CJK terminal punctuation, or after .!? followed by whitespace; a
# closing quote or bracket right after CJK terminal punctuation goes with it ("……未知。”操曰：“……"
# is two sentences: without this, dialogue in Chinese prose read as one run-on "sentence" of
# every line a scene's speakers said). An ASCII "!" or "?" also ends one right before a CJK
# character (Chinese text writes 好!), but not before an ASCII character: that is markup, code
# or an address ("![](figure.png)", "x != y", `println!("hello, world!");`, "?q=1"), and
# splitting there had quoted "[](figure.png)" and `"); // appends` as answers.
_SENT_END = re.compile(
    r"(?<=[。！？；])(?![。！？；!?”」』）)’])|(?<=[!?])(?![。！？；!?”」』）)’])(?![\x00-\x7f])"
    r"|(?<=[。！？；][”」』）)’])(?![。！？；!?”」』）)’])"
    r"|(?<=[.!?;])(?=\s)|(?<=[.!?][\"')\]])(?=\s)"
)
# A list marker alone ("1." split off its item), and lines that open a new block.
_MARK_ONLY = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|[a-zA-Z][.)])\s*$")
_LINE_START = re.compile(r"\s*(?:[-*+•]|\d+[.)]|#{1,6}|\|)\s")

# A Markdown heading: 1-6 `#`, whitespace, then its text. The closing `#`s and spaces are
# stripped in `heading`, not by the pattern: `(.+?)\s*#*\s*$` backtracked cubically on a
# heading line with a long run of spaces or `#` inside it (minutes for 5,000 spaces).
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+)$")
# A chapter line of a book kept as plain text, where no `#` marks headings: a Chinese novel's
# 第一回 / 第十二章 / 第三卷 (any title after it), an English book's "CHAPTER IV." /
# "Chapter 12: The Return" / "Part Two". The level is the unit's rank: a 卷, 部, 篇, 集 or
# 编 (Part, Book) holds 章 or 回 (Chapter), a 章 holds 节. 条 (a statute's article) and 日 /
# 天 (第三日) are not headings.
_CHAPTER_ZH = re.compile(
    r"\s*第[0-9０-９零〇一二三四五六七八九十百千两]{1,7}([卷部篇集编章回节])(?:[\s\u3000:：、.．]+(.*)|$)"
)
# Roman numerals in capitals only: "Book mix", "Part civil" are words of roman letters.
_NUMBER_WORDS = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty)"
    r"(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?"
)
_CHAPTER_EN = re.compile(
    rf"\s*(PART|Part|BOOK|Book|CHAPTER|Chapter)\s+(?:\d{{1,4}}|[IVXLCDM]{{1,8}}|(?i:{_NUMBER_WORDS}))"
    r"(?:\.?\s*$|\.?\s*[:.—–-]\s*(\S.*)|\s+([A-Z\"'“‘][^.!?;,]*))$"
)
_ZH_LEVEL = {"卷": 1, "部": 1, "篇": 1, "集": 1, "编": 1, "章": 2, "回": 2, "节": 3}
# A title of a chapter line is short and is no sentence: a line that goes on past a comma or a
# sentence end ("第二回合，张飞挺矛...") is prose that starts with an ordinal.
_CLAUSE_MARK = re.compile(r"[，。！？；,;!?…]")


def chapter_heading(line: str) -> tuple[int, str] | None:
    """(level, text) of a plain-text chapter line (_CHAPTER_ZH, _CHAPTER_EN), else None. A
    dot-leader contents line ("第一章 绪论 … 1") is none: it names a chapter, it opens none."""
    s = line.strip()
    if not s or len(s) > 80 or LEADER_LINE.search(s):
        return None
    m = _CHAPTER_ZH.fullmatch(s)
    if m is not None:
        title = m.group(2) or ""
        if len(title) > 40 or _CLAUSE_MARK.search(title):
            return None
        return _ZH_LEVEL[m.group(1)], s
    m = _CHAPTER_EN.fullmatch(s)
    if m is not None:
        title = m.group(2) or m.group(3) or ""
        if _CLAUSE_MARK.search(title.rstrip(".!?")):
            return None
        return (1 if m.group(1).lower() in ("part", "book") else 2), s
    return None


def heading(line: str) -> tuple[int, str] | None:
    """(level, text) of a heading line: a Markdown heading (its text without closing `#`s and
    spaces) or a plain-text chapter line; else None."""
    m = _MD_HEADING.match(line)
    if m is None:
        return chapter_heading(line)
    text = m.group(2)
    body = len(text.rstrip().rstrip("#").rstrip())
    return len(m.group(1)), text[: max(body, 1)]


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text[start:end]` (whitespace between them goes to
    the sentence before; spans that are only whitespace are left out)."""
    end = len(text) if end is None else end
    spans, s = [], start
    for m in _SENT_END.finditer(text, start, end):
        if m.end() > s:
            spans.append((s, m.end()))
            s = m.end()
    if s < end:
        spans.append((s, end))
    return [(a, b) for a, b in spans if text[a:b].strip()]


# A line of a table of contents or an index, its dot leaders read as "…" (ingest/pdf.py):
# "2.1 ASN.1 syntax … 2". It says where something is, not what it is.
LEADER_LINE = re.compile(r" … [0-9ivxlcIVXLC]{1,6}$")


# A fenced code block's opening or closing line (CommonMark): up to three spaces, then three or
# more backticks or tildes; an opening backtick fence's info string holds no backtick.
_FENCE = re.compile(r"^ {0,3}(`{3,}(?=[^`]*$)|~{3,})")


def fenced(lines: list[str]) -> list[bool]:
    """Per line, whether it belongs to a fenced code block (its fences included). Inside one,
    "# install the package" is a shell or Python comment, not a heading, and a blank line does
    not end the block; a fence left open runs to the end, as Markdown renders it."""
    out: list[bool] = []
    fence = ""
    for ln in lines:
        m = _FENCE.match(ln)
        if not fence:
            if m:
                fence = m.group(1)
            out.append(bool(m))
            continue
        out.append(True)
        if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not ln[m.end():].strip():
            fence = ""
    return out


def leads_in(text: str) -> bool:
    """Whether a text ends on a colon: it introduces what follows (a list, a formula, a reply),
    which the chunker may have cut from it (retrieval/window.py) and the extractive answer quotes
    after it (retrieval/compose.py)."""
    return text.rstrip().endswith((":", "："))


def clause_goes_on(clause: str, between: str, after: str = "") -> bool:
    """Whether a sentence that `split_sentences` ended at its semicolon goes on into the next
    one (`between`: the text between them; `after`: the next one's text). A semicolon joins the
    clauses of one sentence, unless a new line follows it (a list's next item); but hard-wrapped
    English prose breaks its lines anywhere, and a single line break followed by a lowercase
    word ("... works best;\ndistilled water produces ...") is the same sentence going on (a list
    item opens with a capital, a marker or a digit). The extractive composer quotes such clauses
    as one sentence (retrieval/compose.py), and the answer check reads them as one claim
    (retrieval/check.py)."""
    if not clause.rstrip().endswith(("；", ";")):
        return False
    if "\n" not in between:
        return True
    return between.count("\n") == 1 and after[:1].isascii() and after[:1].islower()


def _blocks(text: str) -> list[int]:
    """Offsets where a new block starts: after a blank line, at a list item, heading (a plain-text
    chapter line too: a novel saved as .txt puts 第二回 on the line after the last sentence of
    the chapter before) or table row, and after a heading line."""
    starts, pos, prev_heading, prev_blank = [0], 0, False, False
    for line in text.splitlines(keepends=True):
        chapter = chapter_heading(line) is not None
        if pos and (prev_heading or prev_blank or chapter or _LINE_START.match(line)) and starts[-1] != pos:
            starts.append(pos)
        prev_heading, prev_blank = chapter or line.lstrip().startswith("#"), not line.strip()
        pos += len(line)
    return starts[1:] + [len(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences of a passage: blocks first (paragraphs, list items, headings, table rows),
    then sentences within each, trimmed of surrounding whitespace. A hard-wrapped line break
    inside a paragraph does not end a sentence, nor does an abbreviation's period or an English
    "?" / "!" before a lowercase word (`goes_on`)."""
    out: list[tuple[int, int]] = []
    s = 0
    for b in _blocks(text):
        spans = split_sentences(text, s, b)
        if len(spans) > 1 and _MARK_ONLY.match(text[spans[0][0] : spans[0][1]]):  # "1." of a list item
            spans[:2] = [(spans[0][0], spans[1][1])]
        first = len(out)
        for a, e in spans:
            while a < e and text[a].isspace():
                a += 1
            while e > a and text[e - 1].isspace():
                e -= 1
            if e <= a:
                continue
            if len(out) > first and goes_on(text[out[-1][0] : out[-1][1]], text[a:e]):
                out[-1] = (out[-1][0], e)
            else:
                out.append((a, e))
        s = b
    return out


# Abbreviations a period ends without ending the sentence, by what follows them in scientific
# and technical English: a number or a bracket after "Fig." / "Eq." / "et al." ("Hastie et al.
# 2009", "see Fig. 3", "et al. (2009)"); a name after a title ("Dr. Smith"); anything after "e.g."
# / "i.e.". "et al." before a capital may end a sentence ("... by Smith et al. The results"),
# and "Inc." / "Co." often do, so they are not listed.
_BEFORE_NUMBER = re.compile(
    r"(?:\bet al|\b(?:Figs?|Eqs?|Nos?|Secs?|Sects?|Refs?|Tabs?|Chaps?|Vols?|vols?|pp?|ca|approx|vs|"
    r"fig|figs|eq|eqs|ref|chap|Art|Thm|Lemma|Prop|Def|Ex|Alg))\.$"
)
_BEFORE_NAME = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Prof|St|Gen|Col|Lt|Sgt|Rev|Hon)\.$")
_ALWAYS_ON = re.compile(r"\b(?:e\.g|i\.e|cf|viz|resp)\.$")


# An English "?" or "!" that a lowercase word follows: a symbol named in prose ("the ? operator",
# "the ! type"), a quoted question ("“Why?” she asked"), an exclamation inside a sentence.
_MARK_BEFORE_LOWER = re.compile(r"[?!][\"'”’)\]]*$")


def goes_on(before: str, after: str) -> bool:
    """Whether the sentence `before` goes on into `after`, which `split_sentences` cut from it:
    after an abbreviation's period (`goes_on_after_period`), or after an English "?" or "!"
    before a lowercase word. "You can use the ? operator on Result values." had been quoted as
    "operator on Result values." (chunking still cuts there, as at periods)."""
    if goes_on_after_period(before, after):
        return True
    first = after[:1]
    return first.isascii() and first.islower() and _MARK_BEFORE_LOWER.search(before) is not None


def goes_on_after_period(before: str, after: str) -> bool:
    """Whether a sentence that ended at an English period goes on: the next one starts with a
    lowercase letter, so the period was an abbreviation's ("derived from the 1990 U.S. census",
    "e.g. the", "vs. a"), or follows an abbreviation that introduces it (_BEFORE_NUMBER,
    _BEFORE_NAME, _ALWAYS_ON: "Hastie et al. 2009", "Fig. 3", "Dr. Smith", "e.g. Adam").
    Quoted apart, "This dataset was derived from the 1990 U.S." was an answer without its
    answer. `split_sentences` still cuts there (chunking does not change)."""
    if not before.endswith(".") or before.endswith(".."):
        return False
    first = after[:1]
    if first.isascii() and first.islower():
        return True
    tail = before[-12:]
    if first.isdigit() or first in "([":
        return _BEFORE_NUMBER.search(tail) is not None or _ALWAYS_ON.search(tail) is not None
    if first.isascii() and first.isupper():
        return _BEFORE_NAME.search(tail) is not None or _ALWAYS_ON.search(tail) is not None
    return False
