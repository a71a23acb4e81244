"""Metrics that match the official scorers; one module per family, results as dataclasses.

============== ================================ ===================================== =========
family         function                         official names                        scale
============== ================================ ===================================== =========
SQuAD v1.1     squad.score_squad_v1             exact_match, f1                       0-100
SQuAD v2.0     squad.score_squad_v2             exact, f1, total, HasAns_*, NoAns_*   0-100
VQA            vqa.score_vqa                    accuracy (+ accuracy_<answer type>)   0-100
ANLS           anls.score_anls                  anls                                  0-1
ROUGE          rouge.score_rouge                rouge1, rouge2, rougeL, rougeLsum     0-1
WER/CER        speech.score_speech              wer, cer                              fraction
retrieval      retrieval.score_retrieval        recall@k, mrr, ndcg@k                 0-1
classification classification.score_...        accuracy, macro_precision/recall/f1   0-1
faithfulness   faithfulness.score_faithfulness  unsupported_claim_rate (ours)         0-1, lower
============== ================================ ===================================== =========

The runner adds a ``faithfulness`` section beside the task metric of every suite that generates text
(squad, squad_v2, rouge, support, pipeline): the share of outputs stating a number, amount, date or
proper name that none of their sources holds.

Every result keeps one :class:`ExampleScore` per example (``result.examples``) for bootstraps
(``result.confidence_interval()``, :mod:`.bootstrap`) and error analysis (``result.worst(10)``).
Heavy dependencies (rouge-score, jiwer, scikit-learn, rapidfuzz) load inside the functions that use them.
"""

from mmagent.evals.metrics.base import ConfidenceInterval, ExampleScore, ScoreResult

__all__ = ["ConfidenceInterval", "ExampleScore", "ScoreResult"]
