"""Decoded text -> labels; unparsable text becomes INVALID, never an exception."""

import pytest

from hyperprompt.tasks import postprocessors as post
from hyperprompt.tasks.postprocessors import INVALID


def test_label_words_and_invalid_text():
    fn = post.label_id(["entailment", "neutral", "contradiction"])
    assert [fn(b"neutral"), fn("contradiction "), fn("maybe"), fn("")] == [1, 2, INVALID,
                                                                          INVALID]
    assert post.stsb("3.8") == pytest.approx(3.8)
    assert post.stsb("three") == INVALID
    assert post.stsb("3.8", {"label": 3.72}, is_target=True) == pytest.approx(3.72)
    assert post.is_invalid(INVALID) and post.is_invalid({"value": INVALID})
    assert not post.is_invalid(0) and not post.is_invalid("text")


def test_multirc_and_record_targets_carry_their_groups():
    example = {"idx_paragraph": 3, "idx_question": 4, "answers": [b"a", b"b"],
               "idx_passage": 6, "idx_query": 7}
    assert post.multirc("True", example, is_target=True) == {"value": 1, "group": (3, 4)}
    assert post.multirc("Tru") == {"value": INVALID}
    assert post.record("x", example, is_target=True) == {"group": (6, 7), "answers": ["a", "b"]}
    assert post.record(b"Paris") == "Paris"


@pytest.mark.parametrize("prediction,candidate,expected", [
    ("Pete", "Pete", 1),
    ("the fuzzy bunny", "bunny", 1),        # one word set contains the other
    ("The Bunny", "a bunny", 1),            # case and determiners ignored
    ("Bob", "Bob's hat", 0),                # possessive only on one side
    ("Mark", "Pete", 0),
    ("", "Pete", INVALID),                  # names nothing: not "another noun"
    ("the", "Pete", INVALID),
])
def test_simple_wsc_checks_the_named_candidate(prediction, candidate, expected):
    example = {"targets_pretokenized": candidate.encode(), "label": 1}
    assert post.wsc_simple(prediction, example) == expected
    assert post.wsc_simple(prediction, example, is_target=True) == 1
