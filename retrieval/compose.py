"""Extractive answers: the sentences of the retrieved passages that best answer the question,
each followed by the citation of its passage. Correct by construction (every word comes from
a cited passage), which is what the shipped 135M model cannot promise.

Each sentence is scored with cheap features, the same kinds the ranker uses:
- coverage: the question's terms (core.keyword.tokenize) found in the sentence, weighted by a
  BM25-style idf over all candidate sentences (a term every sentence has says little); a term
  found only in the passage's heading counts half ("French press" is often the heading, not
  the sentence); a Chinese question's character bigrams are terms too (jieba cuts question
  and answer differently: 苦肉计 vs 受苦 / 肉之计);
- cosine between the question's vector and the sentence's (MiniLM), only when both are
  English: the model cannot read Chinese, so its cosines there would be noise;
- the passage's retrieval score against the best passage's (`rank_prior`: retrieval already
  weighed the whole passage);
a sentence that introduces X for "What is X?" and one that states the number a question asks
for (retrieval/quantity.py: 多少岁, 多高; "How many samples ...?" - a number beside "samples") get a
bonus; a sentence of fewer than SHORT_TERMS
content words (a label) is scaled down.
The best sentence is kept; others join it when they score at least `extractive_min_rel` of it
(`extractive_other_rel` when they come from another document: an answer usually lies in one,
and each other document cited is most often one that does not hold it), are not
near-duplicates, and fit `extractive_max_sentences` / `extractive_max_chars`. Clauses joined
by a semicolon are one sentence here (`_clauses_joined`). The best
sentence comes first, the others after it grouped by passage, in document order within one."""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.keyword import tokenize
from core.lang import cjk_share
from core.models import Embedder
from core.settings import Settings
from core.text import LEADER_LINE, chapter_heading, clause_goes_on, fenced, leads_in, sentence_spans
from core.tokens import strip_question_words
from core.types import Hit, TraceEntry
from retrieval.crosslingual import covered, credit, weighted_units
from retrieval.features import cjk_bigrams
from retrieval.generate import Citation, Generation, Passage, citation, neutralise
from retrieval.quantity import (
    asked_units,
    count_terms,
    english_asked_units,
    numbers_in,
    states_count,
    states_quantity,
)

ENGLISH_MAX_CJK = 0.3  # above this CJK share a text is not "English" for MiniLM
W_COVERAGE, W_COSINE, W_RANK = 0.55, 0.3, 0.25  # with cosine; without it coverage takes its weight
# A "What is X?" question is answered by the sentence that introduces X ("LORA: 微调大模型时...",
# "**RLHF**（基于人类反馈的强化学习...）", "Teacher forcing is ..."): as much as the passage prior,
# so a definition in a lower passage can win over the first passage's mention of X.
W_DEFINES = 0.25
# A question that asks a number in a unit (retrieval/quantity.py: 多少岁, 几层, 多高) is answered by
# the sentence that states one (二十六岁, 三层, 高九尺): the same weight as a definition's.
W_QUANTITY = 0.25
# A sentence that does not name X, for a question about X where other sentences do (`_about`)
NOT_ABOUT = 0.5
# A sentence of fewer content words than this is scaled down by words / SHORT_TERMS: a label or
# heading-like line ("Tokenization & Embedding", "Polynomial kernel approximation") is close
# to the question's words and vector without saying anything about them. Chosen on the dev
# questions of data/eval with W_RANK and answer.extractive_other_rel (eval/answers.py).
SHORT_TERMS = 4
PRIOR_TEMPERATURE = 0.5  # rank_prior's scale, in standard deviations of the passages' scores
MIN_TERMS = 2  # a sentence with fewer content words (a label, "1.") is not an answer
# A line of a fenced code block names the question's terms (`let mut scores = HashMap::new();`)
# without saying anything of them; it still follows a lead that introduces it ("like this:").
CODE_DAMPING = 0.5
# A line that is one acronym or name of two capitals or more ("MHA", "KV-Cache", "RoPE") names
# the line after it in notes that set a term above its gloss
_ACRONYM_LINE = re.compile(r"^(?=(?:[^A-Z]*[A-Z]){2})[A-Za-z][\w.+-]{1,15}$")
MAX_SENTENCE_CHARS = 600  # longer "sentences" are tables or run-on text, not answers
MAX_CLAUSES_CHARS = 300  # clauses joined at a semicolon (_clauses_joined) up to this length
SHORT_LINE = 40  # a run of lines this long at the median is a list, one item a line (_lines)

# A plain-text table's rule line: "=====   ======", "+-----+-----+" (no words; a Markdown
# table's "|---|:--:|" is read by `candidates` with its header).
_RULE = re.compile(r"^\s*[=+~-]{3,}[=+~\s-]*$")
# A list item's mark: a bullet, or a number or letter with its stop ("1.", "2)", "（3）", "a.").
_ITEM = re.compile(r"^(?:[-*+]\s+|[•·●▪◦]\s*|\d{1,2}[.)、](?!\d)\s*|[（(]\d{1,2}[)）]\s*|[a-z][.)]\s+)(?=\S)")
_LIST_MARK = re.compile(r"^\s*(?:>\s*)*(?:(?:[-*+•]|\d+[.)]|#{1,6})\s+)?")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^)]*)\)")
_TAG = re.compile(r"<[^>]{1,200}>")
# reStructuredText markup says how to render what follows, not what it says. A directive line
# (".. code-block:: text", "versionadded:: 1.2 ...") loses its name, and the argument of those
# that take one, so "code-block:: text" is left empty and never quoted ("The chi-squared kernel
# is given by:" was followed by it instead of the formula); a paragraph's closing "::" (a
# literal block follows: "the target y is defined by::") reads as the ":" it renders as.
_DIRECTIVE = re.compile(r"^(?:\.\.\s+)?([A-Za-z][\w-]*)::(?=\s|$)\s*")
_DIRECTIVE_ARGUMENT = frozenset(
    "code-block code sourcecode highlight literalinclude include image figure versionadded "
    "versionchanged deprecated".split()
)
_LITERAL_MARK = re.compile(r"(?<=\S)::$")
# A web address. Its path's words are no statement ("llama-tokenizer-js/example-demo/build"
# covered "How does the Unigram tokenizer build its vocabulary?"), so they are not a sentence's
# terms, and a line that is only an address is not quoted, unless the question asks where to
# find something (_ASKS_LINK): then the address is the answer.
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_ASKS_LINK = re.compile(
    r"\b(?:where|urls?|links?|websites?|sites?|web\s?pages?|homepage|download|repositor(?:y|ies)|repos?|github)\b"
    r"|网址|链接|网站|网页|主页|官网|下载|仓库|地址",
    re.IGNORECASE,
)


@dataclass
class QuestionVector:
    """What the cosine feature needs: the encoder, and the question's vector when it is already
    known (else it is embedded here)."""

    embedder: Embedder
    vector: np.ndarray | None = None


@dataclass
class Sentence:
    n: int  # passage number
    pos: int  # order within the passage
    text: str  # cleaned for display
    terms: set[str]  # content words
    bigrams: frozenset[str] = frozenset()  # CJK character bigrams (see score)
    start: int = 0  # offsets within the passage text
    end: int = 0
    item: bool = False  # an item of a list: marked with a bullet or a number in the passage
    code: bool = False  # a line of a fenced code block (core.text.fenced)
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0

    def has(self, term: str) -> bool:
        return term in self.terms or term in self.bigrams

    @property
    def asks(self) -> bool:
        """A bare question (a heading-like "向量数据库是如何工作的?"); one inside quotes (dialogue,
        "...其兆若何？”") ends on the quote and is not one."""
        return self.text.rstrip().endswith(("?", "？"))


@dataclass(frozen=True)
class _Label:
    """A line that is one acronym or name ("MHA"), held until the line after it (`candidates`)."""

    text: str
    terms: set[str]
    pos: int  # its span's place in the passage
    start: int  # its offset in the passage text


def clean(sentence: str) -> str:
    """Display form: one line, no list marker or reStructuredText directive (_DIRECTIVE), images
    and links reduced to their text, citation look-alikes neutralised."""
    s = _LIST_MARK.sub("", sentence)
    if m := _DIRECTIVE.match(s):
        s = s[m.end():]
        if m.group(1).casefold() in _DIRECTIVE_ARGUMENT:  # its argument goes too
            s = "".join(s.split(None, 1)[1:])
    s = _LITERAL_MARK.sub(":", s.rstrip())
    s = _IMAGE.sub("", s)
    s = _LINK.sub(r"\1", s)
    s = _TAG.sub("", s)
    return " ".join(neutralise(s).split())  # a quoted "[1]" must not read as our citation


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _separator(row: str) -> bool:
    """A Markdown table's rule line ("|---|:--:|")."""
    cells = _cells(row)
    return bool(cells) and all(set(c) <= set("-: ") for c in cells) and any("-" in c for c in cells)


def _table_row(row: str, header: list[str] | None = None) -> str:
    """A Markdown table row read as a line, with its column names where the passage holds the
    header: "| French press | Coarse | 4 minutes |" under "| Method | Grind | Steep |" ->
    "French press: Grind Coarse, Steep 4 minutes" (without the header: "French press: Coarse,
    4 minutes"). The names make the row findable by the question's words ("how long to
    steep") and readable alone. Cells are joined by commas, not semicolons: a semicolon ends
    a sentence (core/text.py), and the support check would cut the row in two."""
    cells = _cells(row)
    if header is not None and len(header) == len(cells):
        pairs = [f"{h} {c}" if h else c for h, c in zip(header[1:], cells[1:], strict=True) if c]
        return cells[0] + (": " + ", ".join(pairs) if pairs else "") if cells[0] else ", ".join(pairs)
    cells = [c for c in cells if c and not set(c) <= set("-: ")]
    if not cells:
        return ""
    return cells[0] + (": " + ", ".join(cells[1:]) if len(cells) > 1 else "")


def asks_for_link(question: str) -> bool:
    """Whether a web address may answer the question ("Where are the details available?",
    "项目的网址是什么？")."""
    return _ASKS_LINK.search(question) is not None


def candidates(passages: Sequence[Passage], links: bool = True) -> list[Sentence]:
    """The passages' sentences worth quoting: not headings (the heading is the passage's title,
    not an answer), not a table's header row (it names columns, answers nothing), not labels of
    fewer than MIN_TERMS content words, not run-on text. `links` False: the words of a web
    address are not terms (_URL), so an address alone is not quoted."""
    out: list[Sentence] = []
    for p in passages:
        heads = {h.strip().casefold() for h in p.hit.record.title.split(">")}
        in_code = _code_lines(p.text)
        lines = [ln for a, b in sentence_spans(p.text) for ln in _lines(p.text, a, b)]
        spans = _clauses_joined(p.text, lines)
        header: list[str] | None = None  # the column names of the table being read
        label: _Label | None = None  # a line that is one term, naming the line after it
        for pos, (a, b) in enumerate(spans):
            raw = p.text[a:b].lstrip()
            if not raw.startswith("|"):
                header = None
                if raw.startswith("#") or chapter_heading(raw) is not None:
                    continue
                text = clean(raw)
            elif _separator(raw):
                continue
            elif "\n" in raw and _separator(raw.split("\n")[1]):  # "|---|" opens no block of its own
                header = _cells(raw.split("\n")[0])
                continue
            elif pos + 1 < len(spans) and _separator(p.text[spans[pos + 1][0] : spans[pos + 1][1]].lstrip()):
                header = _cells(raw)
                continue
            else:
                text = _table_row(raw, header)
            terms = set(tokenize(text if links else _URL.sub(" ", text)))
            if (label and label.pos == pos - 1 and not raw.startswith("|")
                    and not _ACRONYM_LINE.match(next(iter(text.split()), ""))):
                # "MHA" / "Multi-head Attention slow": a term on a line of its own names the
                # line after it, which is quoted with it ("MHA Multi-head Attention slow"); not
                # a line that opens with a term of its own ("SwiGLU" / "PEFT parameter ..."
                # are two items of a list)
                text, terms, a = f"{label.text} {text}", terms | label.terms, label.start
            label = None
            if (
                len(terms) >= MIN_TERMS
                and len(text) <= MAX_SENTENCE_CHARS
                and text.casefold().rstrip(".:") not in heads
                and not any(LEADER_LINE.search(ln) for ln in text.split("\n"))  # a contents line
            ):
                out.append(Sentence(p.n, pos, text, terms, cjk_bigrams(text), a, b,
                                    _ITEM.match(raw) is not None, in_code(a)))
            elif _ACRONYM_LINE.match(text) and text.casefold() not in heads:
                label = _Label(text, terms, pos, a)
    return [s for s in out if not _points_at_nothing(s, out)]


def _code_lines(text: str) -> Callable[[int], bool]:
    """Whether the line holding an offset of `text` is in a fenced code block."""
    starts, pos = [], 0
    lines = text.split("\n")
    for ln in lines:
        starts.append(pos)
        pos += len(ln) + 1
    code = fenced(lines)
    return lambda offset: code[max(bisect.bisect_right(starts, offset) - 1, 0)]


# What a sentence says is below it: "更加具体的流程如下：", "The steps are shown below:"
_POINTER = re.compile(r"如下|以下|下面|下列|下图|如图|见下|as follows|the following|below", re.I)


def _points_at_nothing(s: Sentence, sents: list[Sentence]) -> bool:
    """A sentence that only points at what follows it ("更加具体的流程如下：") when no quotable
    sentence follows it in its passage (an image, a heading, or the passage's end does): quoted,
    it was the whole answer to "RAG 的流程是什么？" over the shared notes, and said nothing."""
    return (
        leads_in(s.text)
        and _POINTER.search(s.text) is not None
        and not any(o.n == s.n and o.pos == s.pos + 1 for o in sents)
    )


def _clauses_joined(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans where a clause ended by a semicolon is joined to the clause after it when the
    sentence goes on (core/text.clause_goes_on: on the same line, or on the next line of
    hard-wrapped prose), up to MAX_CLAUSES_CHARS: core/text.py ends a sentence at `；` / `;` (the answer check
    and chunking want short units), but a semicolon joins the clauses of one sentence, and
    Chinese prose puts one in nearly every speech ("统密谓肃曰：“欲破曹兵，须用火攻；" ...
    "除非献连环计，教他钉作一处，然后功可成也。”"): quoted clause by clause, the answer was the
    clause that repeats the question's words without the one that answers it. On the dev
    questions of data/eval (eval/answers.py, answered at the shipped abstention) the answer text
    held the evidence 0.675 -> 0.691 (zh-prose 0.625 -> 0.675), nothing else moved; answers grew
    by 2 characters on average (zh-prose 85 -> 94)."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out:
            pa, pb = out[-1]
            head, nxt = text[pa:pb].rstrip(), text[a:b].lstrip()
            gap = text[pa + len(head) : b - len(nxt)]  # the whitespace between them
            if (
                clause_goes_on(head, gap, nxt)
                and not head.lstrip().startswith(("|", "#"))
                and not nxt.startswith(("|", "#"))
                and b - pa <= MAX_CLAUSES_CHARS
            ):
                out[-1] = (pa, b)
                continue
        out.append((a, b))
    return out


def _lines(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """A sentence span, or its lines where it is a run of short ones or a plain-text table
    (its rule lines left out): notes that put one item
    per line with no punctuation ("GQA", "RMSNorm", "QLoRA 量化+LoRA") read as one run-on
    "sentence" of hundreds of characters, quoted whole for the one line that answers.
    Hard-wrapped prose keeps its lines together: they are long (a line of text's width)."""
    if "\n" not in text[a:b]:
        return [(a, b)]
    out: list[tuple[int, int]] = []
    rules = 0
    start = a
    for line in text[a:b].splitlines(keepends=True):
        if _RULE.match(line):
            rules += 1
        elif line.strip():
            out.append((start, start + len(line.rstrip())))
        start += len(line)
    if rules:  # a plain-text table ("=====  =====" rules, reStructuredText): one row a line
        return out
    if _wrapped(text, out):
        return [(a, b)]
    # the lines as the text has them, not the sentence's pieces of them: a sentence of
    # hard-wrapped prose can start late on one line and end early on the next ("For a 500 ml pot,
    # use about\n31 grams of coffee."), two short pieces of two long lines
    lengths = sorted(_line_length(text, s, e) for s, e in out)
    if len(out) > 1 and lengths[len(lengths) // 2] <= SHORT_LINE:
        return _rejoined(text, out)
    return [(a, b)]


def _rejoined(text: str, lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Lines read one by one, except where a full line of English breaks mid-sentence
    (`_breaks_mid`): a docstring's parameter entry ("n_clusters : int, default=8" / "The number
    of clusters to form as well as the number of" / "centroids to generate.") is short lines at
    the median, and its description was quoted as "... as well as the number of". A Chinese line
    ends anywhere, and a next line that opens with a Latin word ("...就不等价了" / "decoding在采样
    时...") is another note."""
    out = [lines[0]]
    for s, e in lines[1:]:
        ps, pe = out[-1]
        line = text[ps:pe]
        if pe - ps > SHORT_LINE and line[-1:].isascii() and _breaks_mid(line, text[s:e]):
            out[-1] = (ps, e)
        else:
            out.append((s, e))
    return out


def _breaks_mid(line: str, nxt: str) -> bool:
    """A line stops mid-sentence (on a word, a comma, a bracket) and the next goes on in
    lower case: one sentence, hard-wrapped."""
    head = nxt.lstrip()[:1]
    return _OPEN_END.search(line) is not None and head.isascii() and head.islower()


def _line_length(text: str, s: int, e: int) -> int:
    """The length of the whole line (or lines) of `text` that the span s:e lies on."""
    end = text.find("\n", e)
    return (len(text) if end < 0 else end) - (text.rfind("\n", 0, s) + 1)


_OPEN_END = re.compile(r"[\w,)\]]$")  # a line that stops mid-sentence: a word, a comma, a bracket


def _wrapped(text: str, lines: list[tuple[int, int]]) -> bool:
    """Whether a sentence's lines are hard-wrapped prose: one of them is a full line (longer
    than SHORT_LINE) and each line break falls mid-sentence (the line stops on a word or comma
    and the next starts with a lowercase letter). A sentence of three wrapped lines can have a
    short first and last line ("When random\nsubsets of the dataset are drawn ..., then\nthis
    algorithm is known as Pasting"): by the median length it was read as a list, one item a
    line, and "... the samples, then" was quoted without what follows."""
    if len(lines) < 2 or max(e - s for s, e in lines) <= SHORT_LINE:
        return False
    pairs = zip(lines, lines[1:], strict=False)
    return all(_breaks_mid(text[s1:e1], text[s2:e2]) for (s1, e1), (s2, e2) in pairs)


def _idf(sents: list[Sentence], terms: set[str]) -> dict[str, float]:
    n = len(sents)
    return {t: math.log(1 + (n - (df := sum(s.has(t) for s in sents)) + 0.5) / (df + 0.5)) for t in terms}


def english(text: str) -> bool:
    return cjk_share(text) <= ENGLISH_MAX_CJK


def rank_prior(passages: Sequence[Passage]) -> dict[int, float]:
    """Per passage number, how far retrieval put it below the best passage, as a prior in
    (0, 1]: exp(-gap / (PRIOR_TEMPERATURE * spread)), the gap in final score and the spread
    the scores' standard deviation over these passages (scale-free: the final score is a
    z-score blend, an RRF sum or a cosine depending on the stages that ran). Passages retrieval
    found about as good keep about the same prior, so a sentence that covers the question
    better in the second one can lead; by rank (1, 2/3, 1/2, ...) the first passage's
    sentences won on the prior alone. Chosen on the dev questions of data/eval (evidence cited
    0.693 -> 0.687, citation precision 0.631 -> 0.684, before abstention; eval/answers.py)."""
    scores = np.asarray([p.hit.score for p in passages], dtype=np.float64)
    if not len(scores):
        return {}
    spread = float(scores.std()) or 1.0
    top = float(scores.max())
    scale = PRIOR_TEMPERATURE * spread
    return {p.n: math.exp(-(top - sc) / scale) for p, sc in zip(passages, scores.tolist(), strict=True)}


def score(
    question: str,
    passages: Sequence[Passage],
    sents: list[Sentence],
    qv: QuestionVector | None,
    keep_rel: float = 0.0,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Fill each sentence's features and score (in place). With `keep_rel` (the share of the
    best score a sentence needs to join the answer, `select`), a sentence whose score could not
    reach it even at cosine 1 is not embedded: it keeps the score without its cosine, and the
    answer is the same. Encoding is most of an English answer's time (20 sentences: 0.42 s in
    a cold `rag ask`), and on the sci-en dev questions two thirds of the sentences are out of
    reach. `groups`: the Chinese words the question's BM25 query added for each English key
    (retrieval/crosslingual.py): a key and its words are one unit of coverage."""
    q_terms = set(tokenize(question))
    if cjk_share(question) > ENGLISH_MAX_CJK:
        # jieba cuts a question and the older or technical text that answers it differently
        # (苦肉计 vs 受苦 / 肉之计); the question's character bigrams (its question words left
        # out) match either way, weighted by idf like the words.
        q_terms |= cjk_bigrams(strip_question_words(question))
    if not sents:
        return
    idf = _idf(sents, q_terms)
    term = defined_term(question)
    # an English question of Chinese text asks its figure in Chinese units ("How old ..." - 岁)
    asked = asked_units(question) or english_asked_units(question)
    counted = count_terms(question, groups)  # "How many samples ...": a number beside "samples"
    known = numbers_in(question)
    units = weighted_units(idf, groups)
    heads = {p.n: set(tokenize(p.hit.record.title)) | cjk_bigrams(p.hit.record.title) for p in passages}
    prior = rank_prior(passages)
    with_cos = qv is not None and english(question) and bool(q_terms)
    w_cov = W_COVERAGE if with_cos else W_COVERAGE + W_COSINE
    for s in sents:
        cov = covered(units, credit(s.has, heads[s.n]))
        s.features = {"coverage": round(cov, 4), "rank_prior": round(prior[s.n], 4)}
        s.score = w_cov * cov + W_RANK * prior[s.n]
        if term and defines(s.text, term):
            s.features["defines"] = 1.0
            s.score += W_DEFINES
        if (asked and states_quantity(s.text, asked)) or (counted and states_count(s.text, counted, known)):
            s.features["quantity"] = 1.0
            s.score += W_QUANTITY
        s.score *= _damping(s)
    if term:
        _about(term, passages, sents)
    if with_cos and qv is not None:
        _add_cosines(question, sents, qv, keep_rel)


_WHAT_IS = re.compile(
    # what X is for first: "What is a retriever used for?" asks about "retriever"
    r"^\s*what\s+(?:is|are)\s+(?:an?\s+|the\s+)?(?P<en3>[^?]{1,60}?)\s+(?:used\s+)?for\s*\?"
    r"|^\s*what\s+is\s+the\s+(?:purpose|role|point)\s+of\s+(?:an?\s+|the\s+)?(?P<en4>[^?]{1,60}?)\s*\?"
    r"|^\s*(?:what|who)\s+(?:is|are|was|were)\s+(?:an?\s+|the\s+)?(?P<en>[^?]{1,60}?)\s*\?"
    r"|^\s*what\s+(?:does|do)\s+(?P<en2>[^?]{1,60}?)\s+(?:mean|stand\s+for|do)\s*\?"
    r"|^\s*(?:什么是|何为|何谓)\s*(?P<zh>[^？?]{1,20}?)\s*[？?]"
    r"|^\s*(?P<zh2>[^？?]{1,20}?)\s*(?:是什么|是指什么|指的是什么|是啥|是做什么的|是干什么的|有什么用|有什么作用|的作用是什么)\s*[？?]",
    re.IGNORECASE,
)
_DEF_MARK = ":：(（,，是指—-"  # what follows a term that a sentence introduces
_LEAD_MARKS = re.compile(r"^[\s*_\"'“「↳>#\d.、)）-]*")


def defined_term(question: str) -> str | None:
    """X of a question that asks what X is ("What is QLoRA?", "What does RLHF stand for?",
    "什么是 LoRA？", "KV-Cache 是什么？") or what it is for ("What does LoRA do?", "What is a
    retriever used for?", "LoRA 有什么用？": the sentence that introduces X says that too), X of
    at most four words; None for other questions ("What is the default value of alpha?" asks
    for a value, not a definition)."""
    m = _WHAT_IS.match(question)
    if not m:
        return None
    term = next(g for g in m.groups() if g is not None).strip(" \"'“”")
    # "LangChain 的 Chains", "LangChain's Memory component": the part asked about is the last
    # one, as the text introduces it ("链(Chains):", "记忆(Memory):"). Only a named term (Latin
    # letters): "郊外小儿唱的童谣" names no term a sentence introduces, and the novel's answer
    # (the song) does not say 童谣
    part = _KIND.sub("", _OWNER.sub("", term)).strip()
    if part != term and re.search(r"[A-Za-z]{2}", part):
        term = part
    return term if term and len(term.split()) <= 4 else None


_OWNER = re.compile(r"^.+?(?:\s*的\s*|['’]s\s+)(?=\S)")
_KIND = re.compile(r"\s+(?:components?|modules?)$", re.IGNORECASE)


def defines(sentence: str, term: str) -> bool:
    """Whether the sentence introduces `term`: it opens with it (past list marks and emphasis),
    followed by a colon, a bracket, a comma, 是 / 指 / "is" / "are" or nothing; or it gives the
    term its gloss in brackets ("人类反馈强化学习(RLHF)", "RLHF（...）", "监督微调（..., SFT）")."""
    low, t = _folded(sentence), _folded(term)
    head = _LEAD_MARKS.sub("", low)
    if head.startswith(t):
        rest = head[len(t):].lstrip("*_ ")
        if not rest or rest[0] in _DEF_MARK or rest.startswith(("is ", "are ", "refers to", "means ")):
            return True
    at = low.find(t)
    while at >= 0:
        after = low[at + len(t):].lstrip("*_ ")
        before = low[:at].rstrip("*_ #")
        # "RLHF（基于人类反馈...）", "人类反馈强化学习(#RLHF)", "监督微调（Supervised Fine-Tuning, SFT）"
        if (after[:1] and after[0] in "(（)）") or (before[-1:] and before[-1] in "(（"):
            return True
        at = low.find(t, at + 1)
    return False


def _about(term: str, passages: Sequence[Passage], sents: list[Sentence]) -> None:
    """For "What is X?" / "X 的作用是什么？": where some sentence names X (or sits under a heading
    that does), a sentence that does not is scaled down by NOT_ABOUT: "Mask的作用是保证翻译都顺序"
    shares 的作用 with "位置编码的作用是什么？" and led the answer over the passage saying what
    位置编码 does."""
    t = _folded(term)
    titled = {p.n for p in passages if t in _folded(p.hit.record.title)}
    names = {id(s) for s in sents if s.n in titled or t in _folded(s.text)}
    if not names:
        return
    for s in sents:
        if id(s) not in names:
            s.features["not_about"] = 1.0
            s.score *= NOT_ABOUT


def _folded(text: str) -> str:
    """Lower case, a hyphen read as a space: "teacher-forcing" introduces "teacher forcing"."""
    return text.casefold().replace("-", " ")


def _damping(s: Sentence) -> float:
    """A label-like sentence of few content words, a question, or a line of code is scaled down."""
    f = min(len(s.terms) / SHORT_TERMS, 1.0)
    if s.code:
        f *= CODE_DAMPING
    return f * 0.5 if s.asks else f  # a question does not answer one


LEAD_ROUND = 4  # sentences embedded first, whose scores bound the lead's from below


def _add_cosines(question: str, sents: list[Sentence], qv: QuestionVector, keep_rel: float) -> None:
    """Add W_COSINE x cosine to the English sentences' scores, embedding those that can still
    matter: first the LEAD_ROUND best without it, then every sentence whose score with a cosine
    of 1 reaches `keep_rel` of the best score so far (a lower bound of the lead's). Two batches,
    so that a process with torch loaded still encodes in batches."""
    vec = qv.vector if qv.vector is not None else qv.embedder.embed([question])[0]
    q = np.asarray(vec, dtype=np.float32)
    q = q / (np.linalg.norm(q) or 1.0)
    for s in sents:
        s.features["cosine"] = 0.0  # a sentence the encoder cannot read (or left out) adds none
    eng = sorted((s for s in sents if english(s.text)), key=lambda s: -s.score)

    def embed(batch: list[Sentence]) -> None:
        vecs = qv.embedder.embed([s.text for s in batch]) if batch else np.zeros((0, 1))
        for s, v in zip(batch, vecs, strict=True):
            cos = float(np.dot(q, v) / (np.linalg.norm(v) or 1.0))
            s.features["cosine"] = round(cos, 4)
            s.score += W_COSINE * max(cos, 0.0) * _damping(s)

    first, rest = eng[:LEAD_ROUND], eng[LEAD_ROUND:]
    embed(first)
    best = max((s.score for s in sents), default=0.0)
    # a sentence's score with cosine 1 is its score now plus W_COSINE x its damping
    embed([s for s in rest if s.score + W_COSINE * _damping(s) >= keep_rel * best])


def _similar(a: Sentence, b: Sentence) -> bool:
    """Near-duplicates: most words shared, or one's words nearly all inside the other's (a
    note's title line, then its paragraph opening with the title: the title was quoted twice)."""
    shared = len(a.terms & b.terms)
    smaller = min(len(a.terms), len(b.terms)) or 1
    return shared / (len(a.terms | b.terms) or 1) > 0.6 or shared / smaller > 0.8


def select(
    sents: list[Sentence], settings: Settings, sources: dict[int, str] | None = None
) -> list[Sentence]:
    """The best sentence and those that join it (module docstring); `sources`: each passage
    number's document, for answer.extractive_other_rel."""
    a = settings.answer
    ranked = sorted(sents, key=lambda s: (-s.score, s.n, s.pos))
    chosen: list[Sentence] = []
    chars = 0
    src = sources or {}
    for s in ranked:
        if len(chosen) >= a.extractive_max_sentences:
            break
        rel = a.extractive_min_rel
        if chosen and src.get(s.n) != src.get(chosen[0].n):  # from another document than the lead's
            rel = max(rel, a.extractive_other_rel)
        # A definition that leads ("LORA: 微调大模型时...") is the answer to "What is X?": another
        # passage's sentence joins it only if it defines X too, not for naming X in passing
        # ("成为一名全栈大模型工程师,包括Prompt,LangChain,LoRA等...")
        lead = chosen[0] if chosen else None
        if lead and lead.features.get("defines") and s.n != lead.n and not s.features.get("defines"):
            continue
        # a question (a note's heading-like "向量数据库是如何工作的?") answers nothing after the
        # lead; one inside quotes is dialogue, which tells the story ("孔明惊问曰：“如何得先到？”")
        if lead and s.asks:
            continue
        if chosen and (
            s.score < rel * chosen[0].score
            or chars + len(s.text) > a.extractive_max_chars
            or any(_similar(s, c) for c in chosen)
        ):
            continue
        chosen.append(s)
        chars += len(s.text)
    if not chosen:
        return []
    # For a question that asks a number ("有多重？", "How many samples ...?"), the best sentence
    # that states one leads: the passage rank had put "兴得了父亲的青龙偃月刀..." of the first
    # passage before the second passage's "...重八十二斤", which answers.
    if not chosen[0].features.get("quantity"):
        stating = next((s for s in chosen if s.features.get("quantity")), None)
        if stating is not None:
            chosen = [stating, *(s for s in chosen if s is not stating)]
    # The best sentence leads (it answers); the rest follow grouped by passage, in the order of
    # each passage's best sentence, and in document order within a passage (they read on).
    best_of: dict[int, int] = {}
    for s in chosen:
        best_of.setdefault(s.n, len(best_of))
    ordered = chosen[:1] + sorted(chosen[1:], key=lambda s: (best_of[s.n], s.pos))
    return _with_reply(ordered, sents, a.extractive_max_sentences, a.extractive_max_chars)


# A sentence that asks, or opens what it does not finish: a question ("其兆若何？”", "How do I
# ...?"), a colon before what follows ("... is given by:", "曰：", `leads_in`), or a quotation
# left open ("大喝曰：“我乃燕人张翼德也！" - the speech goes on in the next sentence).
_ASKS = re.compile(r"[？?][”」』\"')）]*$")


def opens_reply(text: str) -> bool:
    """Whether a sentence leaves its answer to the next one (_ASKS, a colon, or more “ than ”).
    Of a reStructuredText "... defined by::" the next candidate is the literal block it
    introduces (`clean` reads the "::" as ":" and quotes no directive line)."""
    t = text.rstrip()
    return _ASKS.search(t) is not None or leads_in(t) or t.count("“") > t.count("”")


def _with_reply(chosen: list[Sentence], sents: list[Sentence], max_n: int, max_chars: int) -> list[Sentence]:
    """The lead sentence followed by the next one of its passage that `candidates` keeps (a label
    of fewer than MIN_TERMS words is skipped) when the lead only asks or opens (`opens_reply`):
    the words of a question echo the sentence that repeats them, and in
    dialogue that is the one asking ("卓问肃曰：“车折轮，马断辔，其兆若何？”"), while the answer is
    the reply after it ("肃曰：“...将乘玉辇金鞍之兆也。”"). The reply takes the place of the last
    sentence when the answer would run over answer.extractive_max_sentences / _max_chars. Only
    the lead's: the same for every chosen sentence that asks or opens quoted more of the novel's
    dialogue and less of what answers (docs/MEASUREMENTS.md, Asking questions). A lead that ends on a colon
    (`core.text.leads_in`: "由以下 6 个核心组件组成:") may introduce a list: when the reply is
    a list item (a bullet or a number marks it, `Sentence.item`), the items right after it follow
    too, as many as the answer holds, in place of the others."""
    lead = chosen[0]
    if not opens_reply(lead.text):
        return chosen
    after = sorted((s for s in sents if s.n == lead.n and s.pos > lead.pos), key=lambda s: s.pos)
    # the reply must say something whole: not ask or open in turn (its quotes closed)
    if (not after or max_n < 2 or len(lead.text) + len(after[0].text) > max_chars
            or opens_reply(after[0].text)):
        return chosen
    reply = [after[0]]
    if leads_in(lead.text):
        # "由以下 6 个核心组件组成:" introduces several items: the run of list items right after it
        # (no label or heading between), as many as the answer holds. Only marked items: after
        # "is defined as:" the lines of a formula are no answer of their own, and they pushed
        # out the sentence that answered (sci-en dev, eval/answers.py)
        for s in after[1:]:
            if (s.pos != reply[-1].pos + 1 or not (s.item and reply[-1].item)
                    or opens_reply(s.text) or len(reply) + 2 > max_n
                    or sum(len(x.text) for x in [lead, *reply, s]) > max_chars):
                break
            reply.append(s)
    rest = [s for s in chosen[1:] if all(s is not r for r in reply)]
    while rest and (len(rest) + len(reply) + 1 > max_n
                    or sum(len(s.text) for s in [lead, *reply, *rest]) > max_chars):
        rest.pop()
    return [lead, *reply, *rest]


def render(chosen: list[Sentence]) -> str:
    return " ".join(f"{s.text} [{s.n}]" for s in chosen)


def compose(
    question: str,
    hits: list[Hit],
    settings: Settings,
    trace: list[TraceEntry],
    qv: QuestionVector | None = None,
    passages: list[Passage] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> Generation:
    """The extractive answer over `hits` (or ready numbered `passages`), as a `Generation` whose
    citations name exactly the passages its sentences come from; a `compose` trace entry. No
    sentence worth quoting: an empty, declined Generation (the caller abstains). `qv`: for the
    cosine feature (English text only); without it sentences are scored on terms and rank."""
    t0 = time.perf_counter()
    if passages is None:
        passages = [
            Passage(i, h, h.record.text) for i, h in enumerate(hits[: settings.answer.context_chunks], 1)
        ]
    if not passages:
        return Generation("", [], no_passages=True)
    sents = candidates(passages, links=asks_for_link(question))
    score(question, passages, sents, qv, settings.answer.extractive_min_rel, groups)
    chosen = select(sents, settings, {p.n: p.hit.record.source or p.hit.record.id for p in passages})
    text = render(chosen)
    by_n = {p.n: p for p in passages}
    cited = sorted({s.n for s in chosen})
    cits: list[Citation] = [citation(by_n[n], "extractive") for n in cited]
    ms = (time.perf_counter() - t0) * 1000
    top = sorted(sents, key=lambda s: -s.score)[:6]
    trace.append(
        TraceEntry(
            "compose",
            ms,
            {
                "sentences": len(sents),
                "chosen": [{"n": s.n, "text": s.text[:120], "score": round(s.score, 4)} for s in chosen],
                "top": [
                    {"n": s.n, "text": s.text[:80], "score": round(s.score, 4), **s.features} for s in top
                ],
            },
        )
    )
    return Generation(text, passages, cits, declined=not chosen, ms=ms)
