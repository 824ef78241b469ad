"""Passage-level metrics of `rag eval` (evidence strings matched in the hits' own text),
the dev/test split choice, and the integrity of data/eval/notes-mixed.

Metric values are computed by hand from hits whose text is made up here, so the test
knows which rank holds the answer; the end-to-end case runs the real pipeline (BM25) on a
tiny set and checks the report carries what the hits say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import RagError
from core.settings import load_settings
from core.types import Hit, Record
from eval import configs as cfgs
from eval import report, runners
from eval.datasets import Corpus, Dataset, DatasetError, load_dataset, save_beir
from eval.evaluate import EvalIndex, evaluate, run_config
from eval.metrics import PASSAGE_METRICS, answer_rank, passage_scores, squash
from retrieval.state import RetrievalResult

REPO = Path(__file__).resolve().parents[2]
NOTES = REPO / "data" / "eval" / "notes-mixed"

# ------------------------------------------------------------ hand-made hits

# question -> texts of the hits the fake runner returns, best first
HITS: dict[str, list[str]] = {
    # rank 2; the evidence spans a line break and doubled spaces in the hit
    "alpha": ["nothing relevant", "the reward   model\nlearns from human choices", "reward model"],
    # rank 7: outside the top 5, inside the top 10
    "beta": [f"filler passage {i}" for i in range(6)] + ["keys and values go to the KV cache"],
    # rank 1, through the second of two evidence strings
    "gamma": ["低秩矩阵 LoRA adds two small matrices", "LoRA again"],
    # no hit holds the evidence
    "delta": ["one", "two", "three"],
    # holds evidence-looking text, but the query has no evidence: no passage metrics
    "eps": ["the reward model learns"],
    # rank 11: a hit, but past every cut-off of the metrics
    "eta": [f"other {i}" for i in range(10)] + ["the answer: 32,768 tokens"],
}


def fake_runner(cfg: Any, question: str, settings: Any, index: Any, k: int) -> RetrievalResult:
    if question == "zeta":
        raise RagError("this query fails on purpose")
    hits = [
        Hit(Record(id=f"{question}-{i}", text=t, source=f"/docs/{question}.md"), score=1.0 / (i + 1))
        for i, t in enumerate(HITS[question][:k])
    ]
    return RetrievalResult(question, hits)


EVIDENCE = {
    "q1": ["reward model learns"],
    "q2": ["KV cache"],
    "q3": ["not in any hit at all", "低秩矩阵"],
    "q4": ["never retrieved"],
    "q6": ["the query fails before any hit"],
    "q7": ["32,768"],
}
QUERIES = {"q1": "alpha", "q2": "beta", "q3": "gamma", "q4": "delta", "q5": "eps", "q6": "zeta", "q7": "eta"}


def test_answer_rank_and_scores_by_hand() -> None:
    assert squash(" a\tb\n c\u00a0d ") == "abcd"  # NBSP too: the notes carry some
    assert answer_rank(HITS["alpha"], EVIDENCE["q1"]) == 2
    assert answer_rank(HITS["beta"], EVIDENCE["q2"]) == 7
    assert answer_rank(HITS["gamma"], EVIDENCE["q3"]) == 1
    assert answer_rank(HITS["delta"], EVIDENCE["q4"]) is None
    assert answer_rank(["anything"], [" ", ""]) is None  # blank evidence matches nothing
    means, per_query = passage_scores({"a": 1, "b": 5, "c": 6, "d": None, "e": 11})
    assert per_query["passage_hit@1"] == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": 0.0}
    assert per_query["passage_hit@5"] == {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0, "e": 0.0}
    assert per_query["passage_mrr@10"]["c"] == pytest.approx(1 / 6)
    assert per_query["passage_mrr@10"]["e"] == 0.0  # rank 11 is past MRR@10's cut-off
    assert means == pytest.approx(
        {"passage_hit@1": 1 / 5, "passage_hit@5": 2 / 5, "passage_mrr@10": (1 + 1 / 5 + 1 / 6) / 5}
    )
    assert passage_scores({}) == ({m: 0.0 for m in PASSAGE_METRICS}, {m: {} for m in PASSAGE_METRICS})


def test_run_config_ranks_the_first_answer_passage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = {q: ("", "text") for q in HITS} | {"zeta": ("", "text")}
    qrels = {qid: {text: 1} for qid, text in QUERIES.items()}
    ds = Dataset("hand", Corpus("beir", tmp_path, docs=docs), dict(QUERIES), qrels, evidence=dict(EVIDENCE))
    target = EvalIndex(None, {f"/docs/{q}.md": q for q in docs}, {})  # type: ignore[arg-type]
    monkeypatch.setattr(runners, "run_query", fake_runner)  # hand-made hits instead of the pipeline's
    cfg = cfgs.EvalConfig("fake", "hand-made hits")
    out = run_config(cfg, ds, load_settings(index_dir=tmp_path / "idx"), target, list(QUERIES), depth=20)
    # q5 has no evidence; q6 failed (a miss); q7's answer is at rank 11
    assert out.passage_ranks == {"q1": 2, "q2": 7, "q3": 1, "q4": None, "q6": None, "q7": 11}
    assert out.run["q1"] == {"alpha": 1.0} and out.run["q6"] == {}
    means, _ = passage_scores(out.passage_ranks)
    # by hand over the six questions with evidence: top-1 = q3; top-5 = q1, q3;
    # MRR@10 = (1/2 + 1/7 + 1) / 6 (q4, q6 never found, q7 past 10)
    assert means["passage_hit@1"] == pytest.approx(1 / 6)
    assert means["passage_hit@5"] == pytest.approx(2 / 6)
    assert means["passage_mrr@10"] == pytest.approx((1 / 2 + 1 / 7 + 1) / 6)


# ------------------------------------------------------------ loading


def _set(root: Path, query_lines: list[dict[str, Any]], splits: dict[str, str]) -> Path:
    save_beir(
        root, {"d1": ("", "The KV cache stores keys."), "d2": ("", "LoRA adds low-rank matrices.")}, {}, {}
    )
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in query_lines:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
        f.write("{not json\n")
    (root / "qrels" / "test.tsv").unlink()
    for name, body in splits.items():
        (root / "qrels" / f"{name}.tsv").write_text("query-id\tcorpus-id\tscore\n" + body, encoding="utf-8")
    return root


def test_loader_reads_evidence_and_counts_malformed(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = [
        {"_id": "a", "text": "what does the KV cache store?", "evidence": ["KV cache stores", "keys"]},
        {"_id": "b", "text": "what does LoRA add?", "evidence": "low-rank"},  # a bare string: one item
        {"_id": "c", "text": "no evidence at all"},
        {"_id": "d", "text": "bad evidence", "evidence": [3, "ok"]},
        {"_id": "e", "text": "blank evidence", "evidence": ["  "]},
        {"_id": "f", "text": "empty list", "evidence": []},
    ]
    root = _set(
        tmp_path / "s", lines, {"test": "a\td1\t2\nb\td2\t2\nc\td1\t1\nd\td1\t1\ne\td2\t1\nf\td2\t1\n"}
    )
    ds = load_dataset(root)
    assert ds.evidence == {"a": ["KV cache stores", "keys"], "b": ["low-rank"]}
    assert set(ds.queries) == set("abcdef")  # a bad evidence field drops the evidence, not the query
    assert ds.issues.counts["queries_bad_evidence"] == 3
    assert ds.issues.counts["queries_bad_lines"] == 1
    assert ds.split == ""  # no --split: the qrels file is the folder default


def test_split_picks_the_qrels_file(tmp_path: Path) -> None:
    lines = [
        {"_id": "a", "text": "kv?", "evidence": ["KV cache"]},
        {"_id": "b", "text": "lora?", "evidence": ["low-rank"]},
    ]
    root = _set(tmp_path / "s", lines, {"dev": "a\td1\t2\n", "test": "b\td2\t2\n"})
    from eval.datasets import validate

    dev = validate(load_dataset(root, split="dev"))
    assert (dev.split, set(dev.queries), set(dev.evidence)) == ("dev", {"a"}, {"a"})
    test = validate(load_dataset(root))  # no split: test.tsv, as before
    assert set(test.queries) == {"b"} and set(test.evidence) == {"b"}
    with pytest.raises(DatasetError, match="dev, test"):
        load_dataset(root, split="train")


# ------------------------------------------------------------ end to end


def test_evaluate_reports_passage_metrics(tmp_path: Path) -> None:
    docs = {
        "kv": ("", "The KV cache keeps the keys and values of earlier tokens, so decoding reuses them."),
        "lora": ("", "LoRA trains two small low-rank matrices beside the frozen weight matrix."),
        "bpe": ("", "Byte pair encoding merges the most frequent pair of symbols again and again."),
    }
    root = tmp_path / "set"
    save_beir(root, docs, {}, {"k": {"kv": 2}, "l": {"lora": 2}, "b": {"bpe": 2}, "n": {"bpe": 1}})
    rows = [
        {"_id": "k", "text": "What does the KV cache keep?", "evidence": ["keys and values of earlier"]},
        {"_id": "l", "text": "What does LoRA train?", "evidence": ["two small low-rank matrices"]},
        {"_id": "b", "text": "What does byte pair encoding merge?", "evidence": ["not in the corpus at all"]},
        {"_id": "n", "text": "A question without evidence about byte pair encoding"},
    ]
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = load_settings(index_dir=tmp_path / "user-index")
    r = evaluate(load_dataset(root), settings, ["bm25"], name="p", cache_dir=tmp_path / "cache")
    bm25 = r.configs[0]
    assert r.evidence_queries == 3 and set(bm25.passage_ranks) == {"k", "l", "b"}
    assert bm25.passage_ranks["k"] == 1 and bm25.passage_ranks["l"] == 1  # one chunk per document
    assert bm25.passage_ranks["b"] is None
    assert r.metrics["bm25"]["passage_hit@5"] == pytest.approx(2 / 3)
    assert r.metrics["bm25"]["passage_mrr@10"] == pytest.approx(2 / 3)
    assert r.per_query["bm25"]["passage_hit@1"] == {"k": 1.0, "l": 1.0, "b": 0.0}
    assert any("1 questions' evidence is in no indexed chunk" in n and "first: b" in n for n in bm25.notes)
    paths = report.write(r, tmp_path / "reports" / "p")
    md, page = paths["md"].read_text(encoding="utf-8"), paths["html"].read_text(encoding="utf-8")
    for label in ("P-hit@1", "P-hit@5", "P-MRR@10"):
        assert label in md and label in page and label in report.summary(r)
    head = report.metrics_rows(r)[0]
    assert head.index("P-hit@1") == head.index("nDCG@10") + 1  # beside nDCG@10
    res = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert res["metrics"]["bm25"]["passage_hit@5"] == pytest.approx(2 / 3)
    assert res["passage"] == {"questions": 3, "ranks": {"bm25": {"k": 1, "l": 1, "b": None}}}


# ------------------------------------------------------------ the notes-mixed set


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _qrels(split: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    lines = (NOTES / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    for line in lines[1:]:
        q, d, g = line.split("\t")
        out.setdefault(q, {})[d] = int(g)
    return out


def test_notes_mixed_evidence_is_in_its_documents() -> None:
    docs = {d["_id"]: d["text"] for d in _jsonl(NOTES / "corpus.jsonl")}
    queries = _jsonl(NOTES / "queries.jsonl")
    dev, test = _qrels("dev"), _qrels("test")
    assert not set(dev) & set(test) and set(dev) | set(test) == {q["_id"] for q in queries}
    qrels = dev | test
    for q in queries:
        assert set(q) == {"_id", "text", "lang", "evidence", "answer"} and q["lang"] in ("en", "zh")
        answering = [d for d, g in qrels[q["_id"]].items() if g == 2]
        assert answering and all(d in docs for d in qrels[q["_id"]]), q["_id"]
        for ev in q["evidence"]:
            assert 8 <= len(ev) <= 40, (q["_id"], ev)
            assert any(ev in docs[d] for d in answering), (q["_id"], ev)  # verbatim, nothing normalised
    langs = [q["lang"] for q in queries]
    assert len(queries) >= 110 and langs.count("en") >= 85 and langs.count("zh") >= 18
    unanswerable = _jsonl(NOTES / "unanswerable.jsonl")
    assert len(unanswerable) >= 25 and all(u["unanswerable"] and "evidence" not in u for u in unanswerable)
    assert not {u["_id"] for u in unanswerable} & set(qrels)


def test_notes_mixed_split_and_corpus_are_reproducible(tmp_path: Path) -> None:
    from eval.sets.common import split_of
    from eval.sets.notes_mixed import build

    for split, judged in (("dev", _qrels("dev")), ("test", _qrels("test"))):
        assert all(split_of(q) == split for q in judged)
    (tmp_path / "questions.jsonl").write_bytes((NOTES / "questions.jsonl").read_bytes())
    build(NOTES / "source", tmp_path)
    for name in ("corpus.jsonl", "queries.jsonl", "unanswerable.jsonl", "qrels/dev.tsv", "qrels/test.tsv"):
        assert (tmp_path / name).read_bytes() == (NOTES / name).read_bytes(), name
    notes = {p.stem: p.read_text(encoding="utf-8") for p in (NOTES / "source").glob("*.txt")}
    for d in _jsonl(NOTES / "corpus.jsonl"):
        assert d["text"] in notes[d["_id"].split("/")[0]]  # every document a verbatim slice
