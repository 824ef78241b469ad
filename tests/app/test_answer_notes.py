from app.answer_notes import check_note


def test_the_check_note_says_what_the_check_changed_and_nothing_when_it_changed_nothing() -> None:
    assert check_note([]) is None
    assert check_note([("retrieve", {}), ("check", {"dropped": [], "kept": 3})]) is None
    assert check_note([("check", {"dropped": ["a", "b"]})]) == "2 unsupported sentence(s) removed"
    got = check_note([("check", {"dropped": ["a"]}), ("claim_retry", {"kept": 1}),
                      ("check", {"dropped": ["a", "b"], "fallback": True})])
    # the last check decides; every retry's kept claims count
    assert got == ("2 unsupported sentence(s) removed; 1 kept, cited to a passage a search for it "
                   "found; answer quoted from the passages instead")
