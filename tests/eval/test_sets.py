"""The committed labelled sets data/eval/sci-en, zh-prose and zh-news are consistent:
evidence is verbatim in the judged documents, ids are unique, the dev/test split follows its
rule and covers every query, and each set has enough answerable and unanswerable questions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval.sets.common import pack, split_of, write_set

DATA = Path(__file__).resolve().parents[2] / "data" / "eval"
SETS = ["sci-en", "zh-prose", "zh-news"]
SHORT_SHARE = {"zh-news": 0.35}  # news items are often shorter than 300 characters


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _qrels(path: Path) -> list[tuple[str, str, int]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["query-id", "corpus-id", "score"]
    return [(q, d, int(s)) for q, d, s in rows[1:]]


@pytest.fixture(scope="module", params=SETS)
def labelled(request: pytest.FixtureRequest) -> dict:
    root = DATA / request.param
    return {
        "name": request.param,
        "corpus": _jsonl(root / "corpus.jsonl"),
        "queries": _jsonl(root / "queries.jsonl"),
        "unanswerable": _jsonl(root / "unanswerable.jsonl"),
        "dev": _qrels(root / "qrels" / "dev.tsv"),
        "test": _qrels(root / "qrels" / "test.tsv"),
    }


def test_ids_unique(labelled: dict) -> None:
    doc_ids = [d["_id"] for d in labelled["corpus"]]
    assert len(doc_ids) == len(set(doc_ids))
    qids = [q["_id"] for q in labelled["queries"]] + [q["_id"] for q in labelled["unanswerable"]]
    assert len(qids) == len(set(qids))


def test_documents_are_passages(labelled: dict) -> None:
    docs = labelled["corpus"]
    assert len(docs) >= (1500 if labelled["name"] == "sci-en" else 800)
    assert all(d["title"] and d["text"].strip() for d in docs)
    assert max(len(d["text"]) for d in docs) <= 1500
    short = SHORT_SHARE.get(labelled["name"], 0.05)
    assert sum(len(d["text"]) >= 300 for d in docs) >= (1 - short) * len(docs)


def test_evidence_is_in_every_grade_2_document(labelled: dict) -> None:
    text = {d["_id"]: d["text"] for d in labelled["corpus"]}
    queries = {q["_id"]: q for q in labelled["queries"]}
    for qid, doc, score in labelled["dev"] + labelled["test"]:
        assert doc in text, f"{qid}: unknown document {doc}"
        assert score in (1, 2)
        if score == 2:
            for ev in queries[qid]["evidence"]:
                assert ev in text[doc], f"{qid}: evidence {ev!r} is not in {doc}"


def test_query_fields(labelled: dict) -> None:
    for q in labelled["queries"]:
        assert q["text"].strip() and q["answer"].strip()
        assert q["lang"] in ("en", "zh")
        assert q["evidence"] and all(8 <= len(ev) <= 40 for ev in q["evidence"]), q["_id"]
    for q in labelled["unanswerable"]:
        assert q["unanswerable"] is True and q["lang"] in ("en", "zh") and q["text"].strip()


def test_split_disjoint_covering_and_by_rule(labelled: dict) -> None:
    dev = {q for q, _, s in labelled["dev"] if s > 0}
    test = {q for q, _, s in labelled["test"] if s > 0}
    assert not dev & test
    assert dev | test == {q["_id"] for q in labelled["queries"]}
    assert all(split_of(q) == "dev" for q in dev) and all(split_of(q) == "test" for q in test)
    assert 0.25 <= len(dev) / (len(dev) + len(test)) <= 0.55
    graded_2 = {q for q, _, s in labelled["dev"] + labelled["test"] if s == 2}
    assert graded_2 == dev | test  # every query has a document that answers it


def test_enough_questions(labelled: dict) -> None:
    assert len(labelled["queries"]) >= 100
    assert len(labelled["unanswerable"]) >= 25
    assert not {q["_id"] for q in labelled["queries"]} & {q["_id"] for q in labelled["unanswerable"]}
    if labelled["name"] == "zh-prose":
        langs = [q["lang"] for q in labelled["queries"]]
        assert langs.count("zh") >= 110 and langs.count("en") >= 15


def test_pack_keeps_verbatim_slices_within_bounds() -> None:
    text = "\n\n".join(("句子" * n) for n in (30, 200, 10, 700, 5, 90))
    spans, pos = [], 0
    for part in text.split("\n\n"):
        spans.append((pos, pos + len(part)))
        pos += len(part) + 2
    out = pack(spans, text, lo=300, hi=1000, target=700)
    assert all(e - s <= 1000 for s, e in out)
    assert out[0][0] == 0 and out[-1][1] == len(text)
    assert all(a[1] <= b[0] for a, b in zip(out, out[1:], strict=False))


def test_write_set_refuses_evidence_not_in_document(tmp_path: Path) -> None:
    corpus = [{"_id": "d1", "title": "t", "text": "The quick brown fox jumps."}]
    ok = {
        "_id": "q1",
        "text": "What jumps?",
        "lang": "en",
        "doc": "d1",
        "evidence": ["quick brown fox"],
        "answer": "the fox",
    }
    counts = write_set(
        tmp_path, corpus, [ok, {"_id": "u1", "text": "Why?", "lang": "en", "unanswerable": True}]
    )
    assert counts["queries"] == 1 and counts["unanswerable"] == 1
    with pytest.raises(ValueError, match="not in d1"):
        write_set(tmp_path, corpus, [{**ok, "evidence": ["lazy dog"]}])


def test_write_set_refuses_repeated_ids_and_other_langs(tmp_path: Path) -> None:
    corpus = [{"_id": "d1", "title": "t", "text": "The quick brown fox jumps."}]
    u = {"_id": "u1", "text": "Why?", "lang": "fr", "unanswerable": True}
    with pytest.raises(ValueError, match="duplicate corpus ids"):
        write_set(tmp_path, corpus * 2, [])
    with pytest.raises(ValueError, match="duplicate question id u1"):
        write_set(tmp_path, corpus, [u, u])
    with pytest.raises(ValueError, match="u1: lang must be en or zh"):
        write_set(tmp_path, corpus, [u], langs=("en", "zh"))
    counts = write_set(tmp_path, corpus, [{**u, "lang": "zh"}], langs=("en", "zh"))
    assert counts["en"] == 0 and counts["zh"] == 0 and counts["unanswerable"] == 1


def test_the_mixed_set_merges_two_sets_with_prefixed_ids(tmp_path: Path) -> None:
    import json

    from eval.datasets import load_dataset
    from eval.sets.mixed import build

    sets = []
    for name, text in (("en", "Gradient descent updates weights."), ("zh", "梯度下降更新权重。")):
        src = tmp_path / name
        (src / "qrels").mkdir(parents=True)
        (src / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "", "text": text}) + "\n")
        (src / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": f"{name} question"}) + "\n")
        (src / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\n")
        sets.append(src)
    counts = build(tmp_path / "mixed", tuple(sets))
    assert counts == {"passages": 2, "queries": 2, "unanswerable": 0, "judgements": 2}
    ds = load_dataset(tmp_path / "mixed", split="test")
    assert ds.corpus.ids == {"en:d1", "zh:d1"} and ds.qrels == {"en:q1": {"en:d1": 2}, "zh:q1": {"zh:d1": 2}}
    assert ds.corpus.docs["zh:d1"][1] == "梯度下降更新权重。"
    assert (tmp_path / "mixed" / "qrels" / "dev.tsv").read_text() == "query-id\tcorpus-id\tscore\n"


def test_news_builder_untags_and_finds_articles(tmp_path: Path) -> None:
    from eval.sets.zh_news import articles, build_corpus, is_head, untag

    assert untag("[中央/n  人民/n  广播/vn  电台/n]nt  播出/v  ＣＣＴＶ/nx  ９８/m  Windows/nx  98/m") == (
        "中央人民广播电台播出ＣＣＴＶ９８Windows 98"
    )
    assert is_head("挂起红灯迎新年（图片）") and is_head("本报记者祝谦")
    assert not is_head("谢谢！（新华社北京１２月３１日电）") and not is_head("（附图片１张）")
    tagged = "\n".join([
        "北京/ns  举行/v  新年/t  音乐会/n",
        "本报/r  记者/n  何/nr  加正/nr",
        "音乐会/n  今晚/t  举行/v  。/w",
        "演出/vn  结束/v  。/w",
        "李鹏/nr  考察/v  企业/n",
        "李鹏/nr  来到/v  电厂/n  。/w",
    ])
    assert articles(tagged) == [
        ("北京举行新年音乐会", "本报记者何加正\n音乐会今晚举行。\n演出结束。"),
        ("李鹏考察企业", "李鹏来到电厂。"),
    ]
    src = tmp_path / "199801.txt"
    src.write_text(tagged, encoding="utf-8")
    corpus = build_corpus(src)
    assert [d["_id"] for d in corpus] == ["rmrb/0001/00", "rmrb/0002/00"]
    assert corpus[1] == {"_id": "rmrb/0002/00", "title": "李鹏考察企业", "text": "李鹏来到电厂。"}


def test_rust_book_pages_hold_their_evidence_as_the_html_loader_reads_them() -> None:
    """data/eval/rust-book is judged over the HTML pages themselves (docs/, no corpus.jsonl): each
    question's evidence is in its judged page as `rag ingest` reads it, whitespace ignored."""
    from core.settings import IngestSettings
    from eval.metrics import squash
    from ingest.loaders import load

    root = DATA / "rust-book"
    pages = {p.stem: squash(load(p, IngestSettings()).text) for p in sorted((root / "docs").glob("*.html"))}
    queries = _jsonl(root / "queries.jsonl")
    unanswerable = _jsonl(root / "unanswerable.jsonl")
    qrels = {s: _qrels(root / "qrels" / f"{s}.tsv") for s in ("dev", "test")}
    assert len(pages) == 41 and len(queries) >= 100 and len(unanswerable) >= 30
    judged = {q: d for rows in qrels.values() for q, d, g in rows if g > 0}
    assert set(judged) == {q["_id"] for q in queries} and set(judged.values()) <= set(pages)
    for split, rows in qrels.items():
        assert all(split_of(q) == split for q, _, _ in rows)
    for q in queries:
        assert any(squash(e) in pages[judged[q["_id"]]] for e in q["evidence"]), q["_id"]
