"""Faithfulness: the share of outputs that state a number, amount, date or proper name found in none of
their sources (the passages or document shown, the question, tool results, the image's text).

An output counts as unfaithful when :func:`mmagent.facts.unsupported` finds at least one such fact; the
rate is over outputs, not facts, so one invented price and three invented prices weigh the same — the
user trusts or does not trust the answer as a whole. Empty outputs (a declined question) state nothing
and count as faithful. Scale 0-1, lower is better.

Extraction is deterministic (regular expressions, capitalisation outside sentence starts), so a score
can be traced: each example lists the facts it found unsupported (``ExampleScore.references``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

METRIC = "unsupported_claim_rate"


@dataclass
class FaithfulnessResult(ScoreResult):
    """``unsupported_claim_rate`` (share of outputs with an unsupported fact) and ``unsupported_facts``
    (mean count per output); per example, `references` holds the unsupported facts themselves."""

    def metrics(self) -> dict[str, float]:
        n = self.count or 1
        return {METRIC: sum(e.scores[METRIC] for e in self.examples) / n,
                "unsupported_facts": sum(e.scores["unsupported_facts"] for e in self.examples) / n}


def score_faithfulness(outputs: Mapping[str, str], sources: Mapping[str, Sequence[str]]) -> FaithfulnessResult:
    """Score ``{id: output text}`` against ``{id: [source texts]}`` (an id missing from `outputs` counts as
    an empty, faithful output and is marked missing)."""
    from mmagent.facts import unsupported

    unmatched_predictions(outputs, sources, "faithfulness")
    examples = []
    for key, texts in sources.items():
        output = outputs.get(key) or ""
        claims = unsupported(output, [t for t in texts if t])
        examples.append(ExampleScore(str(key), output, tuple(claims),
                                     {METRIC: float(bool(claims)), "unsupported_facts": float(len(claims))},
                                     missing=key not in outputs))
    return FaithfulnessResult(task="faithfulness", examples=examples, primary=METRIC, higher_is_better=False)
