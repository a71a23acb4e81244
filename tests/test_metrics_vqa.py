"""VQA accuracy conformance: the library against a re-implementation of the official vqaEval.py loop
(tests/helpers/official_scorers.py) on tricky cases, within 1e-6, plus hand-computed values."""

from __future__ import annotations

import copy

import pytest
from helpers.official_scorers import vqa_evaluate, vqa_process_digit_article, vqa_process_punctuation
from mmagent.evals.metrics.vqa import (
    CONTRACTIONS,
    normalize_prediction,
    process_digit_article,
    process_punctuation,
    score_vqa,
    vqa_accuracy,
)


def _ten(*groups: tuple[str, int]) -> list[str]:
    answers = [a for a, n in groups for _ in range(n)]
    assert len(answers) == 10
    return answers


# (question id, 10 human answers, prediction)
CASES = [
    ("q-all", _ten(("2", 10)), "2"),
    ("q-digit-word", _ten(("2", 7), ("two", 3)), "Two"),
    ("q-one-match", _ten(("red", 1), ("blue", 9)), "red"),
    ("q-two-match", _ten(("red", 2), ("blue", 8)), "red"),
    ("q-three-match", _ten(("red", 3), ("blue", 7)), "red"),
    ("q-four-match", _ten(("red", 4), ("blue", 6)), "red"),
    ("q-none", _ten(("red", 5), ("blue", 5)), "green"),
    ("q-article", _ten(("dog", 4), ("a dog", 6)), "the dog"),
    ("q-punct", _ten(("yes", 8), ("no", 2)), "Yes."),
    ("q-question-mark", _ten(("yes", 5), ("yes?", 5)), "yes"),
    ("q-contraction", _ten(("don't know", 5), ("unknown", 5)), "dont know"),
    ("q-hyphen", _ten(("hot dog", 6), ("hot-dog", 4)), "hot-dog"),
    ("q-comma-number", _ten(("1000", 5), ("1,000", 5)), "1,000"),
    ("q-decimal", _ten(("1.5", 5), ("15", 5)), "1.5"),
    ("q-slash", _ten(("black/white", 3), ("black and white", 7)), "black/white"),
    ("q-identical-golds", _ten(("t-shirt", 10)), "t-shirt"),
    ("q-spaced-punct", _ten(("yes", 9), ("no", 1)), "yes !"),
    ("q-newline", _ten(("tennis", 9), ("ball", 1)), "\ttennis\n"),
    ("q-case-gold", _ten(("Red", 8), ("red", 2)), "red"),
    ("q-many-periods", _ten(("a", 5), ("b", 5)), "." * 40 + "a"),
    ("q-gold-article", _ten(("a dog", 8), ("dog", 2)), "dog"),
    ("q-gold-number", _ten(("two", 9), ("2", 1)), "two"),
    ("q-none-word", _ten(("0", 6), ("none", 4)), "none"),
]


def _official(cases):
    gts = {
        qid: {
            "answers": [
                {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(golds)
            ]
        }
        for qid, golds, _ in cases
    }
    res = {qid: {"question_id": qid, "answer": pred} for qid, _, pred in cases}
    return vqa_evaluate(copy.deepcopy(gts), res)


def test_ten_choose_nine_by_hand():
    # k matching humans: the k leave-one-out subsets that drop a match see k-1 matches, the others k
    for k, expected in [
        (0, 0.0),
        (1, 0.9 * 1 / 3),
        (2, (2 * 1 / 3 + 8 * 2 / 3) / 10),
        (3, (3 * 2 / 3 + 7) / 10),
        (4, 1.0),
    ]:
        answers = ["red"] * k + ["blue"] * (10 - k)
        assert vqa_accuracy("red", answers) == pytest.approx(expected, abs=1e-12)


def test_normalisation_by_hand():
    assert normalize_prediction("Two dogs.") == "2 dogs"
    assert normalize_prediction("The Dog") == "dog"
    assert normalize_prediction("dont") == "don't"
    assert normalize_prediction("isnt it") == "isn't it"
    assert normalize_prediction("hot-dog") == "hot dog"
    assert normalize_prediction("1,000") == "1000"  # digit comma: all punctuation dropped, not spaced
    assert normalize_prediction("1.5") == "1.5"  # a period followed by a digit stays
    assert normalize_prediction("yes !") == "yes"
    assert CONTRACTIONS["youre"] == "you're" and CONTRACTIONS["oclock"] == "o'clock"
    assert process_punctuation("." * 40) == "." * 8  # official passes re.UNICODE (32) as the count


@pytest.mark.parametrize(
    "text", ["Yes.", "a b.c", "1,000.5", "(hi) there", "x-y", "e.g. this", "50 / 50", "it's ok!"]
)
def test_normalisation_matches_official(text):
    assert process_punctuation(text) == vqa_process_punctuation(text)
    assert process_digit_article(text) == vqa_process_digit_article(text)


def test_accuracy_matches_official_on_tricky_cases():
    per_question, overall = _official(CASES)
    result = score_vqa({qid: golds for qid, golds, _ in CASES}, {qid: pred for qid, _, pred in CASES})
    assert result.accuracy == pytest.approx(overall, abs=1e-6)
    for example in result.examples:
        assert example.scores["accuracy"] == pytest.approx(100 * per_question[example.id], abs=1e-6), (
            example.id
        )
    by_id = {e.id: e.scores["accuracy"] for e in result.examples}
    assert by_id["q-digit-word"] == pytest.approx(100.0)  # "Two" -> "2", 7 humans said "2"
    # human answers are not lowercased by the official code: only the 2 "red" match
    # -> (2 * 1/3 + 8 * 2/3) / 10
    assert by_id["q-case-gold"] == pytest.approx(60.0)
    # human answers get punctuation handling only, no article/number mapping: 2 and 1 exact matches
    assert by_id["q-gold-article"] == pytest.approx(60.0)
    assert by_id["q-gold-number"] == pytest.approx(30.0)
    assert 0 < result.accuracy < 100


def test_answer_types_and_missing_answers():
    refs = {"1": ["yes"] * 10, "2": ["2"] * 10, "3": ["red"] * 10}
    result = score_vqa(
        refs, {"1": "yes", "2": "two"}, answer_types={"1": "yes/no", "2": "number", "3": "other"}
    )
    assert result.per_answer_type == {"yes/no": 100.0, "number": 100.0, "other": 0.0}
    assert result.missing == ["3"] and result.accuracy == pytest.approx(200 / 3)
    assert result.metrics()["accuracy_number"] == 100.0
