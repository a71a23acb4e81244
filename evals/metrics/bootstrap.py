"""Percentile-bootstrap confidence intervals and paired-bootstrap significance over per-example scores.

Both resample example *indices* with replacement and recompute a statistic, so they work for means
(EM, F1, VQA accuracy), ratios (corpus WER = sum(errors) / sum(words)) and set metrics (macro-F1) alike.
Seeded NumPy generators make every interval reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from mmagent.evals.metrics.base import ConfidenceInterval

from mmagent.errors import MMAgentError

Statistic = Callable[[Sequence[int]], float]


def _check(n: int, confidence: float, n_resamples: int) -> None:
    if n <= 0:
        raise MMAgentError("bootstrap needs at least one example; got none")
    if not 0.0 < confidence < 1.0:
        raise MMAgentError(f"confidence must be between 0 and 1 (e.g. 0.95); got {confidence}")
    if n_resamples < 1:
        raise MMAgentError(f"n_resamples must be >= 1; got {n_resamples}")


def _mean_statistic(values: Sequence[float]) -> Statistic:
    array = np.asarray(values, dtype=float)
    return lambda idx: float(array[np.asarray(idx)].mean())


def bootstrap_ci(
    n: int,
    statistic: Statistic,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap: resample `n` example indices `n_resamples` times, take the quantiles.

    `statistic(indices)` recomputes the aggregate on a resample (indices repeat). The estimate is the
    statistic on the full sample (``range(n)``), not the bootstrap mean.
    """
    _check(n, confidence, n_resamples)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n, size=(n_resamples, n))
    values = np.array([statistic(row) for row in samples], dtype=float)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(values, [alpha, 1.0 - alpha])  # NaN: resample where the statistic is undefined
    return ConfidenceInterval(
        estimate=float(statistic(np.arange(n))),
        low=float(low),
        high=float(high),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def bootstrap_mean_ci(values: Sequence[float], **options: float) -> ConfidenceInterval:
    """:func:`bootstrap_ci` of the mean of per-example `values` (EM, F1, accuracy, ANLS ...)."""
    return bootstrap_ci(len(values), _mean_statistic(values), **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PairedBootstrapResult:
    """System A minus system B on the same examples.

    `p_value` is two-sided: twice the smaller share of resamples whose difference falls on either side
    of zero (capped at 1). A small value means the sign of `delta` is unlikely to be a resampling accident.
    """

    delta: float
    low: float
    high: float
    p_value: float
    a: float
    b: float
    confidence: float
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """True when the confidence interval of the difference excludes zero."""
        return self.low > 0.0 or self.high < 0.0

    def to_dict(self) -> dict[str, float | bool]:
        return {
            "a": self.a,
            "b": self.b,
            "delta": self.delta,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "significant": self.significant,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


def paired_bootstrap(
    n: int,
    statistic_a: Statistic,
    statistic_b: Statistic,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> PairedBootstrapResult:
    """Paired bootstrap (Koehn 2004): the SAME resampled indices feed both systems' statistics."""
    _check(n, confidence, n_resamples)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n, size=(n_resamples, n))
    deltas = np.array([statistic_a(row) - statistic_b(row) for row in samples], dtype=float)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(deltas, [alpha, 1.0 - alpha])
    full = np.arange(n)
    a, b = float(statistic_a(full)), float(statistic_b(full))
    share_le = float(np.mean(deltas <= 0.0))
    share_ge = float(np.mean(deltas >= 0.0))
    return PairedBootstrapResult(
        delta=a - b,
        low=float(low),
        high=float(high),
        p_value=min(1.0, 2.0 * min(share_le, share_ge)),
        a=a,
        b=b,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


def paired_bootstrap_means(a: Sequence[float], b: Sequence[float], **options: float) -> PairedBootstrapResult:
    """:func:`paired_bootstrap` of two runs' per-example scores (same examples, same order)."""
    if len(a) != len(b):
        raise MMAgentError(
            f"paired bootstrap needs scores for the same examples; got {len(a)} and {len(b)} values"
        )
    return paired_bootstrap(len(a), _mean_statistic(a), _mean_statistic(b), **options)  # type: ignore[arg-type]
