"""Defensive parsing of LLM output: every malformed shape a small model produces yields a
usable value or the fallback, with a note; nothing raises."""

from __future__ import annotations

import json

import pytest

from retrieval.parse import extract_json, first_question, parse_choice, parse_list, parse_text

Q = "How long should green tea steep?"


def test_clean_json_list_is_read_as_is() -> None:
    p = parse_list('{"queries": ["green tea steeping time", "brew green tea minutes"]}', ("queries",), 3, [Q])
    assert p.value == ["green tea steeping time", "brew green tea minutes"]
    assert not p.fallback and p.notes == []


def test_prose_around_json_and_code_fences() -> None:
    raw = (
        'Sure! Here are the queries:\n```json\n{"queries": ["green tea time", "steep green tea"]}\n```\n'
        "Hope it helps."
    )
    p = parse_list(raw, ("queries",), 3, [Q])
    assert p.value == ["green tea time", "steep green tea"]
    assert any("surrounding text" in n for n in p.notes)
    p2 = parse_list('Output: {"queries": ["a green tea query"]} done', ("queries",), 3, [Q])
    assert p2.value == ["a green tea query"]


def test_malformed_json_is_repaired_or_read_per_line() -> None:
    assert parse_list("{'queries': ['green tea steep', 'tea minutes',]}", ("queries",), 3, [Q]).value == [
        "green tea steep",
        "tea minutes",
    ]
    truncated = '{"queries": ["green tea steeping", "how many minutes for green te'
    p = parse_list(truncated, ("queries",), 3, [Q])
    assert p.value[0] == "green tea steeping" and not p.fallback
    lines = "1. green tea steeping time\n2) minutes to brew green tea\n- green tea temperature"
    p = parse_list(lines, ("queries",), 3, [Q])
    assert p.value == ["green tea steeping time", "minutes to brew green tea", "green tea temperature"]
    assert "read one item per line" in p.notes


@pytest.mark.parametrize(
    "raw", ["", "   ", '{"queries": []}', "[]", '{"queries": [null, 3, ""]}', "{", "}}}"]
)
def test_empty_or_useless_output_falls_back_to_the_question(raw: str) -> None:
    p = parse_list(raw, ("queries",), 3, [Q])
    assert p.fallback and p.value == [Q]
    assert any("fell back" in n for n in p.notes)


def test_duplicates_and_the_question_itself_are_dropped() -> None:
    raw = json.dumps(
        {"queries": [Q, "Green tea steep time", "green tea steep time!", "GREEN TEA STEEP TIME", Q.upper()]}
    )
    p = parse_list(raw, ("queries",), 5, [Q], exclude=(Q,))
    assert p.value == ["Green tea steep time"]
    assert "dropped 4 duplicate" in p.notes


def test_a_list_of_fifty_is_capped() -> None:
    raw = json.dumps({"queries": [f"green tea query number {i}" for i in range(50)]})
    p = parse_list(raw, ("queries",), 3, [Q])
    assert p.value == [f"green tea query number {i}" for i in range(3)]
    assert "capped 50 items to 3" in p.notes


def test_junk_and_off_topic_items_are_dropped() -> None:
    raw = json.dumps(
        {"queries": ["Synonyms:", "syntax_keywords_1", "steps for baking bread", "green tea brewing time"]}
    )
    p = parse_list(raw, ("queries",), 3, [Q], related_to=Q)
    assert p.value == ["green tea brewing time"]
    assert "dropped 2 junk" in p.notes and "dropped 1 off-topic" in p.notes


def test_other_shapes_bare_list_objects_in_list_other_key() -> None:
    assert parse_list('["green tea a", "green tea b"]', ("queries",), 3, [Q]).value == [
        "green tea a",
        "green tea b",
    ]
    assert parse_list('{"queries": [{"query": "green tea c"}]}', ("queries",), 3, [Q]).value == [
        "green tea c"
    ]
    assert parse_list('{"search": ["green tea d"]}', ("queries",), 3, [Q]).value == ["green tea d"]
    assert parse_list('{"queries": "green tea e"}', ("queries",), 3, [Q]).value == ["green tea e"]
    long = "green tea " * 100
    assert len(parse_list(json.dumps([long]), ("queries",), 3, [Q]).value[0]) == 300


def test_parse_text_unwraps_labels_and_json_and_falls_back() -> None:
    assert parse_text('{"question": "What affects tea brewing?"}', Q, keys=("question",)).value == (
        "What affects tea brewing?"
    )
    assert parse_text("Answer: Green tea is steeped for two minutes.", Q).value == (
        "Green tea is steeped for two minutes."
    )
    p = parse_text("ok", Q)
    assert p.fallback and p.value == Q
    assert parse_text("", Q).fallback
    assert len(parse_text("word " * 1000, Q, max_chars=100).value) <= 100


def test_first_question_cuts_rambling() -> None:
    assert (
        first_question("What shapes tea flavour? Tea flavour depends on many things.")
        == "What shapes tea flavour?"
    )
    assert first_question("Tea is good. More text.") == "Tea is good."


def test_parse_choice() -> None:
    names = ["coffee", "ml-papers"]
    assert parse_choice('{"collection": "ML-Papers"}', "collection", names, None).value == "ml-papers"
    bad = parse_choice('{"collection": "cooking"}', "collection", names, "coffee")
    assert bad.fallback and bad.value == "coffee" and any("not one of" in n for n in bad.notes)
    assert parse_choice("I would pick coffee here.", "collection", names, None).value == "coffee"
    assert parse_choice("coffee or ml-papers", "collection", names, None).fallback  # ambiguous prose
    assert parse_choice("", "collection", names, "coffee").value == "coffee"


def test_extract_json_never_raises_on_garbage() -> None:
    for raw in ["[[[[", '{"a": [1, 2', "```", "{" * 5000, "null", '"just a string"', "\x00\x01"]:
        extract_json(raw)  # no exception
    assert extract_json('{"a": [1, 2')[0] == {"a": [1, 2]}
