"""Retrieval metrics over ranked document ids: recall@k, MRR and nDCG@k (trec_eval conventions).

- recall@k: share of a query's relevant documents found in the top k (relevance grade > 0).
- MRR: mean over queries of 1 / rank of the first relevant document (0 when none is retrieved).
- nDCG@k: linear gain (the grade itself, 1 for binary relevance) discounted by log2(rank + 1),
  divided by the DCG of the ideal ordering of the query's judged documents — as trec_eval's
  ``ndcg_cut`` and scikit-learn's ``ndcg_score`` (for untied rankings) compute it.

Duplicate ids in a ranking count once, at their first position. Scores are on the 0-1 scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

from mmagent.errors import MMAgentError

DEFAULT_KS = (1, 5, 10)


def _dedupe(ranking: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    return [d for d in ranking if not (d in seen or seen.add(d))]


def recall_at_k(ranking: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    """Share of relevant documents (grade > 0) among the first `k` of `ranking`."""
    relevant = {d for d, g in relevance.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedupe(ranking)[:k])) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], relevance: Mapping[str, float]) -> float:
    """1 / rank of the first relevant document, 0 when none is ranked."""
    for rank, doc in enumerate(_dedupe(ranking), start=1):
        if relevance.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranking: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    """nDCG@k with linear gains; 0 when the query has no relevant document."""
    gains = [float(relevance.get(d, 0.0)) for d in _dedupe(ranking)[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((float(g) for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


@dataclass
class RetrievalResult(ScoreResult):
    """Mean ``recall@k``, ``mrr`` and ``ndcg@k`` over queries (per-example keys are the same names)."""

    scores: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return dict(self.scores)


def score_retrieval(
    references: Mapping[str, Mapping[str, float]],
    predictions: Mapping[str, Sequence[str]],
    ks: Sequence[int] = DEFAULT_KS,
) -> RetrievalResult:
    """Score ``{query_id: [ranked doc ids]}`` against ``{query_id: {doc id: grade}}``.

    A query with no ranking scores 0 everywhere; grades are ints/floats (binary judgements use 1).
    """
    if not ks or any(k < 1 for k in ks):
        raise MMAgentError(f"retrieval cut-offs must be positive integers; got {list(ks)}")
    unmatched_predictions(predictions, references, "retrieval")
    examples = []
    for qid, relevance in references.items():
        missing = qid not in predictions
        ranking = list(predictions.get(qid, []))
        scores = {f"recall@{k}": recall_at_k(ranking, relevance, k) for k in ks}
        scores["mrr"] = reciprocal_rank(ranking, relevance)
        scores.update({f"ndcg@{k}": ndcg_at_k(ranking, relevance, k) for k in ks})
        refs = tuple(d for d, g in relevance.items() if g > 0)
        examples.append(ExampleScore(str(qid), " ".join(ranking), refs, scores, missing))
    n = len(examples) or 1
    keys = list(examples[0].scores) if examples else []
    aggregate = {key: sum(e.scores[key] for e in examples) / n for key in keys}
    primary = "mrr"
    return RetrievalResult(task="retrieval", examples=examples, primary=primary, scores=aggregate)
