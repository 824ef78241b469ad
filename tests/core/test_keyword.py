"""Tokenisation of mixed Chinese-English text, the keyword index's neighbour and document
scores, the rebuild of an index an older tokenizer wrote, and rebuilds that tokenise only
what changed while scoring exactly as bm25s does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.docstore import DocStore
from core.keyword import TOKENIZER_VERSION, KeywordIndex, tokenize
from core.lang import approx_tokens, cjk_share
from core.tokens import BIGRAM_MARK, cjk_grams, index_terms
from core.types import KeywordRows, Record, text_digest

_TEXTS = [
    "Steep the coffee for four minutes in a French press.",
    "Green tea wants water at about 80 degrees; 绿茶的水温大约八十度。",
    "Transformer架构中的self-attention计算注意力权重 attention attention",
    "The grind size for espresso is fine; for a French press coarse.",
    "北京冬奥会的吉祥物是冰墩墩。近似最近邻（ANN）检索",
    "",
]
_QUERIES = ["french press coffee", "绿茶 水温", "attention attention Transformer", "冬奥会吉祥物",
            "espresso grind", "ANN 检索"]


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


def test_an_acronyms_plural_is_the_acronym_and_clitics_are_no_tokens() -> None:
    """Snowball keeps the "s" of a word with no vowel ("llms") or a vowel right before it
    ("gpus"): an English question about "LLMs" never met a passage about "LLM"."""
    assert tokenize("LLMs on GPUs, miRNAs, PhDs and A100s") == ["llm", "gpu", "mirna", "phd", "a100"]
    assert tokenize("LLM GPU miRNA") == ["llm", "gpu", "mirna"]
    # words that merely end in "s" are the stemmer's: no capital pair, or a lower-case letter first
    assert tokenize("Macs bus LLMS") == ["mac", "bus", "llms"]
    # a possessive's or contraction's tail is no word ("LangChain's" gave a token "s")
    assert tokenize("LangChain's memory isn't LoRA’s") == ["langchain", "memori", "isn", "lora"]
    assert tokenize("s t") == ["s", "t"]  # letters on their own are still words


def test_full_width_letters_and_digits_read_as_plain_ones() -> None:
    """Chinese text typed in full-width mode writes ＬＬＭ and ＧＰＴ－４: a question in plain
    letters must meet them."""
    assert tokenize("ＬＬＭｓ的ＲＡＧ技术，ＧＰＴ－４") == tokenize("LLMs的RAG技术，GPT-4") == [
        "llm", "rag", "技术", "gpt", "4"]
    assert tokenize("ﬁne-tuning") == ["fine", "tune"]  # a ligature is its letters


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


def test_index_written_by_an_older_tokenizer_is_rebuilt(tmp_path: Path, settings, caplog) -> None:  # type: ignore[no-untyped-def]
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
    with caplog.at_level("WARNING", logger="core.index"):
        assert index.keyword.is_current()  # rebuilt when first opened
    # the user is told what runs, for how many records and about how long, then how long it took
    said = [r.getMessage() for r in caplog.records if r.name == "core.index"]
    assert "for 1 records" in said[0] and "a few seconds, once" in said[0]
    assert said[1].startswith("BM25 index rebuilt in ")
    assert json.loads(man_path.read_text())["tokenizer"] == TOKENIZER_VERSION
    assert index.keyword.search("架构", 3)


def test_saved_scores_read_an_index_bm25s_saved_without_importing_it(tmp_path: Path) -> None:
    """An index written by bm25s itself (as this project did before it kept term counts)
    is scored by `SavedScores` exactly as bm25s scores it."""
    import bm25s
    import bm25s.tokenization as tk

    from core.bm25 import SavedScores, load_saved_scores

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in (tokenize(x) or ["\x00empty"])] for x in _TEXTS]
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index(tk.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    ref.save(str(tmp_path / "old"))
    saved = load_saved_scores(tmp_path / "old")
    assert isinstance(saved, SavedScores)
    for q in _QUERIES:
        q_ids = [ref.vocab_dict[t] for t in tokenize(q) if t in ref.vocab_dict]
        assert q_ids, q
        got, want = saved.get_scores(q_ids), np.asarray(ref.get_scores(q_ids))
        assert got.dtype == want.dtype and np.array_equal(got, want), q
    params = tmp_path / "old" / "params.index.json"
    p = json.loads(params.read_text())
    params.write_text(json.dumps({**p, "method": "bm25+"}))  # needs more than the matrix: bm25s loads it
    assert load_saved_scores(tmp_path / "old") is None


def test_search_reads_the_index_without_bm25s(tmp_path: Path) -> None:
    from core.bm25 import SavedScores

    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(_TEXTS))
    kw.load()
    assert isinstance(kw._bm25, SavedScores)
    assert kw.search("french press", 2)[0][0] in ("r0", "r3")
    assert kw.search("冰墩墩", 1)[0][0] == "r4"


def test_doc_freqs_count_the_records_that_hold_each_term(tmp_path: Path) -> None:
    """Read off the matrix: "french" / "press" are in texts 0 and 3, "attent" (stemmed) in
    text 2 only (three times, one record), 吉祥物 in text 4, an unknown term in none. The same counts from
    the index bm25s wrote, which keeps its matrix in another attribute."""
    import bm25s

    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(_TEXTS))
    terms = [*tokenize("french press attention"), "吉祥物", "nowhere"]
    want = {"french": 2, "press": 2, "attent": 1, "吉祥物": 1, "nowhere": 0}
    assert kw.doc_freqs(terms) == want
    import bm25s.tokenization as tk

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in (tokenize(x) or ["\x00empty"])] for x in _TEXTS]
    kw._bm25 = bm25s.BM25(k1=1.2, b=0.75)  # an index of the kind bm25s itself saved
    kw._bm25.index(tk.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    assert kw.doc_freqs(terms) == want


def _scores(kw: KeywordIndex, q: str) -> np.ndarray:
    scores = kw._all_scores(q)
    return scores if scores is not None else np.zeros(len(kw.ids), np.float32)


def test_matrix_equals_bm25s_indexing_the_same_tokens(tmp_path: Path) -> None:
    """Our NumPy weights against bm25s building its own index from the same token lists."""
    import bm25s
    import bm25s.tokenization as tk

    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(_TEXTS))
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in (tokenize(x) or ["\x00empty"])] for x in _TEXTS]
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index(tk.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    rids = [f"r{i}" for i in range(len(_TEXTS))]
    for q in _QUERIES:
        terms = [t for t in tokenize(q) if t in vocab]
        assert terms, q
        want = np.asarray(ref.get_scores([ref.vocab_dict[t] for t in terms]), dtype=np.float32)
        # the words' field alone: the CJK bigrams are a second field with its own lengths
        assert np.array_equal(kw.term_scores(terms, rids), want), q
        if not any(BIGRAM_MARK + g in kw._bm25.vocab_dict for g in cjk_grams(q)):
            assert np.array_equal(_scores(kw, q), want), q  # an English query scores words only


def test_cjk_bigrams_are_a_second_field_normalised_by_their_own_length(tmp_path: Path) -> None:
    """By hand: a Chinese query scores BM25 over jieba's words plus BM25 over the character
    bigrams, each with the record's length in that field against that field's mean over the
    records that have it (the English record has no bigrams and does not lower their mean)."""
    texts = ["关羽字云长", "张飞字翼德，涿郡人", "Green tea and coffee"]
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(texts))
    assert index_terms("关羽字云长")[-4:] == ["~关羽", "~羽字", "~字云", "~云长"]
    words = [tokenize(t) for t in texts]
    grams = [cjk_grams(t) for t in texts]
    assert grams[1] == ["张飞", "飞字", "字翼", "翼德", "涿郡", "郡人"]  # runs split at the comma

    def bm25(term: str, field: list[list[str]], mean_over: list[list[str]]) -> np.ndarray:
        avg = sum(len(f) for f in mean_over) / len(mean_over)
        df = sum(term in f for f in field)
        idf = math.log(1 + (len(field) - df + 0.5) / (df + 0.5))
        return np.asarray([idf * f.count(term) / (f.count(term) + 1.2 * (0.25 + 0.75 * len(f) / avg))
                           for f in field])

    kw.load()
    vocab = kw._bm25.vocab_dict
    for q in ("云长", "关羽 张飞 涿郡"):
        want = sum((bm25(w, words, words) for w in tokenize(q) if w in vocab), np.zeros(3)) + sum(
            bm25(g, grams, grams[:2]) for g in cjk_grams(q))
        np.testing.assert_allclose(_scores(kw, q), want, rtol=1e-5)
    # jieba made one word of 字云长: the word field misses 云长, the bigrams find it
    assert "云长" not in vocab and _scores(kw, "云长")[0] > 0 == _scores(kw, "云长")[1]


@pytest.mark.parametrize("numpy_sort_max", [0, 10**9], ids=["scipy", "numpy"])
def test_the_matrix_holds_each_records_terms_by_term_records_ascending(
    numpy_sort_max: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CSC layout bm25s reads: per term, every record that holds it, in ascending order,
    for a vocabulary below and above 65,536 terms (the weights themselves: the bm25s
    comparison above), turned around by SciPy (large indexes) and by NumPy (small ones)."""
    from core import bm25
    from core.bm25 import TermCounts, lucene_matrix

    monkeypatch.setattr(bm25, "NUMPY_SORT_MAX", numpy_sort_max)
    rng = np.random.default_rng(0)
    for n_vocab in (50, 200_000):
        docs = [rng.choice(n_vocab, size=int(rng.integers(1, 20)), replace=False) for _ in range(300)]
        docs[5] = docs[9] = np.asarray([n_vocab - 1, 0])  # shared terms at both ends of the vocabulary
        vocab = {str(i): i for i in range(n_vocab)}
        counts = TermCounts.from_tokens(([str(t) for t in d] for d in docs), vocab)
        data, indices, indptr = lucene_matrix(counts, n_vocab)
        assert data.dtype == np.float32 and indices.dtype == np.int32 and indptr.dtype == np.int64
        assert indptr[0] == 0 and indptr[-1] == len(data) == sum(len(d) for d in docs)
        held: dict[int, list[int]] = {}
        for r, d in enumerate(docs):
            for t in d:
                held.setdefault(vocab[str(t)], []).append(r)
        for t in range(n_vocab):
            assert indices[indptr[t]:indptr[t + 1]].tolist() == held.get(t, []), t
        assert np.all(data > 0)


def test_numpy_and_scipy_turn_the_matrix_around_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two ways of building the CSC matrix (NumPy's stable argsort for small indexes,
    SciPy's conversion for large ones) give the same arrays, bit for bit, second field too."""
    from core import bm25
    from core.bm25 import TermCounts, lucene_matrix

    rng = np.random.default_rng(1)
    n_vocab = 3000
    docs = [rng.choice(n_vocab, size=int(rng.integers(1, 60))) for _ in range(2000)]  # repeats: tf > 1
    vocab = {str(i): i for i in range(n_vocab)}
    counts = TermCounts.from_tokens(([str(t) for t in d] for d in docs), vocab)
    second = np.arange(n_vocab) % 7 == 0
    out = {}
    for name, limit in (("scipy", 0), ("numpy", 10**9)):
        monkeypatch.setattr(bm25, "NUMPY_SORT_MAX", limit)
        out[name] = lucene_matrix(counts, n_vocab, second=second)
    for a, b in zip(out["scipy"], out["numpy"], strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_rebuild_tokenises_only_new_texts_and_scores_as_a_fresh_build(tmp_path: Path) -> None:
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t, "doc") for i, t in enumerate(_TEXTS))
    assert json.loads(kw.manifest_path.read_text())["tokenised"] == len(_TEXTS)
    # one text changed, one removed (its term "espresso" only there), one added, order moved
    later = [("n0", "Espresso is gone; a moka pot brews strong coffee.", "doc2")]
    later += [(f"r{i}", t, "doc") for i, t in enumerate(_TEXTS) if i != 3][::-1]
    later[1] = (later[1][0], "北京冬奥会的吉祥物是冰墩墩和雪容融。", "doc")
    kw.build(later)
    assert json.loads(kw.manifest_path.read_text())["tokenised"] == 2
    fresh = KeywordIndex(tmp_path / "fresh")
    fresh.build(later)
    assert json.loads(fresh.manifest_path.read_text())["tokenised"] == len(later)
    kw.load()
    fresh.load()
    assert kw.ids == fresh.ids
    assert set(kw._bm25.vocab_dict) == set(fresh._bm25.vocab_dict)  # removed terms do not linger
    assert "grind" not in kw._bm25.vocab_dict
    for q in [*_QUERIES, "moka pot", "雪容融"]:
        assert np.array_equal(_scores(kw, q), _scores(fresh, q)), q
    assert kw.lexicon().glosses == fresh.lexicon().glosses == {"ann": ["近似最近邻"]}
    assert kw.lexicon().cjk_share == fresh.lexicon().cjk_share > 0
    assert kw.neighbours("r5") == fresh.neighbours("r5")


def test_damaged_saved_counts_mean_a_full_tokenisation(tmp_path: Path) -> None:
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(_TEXTS))
    want = {q: _scores(kw, q) for q in _QUERIES}
    (kw.path / "terms.counts.npy").write_bytes(b"not numpy")
    kw.build((f"r{i}", t) for i, t in enumerate(_TEXTS))
    assert json.loads(kw.manifest_path.read_text())["tokenised"] == len(_TEXTS)
    np.save(kw.path / "hashes.counts.npy", np.zeros(2, np.uint64))  # disagrees with the counts
    kw.build((f"r{i}", t) for i, t in enumerate(_TEXTS))
    assert json.loads(kw.manifest_path.read_text())["tokenised"] == len(_TEXTS)
    kw.load()
    for q in _QUERIES:
        assert np.array_equal(_scores(kw, q), want[q]), q


def test_an_index_rebuilt_from_the_document_store_reads_back_only_what_it_lacks(tmp_path: Path) -> None:
    store = DocStore(tmp_path / "docs.sqlite")
    for i, t in enumerate(_TEXTS[:-1]):
        store.replace_file(f"/d/{i}.md", "h", 1, t, [Record(f"r{i}", t, f"/d/{i}.md")])
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build(store.keyword_rows(kw.known_digests()))
    assert kw.known_digests() == {text_digest(t) for t in _TEXTS[:-1]}
    moka = Record("n0", "A moka pot brews strong coffee.", "/d/new.md")
    store.replace_file("/d/new.md", "h", 1, "", [moka])
    rows = store.keyword_rows(kw.known_digests())
    assert [t for t in rows.texts if t is not None] == ["A moka pot brews strong coffee."]
    kw.build(rows)
    assert json.loads(kw.manifest_path.read_text())["tokenised"] == 1
    fresh = KeywordIndex(tmp_path / "fresh")
    fresh.build(store.keyword_rows())
    kw.load()
    fresh.load()
    assert kw.ids == fresh.ids
    for q in [*_QUERIES, "moka pot"]:
        assert np.array_equal(_scores(kw, q), _scores(fresh, q)), q
    # a row without its text whose digest the index does not hold is refused, never indexed empty
    with pytest.raises(ValueError, match="no text"):
        kw.build(KeywordRows(["x"], [None], [""], [text_digest("never indexed")]))


def test_an_index_whose_counts_are_of_another_version_is_given_every_text(tmp_path: Path) -> None:
    """An index written by the previous version (unsigned digests, counts version 1) is still
    read for search, but its digests are not offered: the rebuild reads every text back."""
    store = DocStore(tmp_path / "docs.sqlite")
    store.replace_file("/d/a.md", "h", 1, "", [Record("a", "coffee beans", "/d/a.md")])
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build(store.keyword_rows())
    man = json.loads(kw.manifest_path.read_text())
    kw.manifest_path.write_text(json.dumps({**man, "counts": 1}))
    assert kw.is_current() and kw.known_digests() == set()
    kw.build(store.keyword_rows(kw.known_digests()))
    assert json.loads(kw.manifest_path.read_text())["tokenised"] == 1
    assert kw.known_digests() == {text_digest("coffee beans")}


def test_take_by_runs_and_by_gather_agree_with_a_hand_built_result() -> None:
    from core.bm25 import TermCounts

    vocab: dict[str, int] = {}
    docs = [["a", "b", "a"], ["c"], [], ["b", "d", "d", "e"], ["a"]]
    counts = TermCounts.from_tokens(docs, vocab)
    picked = counts.take(np.array([3, 4, 0]))  # two runs: [3, 4] and [0]
    want = TermCounts.from_tokens([docs[3], docs[4], docs[0]], dict(vocab))
    for name in ("ptr", "terms", "tfs", "lengths"):
        assert np.array_equal(getattr(picked, name), getattr(want, name)), name
    rng = np.random.default_rng(1)
    many = [[str(t) for t in rng.integers(0, 50, rng.integers(0, 9))] for _ in range(2000)]
    big = TermCounts.from_tokens(many, {})
    shuffled = rng.permutation(2000)  # ~2000 runs: the gather path
    runs = np.concatenate([np.arange(500, 2000), [7], np.arange(0, 7)])  # few runs
    for rows in (shuffled, runs, np.arange(0), np.arange(2000)):
        got = big.take(rows)
        for i, r in enumerate(rows.tolist()):
            a, b = got.ptr[i], got.ptr[i + 1]
            assert np.array_equal(got.terms[a:b], big.terms[big.ptr[r]:big.ptr[r + 1]])
            assert np.array_equal(got.tfs[a:b], big.tfs[big.ptr[r]:big.ptr[r + 1]])
        assert np.array_equal(got.lengths, big.lengths[rows]) and got.ptr[-1] == len(got.terms)


def test_take_joined_is_the_concatenation_taken(tmp_path: Path) -> None:
    """`take_joined` (no concatenation built) gives exactly `concat(...).take(...)`: runs inside
    either part, a run across the boundary, the gather path, and a part read back mapped."""
    from core.bm25 import TermCounts

    rng = np.random.default_rng(2)
    vocab: dict[str, int] = {}
    base = TermCounts.from_tokens(([str(t) for t in rng.integers(0, 60, rng.integers(0, 9))]
                                   for _ in range(1200)), vocab)
    base.save(tmp_path)
    mapped = TermCounts.load(tmp_path)
    assert mapped is not None and isinstance(mapped.terms, np.memmap)
    fresh = TermCounts.from_tokens([["x", "y", "x"], [], ["60", "1"]], vocab)
    cases = [
        np.concatenate([np.arange(0, 300), [1200], np.arange(300, 1200), [1201, 1202]]),  # files added
        np.concatenate([np.arange(900, 1203), np.arange(0, 5)]),  # a run across the boundary
        rng.permutation(1203),  # the gather path
        np.arange(1202, 1199, -1),  # only new records, in reverse
        np.arange(0),
    ]
    for part in (base, mapped):
        for rows in cases:
            got, want = part.take_joined(fresh, rows), base.concat(fresh).take(rows)
            for name in ("ptr", "terms", "tfs", "lengths"):
                assert np.array_equal(getattr(got, name), getattr(want, name)), name
                assert getattr(got, name).dtype == getattr(want, name).dtype, name


def test_tokens_of_remembers_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import OrderedDict

    import core.tokens as tokens

    monkeypatch.setattr(tokens, "_memo", OrderedDict())
    monkeypatch.setattr(tokens, "_memo_tokens", 0)
    monkeypatch.setattr(tokens, "MEMO_MAX_TOKENS", 30)
    for t in _TEXTS:
        assert tokens.tokens_of(t) == tuple(tokenize(t))
    calls: list[str] = []

    def counted(text: str) -> list[str]:
        calls.append(text)
        return []

    monkeypatch.setattr(tokens, "tokenize", counted)
    assert tokens.tokens_of(_TEXTS[-2]) == tuple(tokenize(_TEXTS[-2]))  # the newest are kept...
    assert calls == []
    assert tokens.tokens_of(_TEXTS[0]) == ()  # ...the oldest were let go to stay within 30 tokens
    assert calls == [_TEXTS[0]]
    assert tokens._memo_tokens == sum(len(v) + 1 for v in tokens._memo.values()) <= 30


def test_ranking_features_reuse_the_tokens_the_keyword_build_made(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag ingest` builds the keyword index, then trains the ranker on the same chunks: their
    features must not run jieba over those texts again."""
    from collections import OrderedDict

    import core.tokens as tokens
    from core.types import Hit
    from retrieval import features

    monkeypatch.setattr(tokens, "_memo", OrderedDict())
    monkeypatch.setattr(tokens, "_memo_tokens", 0)
    texts = [t + " 新的" for t in _TEXTS]  # texts no earlier test remembered
    KeywordIndex(tmp_path / "bm25").build((f"r{i}", t) for i, t in enumerate(texts))
    seen: list[str] = []
    real = tokens.tokenize

    def spy(text: str) -> list[str]:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(tokens, "tokenize", spy)
    hits = [Hit(Record(id=f"r{i}", source="s", text=t), 1.0) for i, t in enumerate(texts)]
    rows = features.compute("冬奥会 attention", hits)
    assert rows.shape[0] == len(hits)
    assert seen == ["冬奥会 attention"]  # the question only


def test_rows_of_finds_each_digests_last_row_like_a_dict() -> None:
    from core.keyword import _rows_of

    known = np.asarray([7, -3, 7, 12, 0, -3], dtype=np.int64)
    wanted = np.asarray([12, 7, 5, -3, 0, -9, 99, 7], dtype=np.int64)
    # hand-computed: the last row holding each digest (as {h: r for r, h in enumerate(known)} keeps)
    assert _rows_of(known, wanted).tolist() == [3, 2, -1, 5, 4, -1, -1, 2]
    assert _rows_of(np.zeros(0, dtype=np.int64), wanted).tolist() == [-1] * 8
    rng = np.random.default_rng(0)
    big = rng.integers(-(2**62), 2**62, 5000)
    big[::7] = big[3]  # duplicates
    ask = np.concatenate([big[rng.permutation(5000)[:2000]], rng.integers(-(2**62), 2**62, 500)])
    at = {h: r for r, h in enumerate(big.tolist())}
    assert _rows_of(big, ask).tolist() == [at.get(h, -1) for h in ask.tolist()]


def test_a_term_and_its_translations_score_as_one_unit(tmp_path: Path) -> None:
    """An English question's word and the Chinese words added for it (retrieval/crosslingual.py
    `groups`) are one unit, scored as the best of them: a record that holds "attention" and
    注意力 scores what its better one scores, not their sum, and 注意力 counts as the word, not
    also as jieba's piece 注意."""
    texts = ["Transformer的注意力 attention 机制", "ghost attention 增强记忆", "注意力 注意力 权重",
             "完全无关的句子 nothing here"]
    kw = KeywordIndex(tmp_path / "bm25")
    kw.build((f"r{i}", t) for i, t in enumerate(texts))
    kw.load()
    query, groups = "ghost attention 注意力", {"attent": ["注意力"]}
    ids = [f"r{i}" for i in range(len(texts))]

    def one(terms: list[str]) -> np.ndarray:
        return kw.term_scores(terms, ids)

    ghost, attention, word = one(["ghost"]), one(["attent"]), one(["注意力"])
    grouped = kw.score_ids(query, ids, bigrams=False, groups=groups)
    assert np.allclose(grouped, ghost + np.maximum(attention, word))
    plain = kw.score_ids(query, ids, bigrams=False)
    assert np.allclose(plain, ghost + attention + word + one(["注意"]))  # the sum it replaces
    assert plain[0] > grouped[0] > 0
    # the search ranks by the same scores
    assert kw.search(query, 4, bigrams=False, groups=groups)[0] == ("r1", pytest.approx(float(grouped[1])))
    # a key the query's own tokens do not hold (jieba cut the question's 以后 into other words)
    # adds nothing: only the query's terms are scored, grouped or not
    assert np.allclose(kw.score_ids("ghost", ids, bigrams=False, groups={"以后": ["增强"]}), ghost)
