"""SQuAD v1.1 / v2.0 conformance: the library against re-implementations of the official scripts
(tests/helpers/official_scorers.py) on tricky hand-made cases, within 1e-6, plus hand-computed values."""

from __future__ import annotations

import copy

import pytest
from helpers.official_scorers import squad_v1_evaluate, squad_v2_evaluate
from mmagent.evals.metrics.squad import f1_v1, f1_v2, normalize_answer, score_squad_v1, score_squad_v2

from mmagent.errors import MMAgentError

# (id, gold answers, prediction): punctuation, articles, several golds, case, whitespace, unicode,
# hyphen joining, numbers with commas, repeated tokens, golds that normalise to nothing.
CASES = [
    ("punct", ["Denver Broncos"], "denver broncos!!"),
    ("article", ["The Eiffel Tower"], "eiffel tower"),
    ("article-inside", ["a cat and the dog"], "cat and dog"),
    ("article-not-word", ["theatre"], "atre"),
    (
        "multi-gold",
        ["Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area"],
        "Levi's Stadium, Santa Clara",
    ),
    ("partial", ["the 1990 FIFA World Cup final"], "World Cup"),
    ("case-space", ["  New   York  City "], "new york\tcity"),
    ("hyphen", ["state-of-the-art"], "state of the art"),
    ("number-comma", ["1,000,000"], "1000000"),
    ("repeat", ["the the the"], "the"),
    ("repeat-tokens", ["go go go stop"], "go stop stop"),
    ("unicode", ["Kraków—Poland"], "krakow poland"),
    ("unicode-punct", ["“quoted” text"], "quoted text"),
    ("empty-pred", ["something"], ""),
    ("wrong", ["Paris"], "London"),
    ("gold-only-article", ["The", "an apple"], "apple"),
]


def _dataset(cases, unanswerable=()):
    qas = [
        {"id": qid, "question": "?", "answers": [{"text": g, "answer_start": 0} for g in golds]}
        for qid, golds, _ in cases
    ]
    qas += [{"id": qid, "question": "?", "answers": [], "is_impossible": True} for qid, _ in unanswerable]
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


def _refs(dataset):
    return {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for art in dataset
        for p in art["paragraphs"]
        for qa in p["qas"]
    }


def test_normalize_answer_by_hand():
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # \b keeps articles inside words


def test_f1_versions_differ_on_empty_answers_as_the_scripts_do():
    assert f1_v1("", "") == 0.0  # v1.1: no shared token -> 0
    assert f1_v2("", "") == 1.0  # v2.0: both empty -> 1
    assert f1_v1("World Cup", "the 1990 FIFA World Cup final") == pytest.approx(
        2 * 1.0 * 0.4 / 1.4
    )  # 2 of 5 gold tokens


def test_v1_matches_official_on_tricky_cases():
    dataset = _dataset(CASES)
    predictions = {qid: pred for qid, _, pred in CASES}
    expected = squad_v1_evaluate(dataset, predictions)
    result = score_squad_v1(_refs(dataset), predictions)
    assert result.metrics() == pytest.approx(expected, abs=1e-6)
    assert result.count == len(CASES)
    # per-example values average to the aggregate (what the bootstrap relies on)
    assert sum(result.per_example("f1")) / result.count == pytest.approx(result.f1, abs=1e-9)
    by_id = {e.id: e.scores for e in result.examples}
    assert by_id["punct"]["exact_match"] == 100.0 and by_id["wrong"]["f1"] == 0.0
    assert by_id["partial"]["f1"] == pytest.approx(100 * 2 * 1.0 * 0.4 / 1.4)


def test_v1_missing_prediction_scores_zero_and_counts_like_official():
    dataset = _dataset(CASES)
    predictions = {qid: pred for qid, _, pred in CASES[:-3]}
    expected = squad_v1_evaluate(dataset, predictions)
    result = score_squad_v1(_refs(dataset), predictions)
    assert result.metrics() == pytest.approx(expected, abs=1e-6)
    assert result.missing == [qid for qid, _, _ in CASES[-3:]]


def test_v1_refuses_unanswerable_questions():
    with pytest.raises(MMAgentError, match="squad_v2"):
        score_squad_v1({"q": []}, {"q": ""})


UNANSWERABLE = [("na-empty", ""), ("na-wrong", "some answer"), ("na-punct", "..."), ("na-article", "the")]


def _v2_inputs():
    dataset = _dataset(CASES, UNANSWERABLE)
    predictions = {qid: pred for qid, _, pred in CASES} | dict(UNANSWERABLE)
    return dataset, predictions


def test_v2_matches_official_on_tricky_cases():
    dataset, predictions = _v2_inputs()
    expected = squad_v2_evaluate(copy.deepcopy(dataset), predictions)
    result = score_squad_v2(_refs(dataset), predictions)
    assert result.metrics() == pytest.approx(expected, abs=1e-6)
    assert list(result.metrics()) == list(expected)  # same names, same order as the official JSON
    by_id = {e.id: e.scores for e in result.examples}
    # unanswerable: right only when the prediction normalises to nothing
    assert [by_id[q]["exact"] for q, _ in UNANSWERABLE] == [100.0, 0.0, 100.0, 100.0]
    # v2.0 drops golds that normalise to nothing ("The"), so "apple" matches "an apple"
    assert by_id["gold-only-article"]["exact"] == 100.0


@pytest.mark.parametrize("thresh", [1.0, 0.5, 0.0])
def test_v2_with_no_answer_probabilities_matches_official(thresh):
    dataset, predictions = _v2_inputs()
    ids = list(predictions)
    # deterministic, with ties, spread over [0, 1]
    na_probs = {qid: round((i * 7 % 11) / 10.0, 1) for i, qid in enumerate(ids)}
    expected = squad_v2_evaluate(copy.deepcopy(dataset), predictions, na_probs, thresh)
    result = score_squad_v2(_refs(dataset), predictions, na_probs, thresh)
    assert result.metrics() == pytest.approx(expected, abs=1e-6)
    assert "best_f1_thresh" in result.metrics()


def test_v2_needs_a_probability_for_every_prediction():
    with pytest.raises(MMAgentError, match="no-answer probability"):
        score_squad_v2({"a": ["x"], "b": []}, {"a": "x", "b": ""}, {"a": 0.2})


def test_v2_missing_prediction_scores_zero():
    # the official v2.0 script crashes here (KeyError); we score 0 and count the question
    result = score_squad_v2({"a": ["x"], "b": []}, {"a": "x"})
    assert result.metrics()["exact"] == 50.0 and result.missing == ["b"]
    assert result.no_ans is not None and result.no_ans.exact == 0.0
