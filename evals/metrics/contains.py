"""Answer contains: whether a free-text answer holds one of the expected texts (case-insensitive).

For chat answers, which are sentences rather than short spans: "This is an Egyptian cat." is right for the
reference "cat", and "I can't tell from the picture." is right for a question the picture cannot answer
when the references are ways of saying so. ``answer_contains`` is the share of answers that do (0-1).
Blank space is collapsed on both sides first, so a line break inside an answer does not hide a match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

METRIC = "answer_contains"


def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").lower().split())


def contains_any(answer: str, references: Sequence[str]) -> bool:
    """Whether `answer` holds any of `references` (case- and blank-space-insensitive)."""
    said = _norm(answer)
    return any(_norm(r) and _norm(r) in said for r in references)


@dataclass
class ContainsResult(ScoreResult):
    """``answer_contains``: the mean of the per-example 0/1 scores."""

    def metrics(self) -> dict[str, float]:
        return {METRIC: sum(e.scores[METRIC] for e in self.examples) / (self.count or 1)}


def score_contains(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> ContainsResult:
    """Score ``{id: answer}`` against ``{id: [expected texts]}``; a missing answer scores 0."""
    unmatched_predictions(predictions, references, "contains")
    examples = []
    for key, refs in references.items():
        answer = str(predictions.get(key) or "")
        examples.append(ExampleScore(str(key), answer, tuple(refs), {METRIC: float(contains_any(answer, refs))},
                                     missing=key not in predictions))
    return ContainsResult(task="contains", examples=examples, primary=METRIC)
