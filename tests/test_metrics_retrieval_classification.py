"""Retrieval (recall@k, MRR, nDCG@k) and classification metrics: hand-computed values, and nDCG against
scikit-learn's independent ``ndcg_score``."""

from __future__ import annotations

import math

import pytest
from mmagent.evals.metrics.classification import score_classification
from mmagent.evals.metrics.retrieval import ndcg_at_k, recall_at_k, reciprocal_rank, score_retrieval

from mmagent.errors import MMAgentError


def test_retrieval_by_hand():
    relevance = {"d1": 1, "d4": 1, "d9": 1}
    ranking = ["d2", "d1", "d3", "d4", "d1"]  # the duplicate d1 counts once
    assert recall_at_k(ranking, relevance, 1) == 0.0
    assert recall_at_k(ranking, relevance, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, relevance, 10) == pytest.approx(2 / 3)
    assert reciprocal_rank(ranking, relevance) == 0.5
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranking, relevance, 10) == pytest.approx(dcg / idcg)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_graded_ndcg_matches_scikit_learn(k):
    from sklearn.metrics import ndcg_score

    docs = ["a", "b", "c", "d", "e", "f"]
    grades = {"a": 0, "b": 3, "c": 1, "d": 2, "e": 0, "f": 1}
    ranking = ["a", "c", "b", "e", "f", "d"]
    scores = [len(docs) - ranking.index(d) for d in docs]  # untied scores that induce `ranking`
    expected = ndcg_score([[grades[d] for d in docs]], [scores], k=k)
    assert ndcg_at_k(ranking, grades, k) == pytest.approx(expected, abs=1e-9)


def test_score_retrieval_means_and_missing():
    refs = {"q1": {"a": 1.0}, "q2": {"b": 1.0}, "q3": {"c": 1.0}}
    result = score_retrieval(refs, {"q1": ["a", "x"], "q2": ["x", "b"]}, ks=(1, 2))
    assert result.metrics()["recall@1"] == pytest.approx(1 / 3)
    assert result.metrics()["recall@2"] == pytest.approx(2 / 3)
    assert result.metrics()["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result.missing == ["q3"]
    with pytest.raises(MMAgentError, match="positive"):
        score_retrieval(refs, {}, ks=(0,))


def test_classification_by_hand():
    refs = {"1": "cat", "2": "cat", "3": "dog", "4": "dog", "5": "bird", "6": "cat"}
    preds = {"1": "cat", "2": "dog", "3": "dog", "4": "dog", "5": "cat"}  # "6" missing
    result = score_classification(refs, preds)
    assert result.accuracy == pytest.approx(3 / 6)
    # cat: tp 1, predicted 2, support 3 -> P 1/2 R 1/3
    # dog: tp 2, predicted 3, support 2 -> P 2/3 R 1; bird: 0
    per = {c.label: c for c in result.per_class}
    assert (per["cat"].precision, per["cat"].recall, per["cat"].support) == pytest.approx((0.5, 1 / 3, 3))
    assert (per["dog"].precision, per["dog"].recall) == pytest.approx((2 / 3, 1.0))
    assert per["bird"].f1 == 0.0
    f_cat, f_dog = 2 * 0.5 * (1 / 3) / (0.5 + 1 / 3), 2 * (2 / 3) / (2 / 3 + 1)
    assert result.macro_precision == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert result.macro_recall == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert result.macro_f1 == pytest.approx((f_cat + f_dog) / 3)
    # the missing prediction is wrong but not a class of its own
    assert result.labels == ["bird", "cat", "dog"]
    assert result.confusion == [[0, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert result.missing == ["6"]
    # bootstrap statistic for a set metric recomputes it
    assert result.statistic("macro_f1")(range(6)) == pytest.approx(result.macro_f1)
