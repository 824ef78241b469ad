"""The knowledge graph store (core/graph.py) on a real SQLite file: facts per chunk in and out,
incremental replace and remove (entities nobody mentions go), aliases, matching a question
(English by whole words, Chinese by substring, the longest alias wins), hops and hubs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.graph import ChunkFacts, EntityFact, GraphStore, RelationFact, norm_key


def _facts(ents: list[tuple[str, list[str]]], rels: list[tuple[str, str]]) -> ChunkFacts:
    return ChunkFacts([EntityFact(n, "", a) for n, a in ents], [RelationFact(s, "rel", t) for s, t in rels])


@pytest.fixture
def store(tmp_path: Path) -> GraphStore:
    g = GraphStore(tmp_path / "graph.sqlite")
    g.replace({
        "c1": _facts([("Harbor Lights", []), ("Elena Varga", ["E. Varga"])],
                     [("Harbor Lights", "Elena Varga")]),
        "c2": _facts([("Elena Varga", []), ("Kessler Institute", ["凯斯勒研究所"])],
                     [("Elena Varga", "Kessler Institute")]),
        "c3": _facts([("凯斯勒研究所", []), ("Otto Brandt", [])], [("凯斯勒研究所", "Otto Brandt")]),
        "c4": _facts([("AI", []), ("北京", []), ("北京大学", [])], []),
    }, "test:1")
    return g


def test_norm_key_folds_case_dashes_and_brackets() -> None:
    assert norm_key("GPT-4") == norm_key("gpt 4") == "gpt 4"
    assert norm_key("《青石镇志》") == "青石镇志"
    assert norm_key("Transformer 架构") == "transformer架构"


def test_round_trip_aliases_and_neighbourhood(store: GraphStore) -> None:
    assert store.done() == {c: "test:1" for c in ("c1", "c2", "c3", "c4")}
    kessler = store.find("kessler institute")
    assert kessler is not None and kessler.name == "Kessler Institute"
    # an alias given in one chunk names the same entity as a name in another
    assert store.find("凯斯勒研究所") == kessler and "凯斯勒研究所" in store.aliases_of(kessler.id)
    assert store.find("e varga") == store.find("Elena Varga")
    harbor = store.find("Harbor Lights")
    assert harbor is not None
    dist = store.neighbourhood([harbor.id], 2)
    names = {store.entities(dist)[e].name: d for e, d in dist.items()}
    assert names == {"Harbor Lights": 0, "Elena Varga": 1, "Kessler Institute": 2}
    assert store.chunks_of(dist) == {"c1": (0, 2), "c2": (1, 2), "c3": (2, 1)}
    assert len(store.neighbourhood([harbor.id], 3)) == 4  # Otto Brandt, three hops away
    rels = store.relations_of(kessler.id)
    assert {(r.source.name, r.target.name) for r in rels} == {("Elena Varga", "Kessler Institute"),
                                                               ("Kessler Institute", "Otto Brandt")}


def test_match_whole_words_substrings_and_longest(store: GraphStore) -> None:
    def names(q: str) -> set[str]:
        m = store.match(q)
        return {e.name for e in store.entities(m).values()}

    assert names("Who wrote harbor lights?") == {"Harbor Lights"}
    assert names("she said nothing") == set()  # "AI" is not inside "said"
    assert names("what is AI?") == {"AI"}
    assert names("凯斯勒研究所在哪里") == {"Kessler Institute"}
    assert names("北京大学的校长") == {"北京大学"}  # not 北京 as well
    assert names("北京的天气") == {"北京"}


def test_replace_and_remove_are_incremental(store: GraphStore) -> None:
    before = store.counts()
    store.replace({"c3": _facts([("Otto Brandt", [])], [])}, "test:1")  # a changed chunk
    assert store.find("Otto Brandt") is not None
    # the relation c3 stated went with it; 凯斯勒研究所 is still an alias from c2
    kessler = store.find("凯斯勒研究所")
    assert kessler is not None and store.chunks_mentioning(kessler.id) == ["c2"]
    assert store.counts()["relations"] == before["relations"] - 1
    store.remove(["c1", "c2"])  # a deleted file
    assert store.find("Harbor Lights") is None and store.find("Elena Varga") is None
    assert store.find("Kessler Institute") is None  # nobody mentions it any more
    assert set(store.done()) == {"c3", "c4"}
    assert store.match("harbor lights") == {}  # the in-memory alias table follows the writes


def test_hubs_are_not_walked_through(tmp_path: Path) -> None:
    g = GraphStore(tmp_path / "graph.sqlite")
    facts = {f"c{i}": _facts([("Model", []), (f"Thing {i}", [])], [("Model", f"Thing {i}")])
             for i in range(8)}
    g.replace(facts, "test:1")
    t0 = g.find("Thing 0")
    assert t0 is not None
    assert len(g.neighbourhood([t0.id], 2)) == 9  # through "Model", every thing is two hops away
    assert len(g.neighbourhood([t0.id], 2, max_mentions=5)) == 1  # "Model" is in 8 chunks: a hub
