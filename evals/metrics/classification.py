"""Classification metrics through scikit-learn: accuracy, macro precision/recall/F1, per-class scores and
the confusion matrix.

Labels are strings; the label set is the union of reference and predicted labels, sorted, so a
prediction outside the reference labels counts against precision like any other class (scikit-learn's
behaviour). Classes never predicted get precision 0 (``zero_division=0``), not a warning. A missing
prediction (or an empty one) counts as wrong — it lowers its true class's recall — but is not a class
itself, so it adds no zero-score class to the macro averages and has no confusion-matrix column.
Scores are on scikit-learn's 0-1 scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

from mmagent.errors import MMAgentError, require

MISSING_LABEL = ""


@dataclass
class ClassScore:
    """One class's precision, recall, F1 and support (number of reference examples)."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class ClassificationResult(ScoreResult):
    """``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``; per class and the confusion matrix.

    ``confusion[i][j]`` counts examples whose reference is ``labels[i]`` and prediction ``labels[j]``.
    """

    accuracy: float = 0.0
    macro_precision: float = 0.0
    macro_recall: float = 0.0
    macro_f1: float = 0.0
    per_class: list[ClassScore] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
        }

    def statistic(self, metric: str | None = None) -> Callable[[Sequence[int]], float]:
        """Macro scores are recomputed on each resample; ``accuracy`` is the mean of per-example hits."""
        name = metric or self.primary
        if name not in ("macro_precision", "macro_recall", "macro_f1"):
            return super().statistic(name)
        refs = [e.references[0] for e in self.examples]
        preds = [e.prediction for e in self.examples]

        def macro(indices: Sequence[int]) -> float:
            r = [refs[i] for i in indices]
            p = [preds[i] for i in indices]
            scores = _sklearn_scores(r, p, _labels(r, p))
            return float(getattr(scores, name))

        return macro

    def to_dict(self, examples: bool = False) -> dict:
        out = super().to_dict(examples)
        out["per_class"] = [vars(c) for c in self.per_class]
        out["labels"] = self.labels
        out["confusion"] = self.confusion
        return out


@dataclass
class _Scores:
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: list[ClassScore]


def _labels(refs: list[str], preds: list[str]) -> list[str]:
    return sorted((set(refs) | set(preds)) - {MISSING_LABEL})


def _sklearn_scores(refs: list[str], preds: list[str], labels: list[str]) -> _Scores:
    metrics = require("sklearn.metrics", "eval")
    p, r, f, s = metrics.precision_recall_fscore_support(refs, preds, labels=labels, zero_division=0)
    mp, mr, mf, _ = metrics.precision_recall_fscore_support(
        refs, preds, labels=labels, average="macro", zero_division=0
    )
    per_class = [
        ClassScore(lab, float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, lab in enumerate(labels)
    ]
    return _Scores(float(mp), float(mr), float(mf), per_class)


def score_classification(
    references: Mapping[str, str], predictions: Mapping[str, str]
) -> ClassificationResult:
    """Score ``{id: predicted label}`` against ``{id: reference label}``."""
    metrics = require("sklearn.metrics", "eval")
    unmatched_predictions(predictions, references, "classification")
    if not references:
        raise MMAgentError("no reference labels to score")
    examples = []
    for rid, label in references.items():
        missing = rid not in predictions
        pred = MISSING_LABEL if missing else predictions[rid]
        examples.append(ExampleScore(str(rid), pred, (label,), {"accuracy": float(pred == label)}, missing))
    refs = [e.references[0] for e in examples]
    preds = [e.prediction for e in examples]
    labels = _labels(refs, preds)
    scores = _sklearn_scores(refs, preds, labels)
    return ClassificationResult(
        task="classification",
        examples=examples,
        primary="accuracy",
        accuracy=float(metrics.accuracy_score(refs, preds)),
        macro_precision=scores.macro_precision,
        macro_recall=scores.macro_recall,
        macro_f1=scores.macro_f1,
        per_class=scores.per_class,
        labels=labels,
        confusion=metrics.confusion_matrix(refs, preds, labels=labels).tolist(),
    )
