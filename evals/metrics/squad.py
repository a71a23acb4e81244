"""SQuAD v1.1 and v2.0 scoring, line for line the official ``evaluate-v1.1.py`` / ``evaluate-v2.0.py``.

Both normalise answers the same way (lowercase, drop ASCII punctuation, drop the articles a/an/the,
collapse whitespace) and take the max over gold answers; they differ on purpose in the details, which we
keep:

- v1.1 F1 is 0 when no token is shared, even when both sides normalise to nothing; v2.0 F1 is 1 when both
  are empty. v2.0 drops gold answers that normalise to an empty string, and an unanswerable question
  (no gold answers) is correct only for an empty prediction.
- v1.1 scores a missing prediction 0 and counts it in the total. The official v2.0 script crashes on a
  missing prediction (KeyError in its HasAns/NoAns split); here it scores 0 and counts, as in v1.1.
- v2.0 optionally takes per-question no-answer probabilities (``na_prob.json``): a question whose
  probability exceeds ``na_prob_thresh`` (default 1.0, i.e. never) counts as answered "", and
  ``best_exact``/``best_f1`` report the best achievable threshold.

Scores are on the official 0-100 scale, as the scripts print them.
"""

from __future__ import annotations

import collections
import logging
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

from mmagent.errors import MMAgentError

logger = logging.getLogger(__name__)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (both official scripts)."""
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1_from_tokens(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_v1(prediction: str, ground_truth: str) -> float:
    """v1.1 ``exact_match_score``: 1.0 when both normalise to the same string."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_v1(prediction: str, ground_truth: str) -> float:
    """v1.1 ``f1_score``: token-bag F1; 0 when nothing is shared (even if both are empty)."""
    return _f1_from_tokens(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def exact_match_v2(gold: str, prediction: str) -> float:
    """v2.0 ``compute_exact`` (note the official argument order: gold first)."""
    return float(normalize_answer(gold) == normalize_answer(prediction))


def f1_v2(gold: str, prediction: str) -> float:
    """v2.0 ``compute_f1``: as v1.1, but 1 when both sides are empty and 0 when only one is."""
    gold_tokens = normalize_answer(gold).split() if gold else []
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    return _f1_from_tokens(pred_tokens, gold_tokens)


@dataclass
class SquadResult(ScoreResult):
    """SQuAD v1.1: ``exact_match`` and ``f1`` (0-100). Per-example keys are the same names."""

    exact_match: float = 0.0
    f1: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {"exact_match": self.exact_match, "f1": self.f1}


def score_squad_v1(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> SquadResult:
    """Score ``{id: answer}`` predictions against ``{id: [gold answers]}`` like ``evaluate-v1.1.py``."""
    unmatched_predictions(predictions, references, "squad")
    examples: list[ExampleScore] = []
    for qid, golds in references.items():
        if not golds:
            raise MMAgentError(
                f"question {qid!r} has no gold answer; SQuAD v1.1 scoring needs at least one per question "
                "(the official script crashes here). "
                "Use --task squad_v2 for data with unanswerable questions."
            )
        missing = qid not in predictions
        prediction = predictions.get(qid, "")
        if missing:
            scores = {"exact_match": 0.0, "f1": 0.0}  # official: "will receive score 0"
        else:
            scores = {
                "exact_match": 100.0 * max(exact_match_v1(prediction, g) for g in golds),
                "f1": 100.0 * max(f1_v1(prediction, g) for g in golds),
            }
        examples.append(ExampleScore(str(qid), prediction, tuple(golds), scores, missing))
    _warn_missing(examples, "squad")
    total = len(examples) or 1
    return SquadResult(
        task="squad",
        examples=examples,
        primary="f1",
        exact_match=sum(e.scores["exact_match"] for e in examples) / total,
        f1=sum(e.scores["f1"] for e in examples) / total,
    )


@dataclass
class SubsetScore:
    """Exact/F1 (0-100) over the answerable (HasAns) or unanswerable (NoAns) questions."""

    exact: float
    f1: float
    total: int


@dataclass
class BestThreshold:
    """Best scores over all no-answer thresholds (only with an ``na_prob`` file), as v2.0 reports them."""

    best_exact: float
    best_exact_thresh: float
    best_f1: float
    best_f1_thresh: float


@dataclass
class SquadV2Result(ScoreResult):
    """SQuAD v2.0: ``exact``, ``f1``, ``total``, ``HasAns_*``, ``NoAns_*`` and optional ``best_*``."""

    exact: float = 0.0
    f1: float = 0.0
    total: int = 0
    has_ans: SubsetScore | None = None
    no_ans: SubsetScore | None = None
    best: BestThreshold | None = None

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"exact": self.exact, "f1": self.f1, "total": self.total}
        for prefix, subset in (("HasAns", self.has_ans), ("NoAns", self.no_ans)):
            if subset is not None:
                out.update({f"{prefix}_exact": subset.exact, f"{prefix}_f1": subset.f1})
                out[f"{prefix}_total"] = subset.total
        if self.best is not None:
            out.update(vars(self.best))
        return out

    def statistic(self, metric: str | None = None) -> Callable[[Sequence[int]], float]:
        """``HasAns_*`` / ``NoAns_*``: the mean over the resampled questions of that kind (NaN when a
        resample holds none); everything else as in :class:`ScoreResult`."""
        import numpy as np

        name = metric or self.primary
        prefix, _, base = name.partition("_")
        if prefix not in ("HasAns", "NoAns") or base not in ("exact", "f1"):
            return super().statistic(name)
        values = np.asarray(self.per_example(base), dtype=float)
        wanted = np.asarray([bool(e.references) == (prefix == "HasAns") for e in self.examples])

        def subset_mean(indices: Sequence[int]) -> float:
            idx = np.asarray(indices, dtype=int)
            idx = idx[wanted[idx]]
            return float(values[idx].mean()) if idx.size else float("nan")

        return subset_mean


def _raw_scores_v2(golds: Sequence[str], prediction: str) -> tuple[float, float]:
    """v2.0 ``get_raw_scores`` for one question: max over non-empty golds, or [""] when none."""
    gold_answers = [g for g in golds if normalize_answer(g)] or [""]
    return (
        max(exact_match_v2(g, prediction) for g in gold_answers),
        max(f1_v2(g, prediction) for g in gold_answers),
    )


def _best_threshold(
    raw: dict[str, float],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float],
    has_ans: dict[str, bool],
) -> tuple[float, float]:
    """v2.0 ``find_best_thresh``: sweep the threshold over questions sorted by no-answer probability."""
    cur_score = best_score = float(sum(1 for v in has_ans.values() if not v))
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):  # stable: ties keep file order, as official
        if qid not in raw:
            continue
        if has_ans[qid]:
            diff = raw[qid]
        else:
            diff = -1.0 if predictions[qid] else 0.0
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / len(raw), float(best_thresh)


def _subset(examples: list[ExampleScore], ids: set[str]) -> SubsetScore | None:
    rows = [e for e in examples if e.id in ids]
    if not rows:
        return None
    n = len(rows)
    return SubsetScore(
        exact=sum(e.scores["exact"] for e in rows) / n, f1=sum(e.scores["f1"] for e in rows) / n, total=n
    )


def score_squad_v2(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> SquadV2Result:
    """Score like ``evaluate-v2.0.py``; an empty gold list marks an unanswerable question.

    `na_probs` maps question id to the model's probability that it has no answer (``--na-prob-file``);
    every predicted id must have one. Per-example ``exact``/``f1`` (0-100) are after the threshold.
    """
    unmatched_predictions(predictions, references, "squad_v2")
    given_probs = na_probs is not None
    probs = dict(na_probs) if na_probs is not None else {k: 0.0 for k in predictions}
    lacking = [k for k in predictions if k in references and k not in probs]
    if lacking:
        raise MMAgentError(
            f"the no-answer probability file has no value for {len(lacking)} predicted question(s) "
            f"(first: {lacking[:3]}); it must map every question id to a probability"
        )
    has_ans = {str(qid): bool(golds) for qid, golds in references.items()}
    raw_exact: dict[str, float] = {}
    raw_f1: dict[str, float] = {}
    examples: list[ExampleScore] = []
    for qid, golds in references.items():
        missing = qid not in predictions
        prediction = predictions.get(qid, "")
        if missing:
            scores = {"exact": 0.0, "f1": 0.0}
        else:
            raw_exact[qid], raw_f1[qid] = _raw_scores_v2(golds, prediction)
            if probs[qid] > na_prob_thresh:  # apply_no_ans_threshold
                raw_e = raw_f = float(not has_ans[qid])
            else:
                raw_e, raw_f = raw_exact[qid], raw_f1[qid]
            scores = {"exact": 100.0 * raw_e, "f1": 100.0 * raw_f}
        examples.append(ExampleScore(str(qid), prediction, tuple(golds), scores, missing))
    _warn_missing(examples, "squad_v2")
    total = len(examples)
    result = SquadV2Result(
        task="squad_v2",
        examples=examples,
        primary="f1",
        exact=sum(e.scores["exact"] for e in examples) / (total or 1),
        f1=sum(e.scores["f1"] for e in examples) / (total or 1),
        total=total,
        has_ans=_subset(examples, {k for k, v in has_ans.items() if v}),
        no_ans=_subset(examples, {k for k, v in has_ans.items() if not v}),
    )
    if given_probs and raw_exact:
        best_exact, exact_thresh = _best_threshold(raw_exact, predictions, probs, has_ans)
        best_f1, f1_thresh = _best_threshold(raw_f1, predictions, probs, has_ans)
        result.best = BestThreshold(best_exact, exact_thresh, best_f1, f1_thresh)
    return result


def _warn_missing(examples: list[ExampleScore], task: str) -> None:
    missing = [e.id for e in examples if e.missing]
    if missing:
        logger.warning(
            "%s: %d question(s) have no prediction and score 0 (first: %s)", task, len(missing), missing[:5]
        )
