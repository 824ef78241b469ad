"""Derived layers at a cost users accept (issue 17 item 7): extractive summaries (the most
central sentences, no LLM call) for RAPTOR and multi-representation when the model is too
small to summarise well, several short units per LLM call, and the cost said before the
work starts. The selection is checked against hand computations; the layers end to end on
a real index with the shipped MiniLM; the LLM that batches is scripted (its replies are
made from the prompt it gets), since what is tested is how the replies are read."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.index import Index
from core.lang import approx_tokens
from core.settings import Settings, load_settings
from ingest import represent_batch
from ingest.extractive import Extractor, candidates, pick, too_short
from ingest.llm_text import summary_method
from ingest.pipeline import ingest
from ingest.raptor import update_tree
from ingest.represent import update_representations
from tests.conftest import SAMPLE
from tests.ingest.test_raptor import NOTES, check_tree


def _norm(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- selection, by hand


def test_pick_takes_central_sentences_skips_duplicates_and_keeps_the_budget() -> None:
    rel = np.array([0.9, 0.8, 0.1])
    sim = np.array([[1.0, 0.95, 0.0], [0.95, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # 0 first (most central); then 1 scores 0.7*0.8 - 0.3*0.95 = 0.275 > 2's 0.07, but it is a
    # near-duplicate of 0 (0.95 >= 0.92) and is passed over; 2 fits and is taken.
    assert pick(rel, sim, [5, 5, 5], budget=10) == [0, 2]
    assert pick(rel, sim, [5, 5, 8], budget=10) == [0]  # 2 no longer fits
    # The most central does not fit alone: passed over, so 1 is no duplicate of anything taken.
    assert pick(rel, sim, [11, 5, 5], budget=10) == [1, 2]
    no_dup = np.eye(3)
    assert pick(rel, no_dup, [1, 1, 1], budget=10) == [0, 1, 2]


@dataclass
class TableEncoder:
    """Vectors looked up by a word each sentence contains (a hand-made space)."""

    table: dict[str, list[float]]
    name: str = "table"
    seen: list[str] = field(default_factory=list)

    def embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        self.seen += texts
        out = []
        for t in texts:
            v = next(np.asarray(vec, dtype=np.float32) for w, vec in self.table.items() if w in t)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def test_summary_is_the_central_sentences_in_reading_order() -> None:
    texts = ["# Brewing notes\n\nUnrelated words sit here now. Alpha beta gamma delta one. Too short.",
             "Alpha beta gamma delta two.\n\n| a | b |"]
    enc = TableEncoder({"one": [0.8, 0.6, 0.0], "two": [0.8, 0.0, 0.6], "Unrelated": [0.0, 0.0, -1.0]})
    # No heading, table row or fragment of fewer than four words.
    assert [s for _, _, s in candidates(texts)] == [
        "Unrelated words sit here now.", "Alpha beta gamma delta one.", "Alpha beta gamma delta two."]
    ex = Extractor(enc)
    one, two = "Alpha beta gamma delta one.", "Alpha beta gamma delta two."
    budget = approx_tokens(one) + approx_tokens(two)
    # Centroid (1, 0, 0): both Alpha sentences score 0.8, the other 0; only two fit.
    assert ex.summary(texts, budget, centroid=np.array([1.0, 0.0, 0.0])) == f"{one} {two}"
    assert ex.embedded == 3
    ex.summary(texts, budget)  # sentence vectors are kept: nothing embedded again
    assert ex.embedded == 3 and len(enc.seen) == 3
    assert ex.summary(["# Only a heading", "Too short."], 50) == ""


def test_too_short_means_the_summary_would_be_the_text() -> None:
    assert too_short("One sentence that fits easily.", 64)
    long_one = "word " * 200 + "."
    assert too_short(long_one, 64)  # over the budget but a single sentence: nothing to choose
    many = " ".join(f"Sentence number {i} says something different." for i in range(30))
    assert not too_short(many, 64)


# ---------------------------------------------------------------- batched replies


def test_batched_reply_is_read_by_number_and_checked_against_each_text() -> None:
    texts = ["Espresso is brewed under nine bars of pressure.",
             "A gooseneck kettle pours slowly over the coffee bed.",
             "Green tea wants water at eighty degrees."]
    raw = ("Here are the summaries:\n1: Espresso brewed under nine bars of pressure.\n"
           "**2.** A gooseneck kettle pours\nslowly over the coffee bed.\n"
           "3) A gooseneck kettle pours slowly.")  # 3 describes text 2: rejected
    got = represent_batch.parse("summary", raw, texts, 2)
    assert got[0] == ["Espresso brewed under nine bars of pressure."]
    assert got[1] == ["A gooseneck kettle pours slowly over the coffee bed."]  # continued line joined
    assert got[2] == []
    qs = represent_batch.parse("question", "1: How much pressure brews espresso?\n"
                               "1: What pressure does espresso use?\n2 - Why pour slowly with a kettle?",
                               texts, 2)
    assert qs[0] == ["How much pressure brews espresso?", "What pressure does espresso use?"]
    assert qs[1] == ["Why pour slowly with a kettle?"] and qs[2] == []
    assert represent_batch.parse("summary", "", texts, 2) == [[], [], []]


@dataclass
class ScriptedLLM:
    """An LLM that answers from the prompt: the first words of each text, numbered when the
    prompt numbers them; `skip_last` leaves the last text of a batched prompt out."""

    skip_last: bool = False
    backend: str = "ollama"
    model: str = "scripted-8b"
    reason: str = "test"
    prompts: list[str] = field(default_factory=list)

    def complete(self, messages: Any, max_tokens: int | None = None, json_schema: Any = None,
                 temperature: float | None = None) -> str:
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        question = "questions" in prompt.splitlines()[-1]
        blocks = re.findall(r"Text (\d+):\n(.*?)(?=\n\nText \d+:\n|\n\n(?:Summarise|For each))", prompt, re.S)
        if not blocks:
            body = prompt.rsplit("\n\n", 1)[0]
            words = " ".join(body.split()[:8]).strip(".#")
            return f"What does {words} mean?" if question else f"{words}."
        if self.skip_last:
            blocks = blocks[:-1]
        lines = []
        for num, body in blocks:
            words = " ".join(body.replace("#", " ").split()[:8]).strip(".")
            lines.append(f"{num}: What does {words} mean?" if question else f"{num}: {words}.")
        return "\n".join(lines)


def test_summary_method_follows_the_model() -> None:
    s = load_settings()
    assert summary_method("extractive", "x", s, None)[0] == "extractive"
    method, why, _ = summary_method("auto", "x", s, ScriptedLLM())  # type: ignore[arg-type]
    assert method == "llm" and "scripted-8b" in why
    small = ScriptedLLM(model="smollm2:135m")
    method, why, _ = summary_method("auto", "x", s, small)  # type: ignore[arg-type]
    assert method == "extractive" and "too small" in why
    assert summary_method("llm", "x", s, small)[0] == "llm"  # type: ignore[arg-type]  # asked for: the small model writes them


# ---------------------------------------------------------------- end to end, real index


def _settings(index_dir: Path) -> Settings:
    s = load_settings(index_dir=index_dir)
    s.search.ltr = False
    return s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extractive") / "corpus"
    root.mkdir()
    shutil.copy(sorted(NOTES.iterdir())[0], root)
    for p in SAMPLE.iterdir():
        shutil.copy(p, root / p.name)
    return root


def test_raptor_with_the_embedded_model_is_extractive_and_costs_no_llm_call(
    corpus: Path, tmp_path: Path,
) -> None:
    s = _settings(tmp_path / "index")
    s.ingest.raptor = True
    s.ingest.raptor_umap_dims = 2
    said: list[str] = []
    rep = ingest([corpus], s, notice=said.append)
    tree = rep.derived["raptor"]
    assert tree["method"] == "extractive" and "too small" in tree["why"] and tree["llm_calls"] == 0
    assert tree["estimate"]["llm_calls"] == 0 and tree["extracted"] == tree["new"] > 0
    assert len(said) == 1 and said[0].startswith("raptor: full build over") and "no LLM calls" in said[0]
    index = Index(s)
    nodes = check_tree(index)
    leaves = {r.id: r for r in index.docs.iter_records(("chunk",))}
    text_of = {**{i: r.text for i, r in leaves.items()}, **{i: r.text for i, r in nodes.items()}}
    for n in nodes.values():  # every summary is made of its children's own sentences
        assert n.extra["method"] == "extractive" and "(extractive)" in n.title
        rest = n.text  # the summary is the children's candidate sentences, in reading order
        for _, _, sent in candidates(list(dict.fromkeys(text_of[c] for c in n.children))):
            if rest.startswith(sent):
                rest = rest[len(sent):].lstrip()
        assert rest == "", (n.id, rest[:80])
    again = ingest([corpus], s)
    assert again.derived["raptor"]["mode"] == "unchanged"
    # Switching to an LLM rebuilds the tree with it: every node summarised by the model.
    s.ingest.raptor_summaries = "llm"
    llm = ScriptedLLM()
    said.clear()
    llm_tree = update_tree(index, s, llm=llm, notice=said.append)  # type: ignore[arg-type]
    assert llm_tree.mode == "full" and llm_tree.reason == "tree settings changed"
    assert llm_tree.method == "llm" and llm_tree.llm_calls == len(llm.prompts) == llm_tree.new > 0
    assert "LLM calls" in said[0] and "scripted-8b" in said[0]
    nodes = check_tree(index)
    assert all(n.extra["method"] == "llm" for n in nodes.values())


def test_representations_extractive_then_batched_llm(corpus: Path, tmp_path: Path) -> None:
    s = _settings(tmp_path / "index")
    s.ingest.multi_representation = True
    s.ingest.represent_max_tokens = 40
    said: list[str] = []
    rep = ingest([corpus], s, notice=said.append).derived["represent"]
    assert rep["method"] == "extractive" and rep["llm_calls"] == 0 and not rep["questions"]
    assert rep["records"] > 0 and rep["short"] > 0  # units that fit the budget get no summary of themselves
    assert rep["records"] <= rep["units"]  # one summary per unit at most
    assert said and "extractive summaries" in said[0] and "no LLM calls" in said[0]
    index = Index(s)
    chunks = {r.id: r for r in index.docs.iter_records(("chunk",))}
    derived = list(index.docs.iter_records(("summary", "question")))
    assert derived and all(r.kind == "summary" and r.extra["method"] == "extractive" for r in derived)
    for r in derived:
        assert approx_tokens(r.text) <= 40
        assert not too_short(chunks[str(r.parent_id)].text, 40)
    # A capable model: the extractive records go, the model writes summaries and questions,
    # four short units to a call; a unit the batched reply leaves out is asked alone.
    s.ingest.represent_summaries = "auto"
    s.ingest.represent_questions = 1
    s.ingest.represent_batch = 4
    s.chunk.size = 200
    llm = ScriptedLLM(skip_last=True)
    said.clear()
    got = update_representations(index, s, llm=llm, notice=said.append)  # type: ignore[arg-type]
    assert got.method == "llm" and got.questions and got.removed == len(derived)
    assert got.batched > 0 and got.alone > 0
    assert got.llm_calls == len(llm.prompts) < 2 * got.units  # fewer calls than one per unit and kind
    assert "LLM calls" in said[0] and "up to 4 units each" in said[0]
    kinds = {r.kind for r in index.docs.iter_records(("summary", "question"))}
    assert kinds == {"summary", "question"}
    assert all(r.extra["method"] == "llm" for r in index.docs.iter_records(("summary", "question")))
    # Again: every reply is cached, nothing asked.
    llm2 = ScriptedLLM(skip_last=True)
    again = update_representations(index, s, llm=llm2)  # type: ignore[arg-type]
    assert again.units == 0 and not llm2.prompts
