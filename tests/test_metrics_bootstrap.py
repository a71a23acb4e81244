"""Percentile bootstrap CIs and the paired bootstrap: seeded, bracketing the estimate, and sensitive
to real differences."""

from __future__ import annotations

import random

import pytest
from mmagent.evals.metrics.bootstrap import bootstrap_mean_ci, paired_bootstrap_means
from mmagent.evals.metrics.squad import score_squad_v1

from mmagent.errors import MMAgentError


def _coin(n: int, p: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [100.0 if rng.random() < p else 0.0 for _ in range(n)]


def test_ci_brackets_the_mean_is_seeded_and_shrinks_with_n():
    small, large = _coin(50, 0.6, 1), _coin(2000, 0.6, 1)
    ci_small = bootstrap_mean_ci(small, seed=3)
    assert ci_small == bootstrap_mean_ci(small, seed=3)
    assert ci_small != bootstrap_mean_ci(small, seed=4)
    assert ci_small.low < ci_small.estimate < ci_small.high
    assert ci_small.estimate == pytest.approx(sum(small) / len(small))
    ci_large = bootstrap_mean_ci(large, seed=3)
    assert ci_large.high - ci_large.low < (ci_small.high - ci_small.low) / 3
    # binomial standard error at n=2000: 100*sqrt(.24/2000) ~ 1.1 -> 95% width ~ 4.3
    assert 3.0 < ci_large.high - ci_large.low < 6.0


def test_constant_scores_have_zero_width():
    ci = bootstrap_mean_ci([1.0] * 20)
    assert ci.low == ci.high == ci.estimate == 1.0


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    a = _coin(400, 0.7, 5)
    b = [x if i % 5 else 0.0 for i, x in enumerate(a)]  # b loses a fifth of a's wins
    better = paired_bootstrap_means(a, b, seed=0)
    assert better.delta > 0 and better.significant and better.p_value < 0.01
    same = paired_bootstrap_means(a, list(a), seed=0)
    assert same.delta == 0 and not same.significant and same.p_value == 1.0
    noise = paired_bootstrap_means(_coin(100, 0.5, 7), _coin(100, 0.5, 8), seed=0)
    assert noise.p_value > 0.05


def test_result_confidence_interval_and_worst_examples():
    refs = {str(i): ["yes"] for i in range(30)}
    preds = {str(i): "yes" if i % 3 else "no" for i in range(30)}
    result = score_squad_v1(refs, preds)
    ci = result.confidence_interval("exact_match", n_resamples=500)
    assert ci.estimate == pytest.approx(result.exact_match) and ci.low < ci.estimate < ci.high
    assert all(e.scores["f1"] == 0.0 for e in result.worst(10))
    with pytest.raises(MMAgentError, match="per-example metrics: exact_match, f1"):
        result.confidence_interval("HasAns_exact")


def test_bad_arguments_are_refused():
    with pytest.raises(MMAgentError, match="same examples"):
        paired_bootstrap_means([1.0], [1.0, 2.0])
    with pytest.raises(MMAgentError, match="confidence"):
        bootstrap_mean_ci([1.0, 2.0], confidence=95)
    with pytest.raises(MMAgentError, match="at least one"):
        bootstrap_mean_ci([])
