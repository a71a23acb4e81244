"""Result types every metric family returns, so the runner can bootstrap and list the worst examples.

Each family returns a subclass of :class:`ScoreResult`: the aggregate metrics under their official names
and scale (``metrics()``), plus one :class:`ExampleScore` per scored example. Per-example values use the
same scale as the aggregate, so for mean-decomposable metrics ``mean(per-example) == aggregate``; ratio
metrics (WER/CER) and set metrics (macro-F1) override :meth:`ScoreResult.statistic` so a bootstrap
resamples the right quantity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmagent.errors import MMAgentError

logger = logging.getLogger(__name__)


@dataclass
class ExampleScore:
    """One example's prediction, its references and its scores (metric name -> value)."""

    id: str
    prediction: str
    references: tuple[str, ...]
    scores: dict[str, float]
    missing: bool = False  # no prediction was given; scored as the family documents (usually 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prediction": self.prediction,
            "references": list(self.references),
            "scores": dict(self.scores),
            "missing": self.missing,
        }


@dataclass
class ScoreResult:
    """Base of every family's result: official aggregate metrics plus per-example scores.

    `primary` names the headline per-example metric (used for "worst examples" and a default bootstrap);
    `higher_is_better` says which direction is good for it.
    """

    task: str
    examples: list[ExampleScore] = field(repr=False)
    primary: str = ""
    higher_is_better: bool = True

    def metrics(self) -> dict[str, float]:
        """Aggregate metrics under the official names, on the official scale; subclasses fill it."""
        raise NotImplementedError

    @property
    def count(self) -> int:
        return len(self.examples)

    @property
    def missing(self) -> list[str]:
        """Ids of references that had no prediction."""
        return [e.id for e in self.examples if e.missing]

    def per_example(self, metric: str | None = None) -> list[float]:
        """The per-example values of `metric` (default: the primary one), in example order."""
        name = metric or self.primary
        self._check_metric(name)
        return [e.scores[name] for e in self.examples]

    def statistic(self, metric: str | None = None) -> Callable[[Sequence[int]], float]:
        """A function of resampled example indices that recomputes the aggregate of `metric`.

        The default is the mean of the per-example values; ratio and set metrics override it.
        """
        import numpy as np

        values = np.asarray(self.per_example(metric), dtype=float)
        return lambda indices: float(values[np.asarray(indices, dtype=int)].mean())

    def confidence_interval(self, metric: str | None = None, **options: Any) -> ConfidenceInterval:
        """Percentile-bootstrap CI of `metric` over examples; options go to :func:`bootstrap_ci`."""
        from mmagent.evals.metrics.bootstrap import bootstrap_ci

        return bootstrap_ci(self.count, self.statistic(metric), **options)

    def worst(self, n: int = 10, metric: str | None = None) -> list[ExampleScore]:
        """The `n` examples that score worst on `metric` (default: primary), worst first; stable order."""
        name = metric or self.primary
        self._check_metric(name)
        sign = 1.0 if self.higher_is_better else -1.0
        return sorted(self.examples, key=lambda e: sign * e.scores[name])[:n]

    def to_dict(self, examples: bool = False) -> dict[str, Any]:
        """JSON-ready summary; per-example rows only when asked (they can be large)."""
        out: dict[str, Any] = {
            "task": self.task,
            "metrics": self.metrics(),
            "count": self.count,
            "missing": self.missing,
        }
        if examples:
            out["examples"] = [e.to_dict() for e in self.examples]
        return out

    def _check_metric(self, name: str) -> None:
        known = sorted(self.examples[0].scores) if self.examples else []
        if not self.examples or name not in self.examples[0].scores:
            raise MMAgentError(
                f"no per-example metric {name!r} in this {self.task} result; per-example metrics: "
                f"{', '.join(known) or '(no examples)'}"
            )


@dataclass(frozen=True)
class ConfidenceInterval:
    """A bootstrap confidence interval around the statistic computed on the full sample."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


def unmatched_predictions(predictions: Iterable[str], references: Iterable[str], task: str) -> list[str]:
    """Prediction ids with no reference: logged once and ignored, as the official scorers ignore them."""
    extra = sorted(set(predictions) - set(references), key=str)
    if extra:
        logger.warning(
            "%s: %d prediction(s) have no reference and are ignored (first: %s)", task, len(extra), extra[:5]
        )
    return extra
