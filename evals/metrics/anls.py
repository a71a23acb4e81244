"""ANLS (Average Normalized Levenshtein Similarity) as the official DocVQA / ST-VQA evaluation computes it.

Per question: for each gold answer, NL = edit distance between ``" ".join(s.strip().lower().split())`` of
both strings, divided by ``max(len(gold.upper()), len(prediction.upper()))`` of the *raw* strings (as the
official code does); the question scores ``1 - min(NL)`` over golds, set to 0 when that is below the
threshold tau = 0.5. ANLS is the mean over questions, on the official 0-1 scale.

Note the boundary: the official code zeroes a score *below* 0.5, so NL == 0.5 keeps 0.5 (the ANLS paper's
formula writes ``NL < tau``; the scorer that produces leaderboard numbers is what we match).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

from mmagent.errors import require

THRESHOLD = 0.5


def _clean(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls_score(prediction: str, answers: Sequence[str], threshold: float = THRESHOLD) -> float:
    """One question's score (0-1) against its gold answers; 0 for a question without answers."""
    if not answers:
        return 0.0
    levenshtein = require("rapidfuzz.distance.Levenshtein", "eval")
    distances = []
    for answer in answers:
        length = max(len(answer.upper()), len(prediction.upper()))
        dist = levenshtein.distance(_clean(answer), _clean(prediction))
        distances.append(0.0 if length == 0 else dist / length)
    score = 1.0 - min(distances)
    return 0.0 if score < threshold else score


@dataclass
class AnlsResult(ScoreResult):
    """``anls`` (0-1): the mean of per-question scores (per-example key ``anls``)."""

    anls: float = 0.0
    threshold: float = THRESHOLD

    def metrics(self) -> dict[str, float]:
        return {"anls": self.anls}


def score_anls(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    threshold: float = THRESHOLD,
) -> AnlsResult:
    """Score ``{questionId: answer}`` against ``{questionId: [answers]}``; a missing answer scores 0."""
    unmatched_predictions(predictions, references, "anls")
    examples = []
    for qid, answers in references.items():
        missing = qid not in predictions
        prediction = predictions.get(qid, "")
        score = 0.0 if missing else anls_score(prediction, answers, threshold)
        examples.append(ExampleScore(str(qid), prediction, tuple(answers), {"anls": score}, missing))
    n = len(examples) or 1
    return AnlsResult(
        task="anls",
        examples=examples,
        primary="anls",
        anls=sum(e.scores["anls"] for e in examples) / n,
        threshold=threshold,
    )
