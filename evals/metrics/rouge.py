"""ROUGE-1/2/L/Lsum through Google's ``rouge-score`` package (the reference Python implementation).

Settings are the common ones (as in Hugging Face ``evaluate``): Porter stemming on, the package's own
tokenizer (lowercase, ASCII letters and digits only — text in other scripts scores 0), and for
``rougeLsum`` sentences split on newlines: put one sentence per line in predictions and references
(no NLTK sentence splitter, which would need a download). With several references per example,
``score_multi`` keeps the best by F-measure per ROUGE type. Scores are on rouge-score's 0-1 scale;
the aggregate is the mean F-measure over examples, with mean precision and recall alongside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

from mmagent.errors import MMAgentError, require

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass
class RougeResult(ScoreResult):
    """Mean F-measure per ROUGE type (``rouge1`` ...) plus ``<type>_precision`` / ``<type>_recall``."""

    scores: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return dict(self.scores)


def _scorer(use_stemmer: bool):
    rouge_scorer = require("rouge_score.rouge_scorer", "eval")
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer, split_summaries=False)


def score_rouge(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    use_stemmer: bool = True,
) -> RougeResult:
    """Score ``{id: summary}`` against ``{id: [reference summaries]}``; a missing summary scores 0."""
    unmatched_predictions(predictions, references, "rouge")
    scorer = _scorer(use_stemmer)
    examples = []
    for rid, refs in references.items():
        if not refs:
            raise MMAgentError(f"example {rid!r} has no reference text; ROUGE needs at least one reference")
        missing = rid not in predictions
        prediction = predictions.get(rid, "")
        raw = scorer.score_multi(list(refs), prediction)
        scores: dict[str, float] = {}
        for name in ROUGE_TYPES:
            s = raw[name]
            scores[name] = 0.0 if missing else s.fmeasure
            scores[f"{name}_precision"] = 0.0 if missing else s.precision
            scores[f"{name}_recall"] = 0.0 if missing else s.recall
        examples.append(ExampleScore(str(rid), prediction, tuple(refs), scores, missing))
    n = len(examples) or 1
    keys = [f"{t}{suffix}" for suffix in ("", "_precision", "_recall") for t in ROUGE_TYPES]
    aggregate = {k: sum(e.scores[k] for e in examples) / n for k in keys}
    return RougeResult(task="rouge", examples=examples, primary="rougeL", scores=aggregate)
