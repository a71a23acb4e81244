"""ANLS: hand-computed golden cases, and the DocVQA evaluation loop re-implemented in
tests/helpers/official_scorers.py on the same cases (within 1e-6)."""

from __future__ import annotations

import pytest
from helpers.official_scorers import anls_question
from mmagent.evals.metrics.anls import anls_score, score_anls

# (gold answers, prediction, hand-computed score)
HAND = [
    (["Hello"], "hello", 1.0),  # case is ignored
    (["  total: 42 "], "TOTAL: 42", 1 - 0 / 12),  # stripped; length uses the raw strings (12 chars)
    (["abcd"], "abce", 0.75),  # 1 edit / 4
    (["abcd"], "abef", 0.5),  # NL = 0.5 exactly: kept (official zeroes only scores below 0.5)
    (["abcdef"], "abcxyz", 0.5),
    (["abcde"], "abxyz", 0.0),  # NL = 0.6 -> 0
    # max over golds: "invoice" is 5 edits away (NL 5/12), "inv. 2019" 4 edits (NL 4/12)
    (["invoice", "inv. 2019"], "invoice 2019", 1 - 4 / 12),
    (["new  york"], "new york", 1 - 0 / 9),  # inner whitespace collapsed for the distance
    ([""], "", 1.0),  # both empty: distance 0 over length 0 -> NL 0
    (["yes"], "", 0.0),
]


@pytest.mark.parametrize("golds, prediction, expected", HAND)
def test_anls_hand_cases(golds, prediction, expected):
    assert anls_score(prediction, golds) == pytest.approx(expected, abs=1e-9)
    assert anls_score(prediction, golds) == pytest.approx(anls_question(golds, prediction), abs=1e-6)


def test_anls_aggregate_is_the_mean_and_missing_scores_zero():
    refs = {str(i): golds for i, (golds, _, _) in enumerate(HAND)}
    preds = {str(i): pred for i, (_, pred, _) in enumerate(HAND)}
    preds.pop("0")
    result = score_anls(refs, preds)
    expected = (0.0 + sum(h[2] for h in HAND[1:])) / len(HAND)
    assert result.anls == pytest.approx(expected, abs=1e-9)
    assert result.missing == ["0"] and result.metrics() == {"anls": result.anls}


def test_threshold_is_configurable():
    assert anls_score("abce", ["abcd"], threshold=0.8) == 0.0
    assert anls_score("abce", ["abcd"], threshold=0.7) == 0.75
