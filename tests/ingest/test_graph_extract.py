"""Reading the knowledge graph at ingest (ingest/graph.py, ingest/graph_terms.py): the LLM's
reply parsed defensively (malformed -> nothing for that chunk; invented names dropped), the
co-occurrence extractor on English and Chinese text, and the layer following the index
incrementally through real ingests (unchanged: no work; changed: facts replaced; deleted:
facts and orphaned entities gone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.graph import GRAPH_FILE, GraphStore
from core.settings import Settings, load_settings
from ingest.graph import parse_facts
from ingest.graph_terms import extract
from ingest.pipeline import ingest
from tests.files import write_docs

TEXT = "Harbor Lights is a novel written by Elena Varga. She trained at the Kessler Institute."


def test_parse_facts_reads_a_good_reply() -> None:
    raw = "Here you go:\n```json\n" + json.dumps({
        "entities": [{"name": "Harbor Lights", "type": "Work"}, {"name": "Elena Varga", "aliases": ["Varga"]},
                     "Kessler Institute"],
        "relations": [{"source": "Harbor Lights", "relation": "written by", "target": "Elena Varga"}],
    }) + "\n```"
    facts, dropped = parse_facts(raw, TEXT)
    assert facts is not None and dropped == 0
    assert [(e.name, e.type, e.aliases) for e in facts.entities] == [
        ("Harbor Lights", "work", []), ("Elena Varga", "", ["Varga"]), ("Kessler Institute", "", [])]
    assert [(r.source, r.relation, r.target) for r in facts.relations] == [
        ("Harbor Lights", "written by", "Elena Varga")]


@pytest.mark.parametrize("raw", [
    "", "I cannot help with that.", "[1, 2, 3]", '{"foo": 1}', '{"entities": "Elena"}', "{{{{", "null",
    '{"relations": 5}', "```json\n{]\n```",
])
def test_parse_facts_malformed_gives_none(raw: str) -> None:
    assert parse_facts(raw, TEXT)[0] is None


def test_parse_facts_drops_invented_names_and_dangling_relations() -> None:
    raw = json.dumps({
        "entities": [{"name": "Elena Varga"}, {"name": "Albert Einstein"}, {"name": 42}, {"nom": "x"}],
        "relations": [{"source": "Elena Varga", "relation": "knew", "target": "Albert Einstein"},
                      {"source": "Elena Varga", "relation": "trained at", "target": "Kessler Institute"},
                      {"source": "Elena Varga", "target": "Harbor Lights"}, "garbage"],
    })
    facts, dropped = parse_facts(raw, TEXT)
    assert facts is not None
    assert [e.name for e in facts.entities] == ["Elena Varga"]
    # a relation to a name the chunk holds stands (its end becomes an entity when stored)
    assert [(r.source, r.target) for r in facts.relations] == [("Elena Varga", "Kessler Institute")]
    assert dropped == 6


def test_cooccurrence_reads_english_and_chinese() -> None:
    facts = extract("The Kessler Institute's first vessel was paid for by Otto Brandt. It sailed in 1921. "
                    "LoRA 和 GPT-4 都基于 Transformer 架构。周明远毕业于临江师范学院。")
    names = {e.name for e in facts.entities}
    assert {"Kessler Institute", "Otto Brandt", "LoRA", "GPT-4", "Transformer"} <= names
    assert {"周明远", "临江师范学院"} <= names
    assert not names & {"The", "It", "the Kessler Institute's"}
    pairs = {(r.source, r.target) for r in facts.relations} | {(r.target, r.source) for r in facts.relations}
    assert ("Kessler Institute", "Otto Brandt") in pairs and ("周明远", "临江师范学院") in pairs
    assert ("Kessler Institute", "周明远") not in pairs  # three sentences apart
    titled = extract("It was published in 1987. Much later, it won the Amber Prize.", title="Harbor Lights")
    assert {frozenset((r.source, r.target)) for r in titled.relations} == {frozenset(("Harbor Lights",
                                                                                      "Amber Prize"))}


def _settings(index_dir: Path) -> Settings:
    s = load_settings(index_dir=index_dir)
    s.ingest.graph, s.ingest.graph_extraction = True, "cooccurrence"
    s.search.ltr_self_train = False
    return s


def test_graph_follows_the_index_incrementally(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", {
        "a.md": "# Novel\n\nHarbor Lights is a novel written by Elena Varga.\n",
        "b.md": "# Varga\n\nElena Varga trained at the Kessler Institute.\n",
    })
    s = _settings(tmp_path / "index")
    lines: list[str] = []
    rep = ingest([docs], s, notice=lines.append)
    g = rep.derived["graph"]
    assert g["method"] == "cooccurrence" and g["chunks"] == 2 and g["llm_calls"] == 0
    assert lines and "co-occurrence" in lines[0] and "no LLM calls" in lines[0]
    store = GraphStore(tmp_path / "index" / GRAPH_FILE)
    assert store.find("Harbor Lights") is not None and store.find("Kessler Institute") is not None

    again = ingest([docs], s).derived["graph"]  # nothing changed: nothing read
    assert again["chunks"] == 0 and again["removed"] == 0

    (docs / "b.md").write_text("# Varga\n\nElena Varga later taught at the Sylt Academy.\n", encoding="utf-8")
    changed = ingest([docs], s).derived["graph"]
    assert changed["chunks"] == 1 and changed["removed"] == 1
    assert store.find("Kessler Institute") is None and store.find("Sylt Academy") is not None

    (docs / "a.md").unlink()
    pruned = ingest([docs], s, prune=True).derived["graph"]
    assert pruned["removed"] == 1 and store.find("Harbor Lights") is None
    assert store.find("Elena Varga") is not None  # b.md still mentions her

    s.ingest.graph = False  # off: a deleted file's facts still go, new chunks are not read
    (docs / "c.md").write_text("# Other\n\nOtto Brandt founded the Brandt Line.\n", encoding="utf-8")
    (docs / "b.md").unlink()
    off = ingest([docs], s, prune=True).derived["graph"]
    assert off["removed"] == 1 and "ingest.graph is off" in off["line"]
    assert store.find("Elena Varga") is None and store.find("Otto Brandt") is None
