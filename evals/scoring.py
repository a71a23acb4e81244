"""Score a predictions file against a references file for one task: the engine of ``mmagent eval score``.

Each task names its reference reader, its prediction reader and its metric family; see
:mod:`mmagent.evals.formats` for the file formats and :mod:`mmagent.evals.metrics` for the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmagent.evals import formats
from mmagent.evals.metrics.base import ScoreResult

from mmagent.errors import MMAgentError

DEFAULT_KS = (1, 5, 10)


@dataclass(frozen=True)
class ScoreOptions:
    """Task-specific knobs: SQuAD v2.0 no-answer probabilities, retrieval cut-offs, ANLS threshold."""

    na_prob_file: Path | None = None
    na_prob_thresh: float = 1.0
    ks: tuple[int, ...] = DEFAULT_KS
    anls_threshold: float = 0.5


@dataclass(frozen=True)
class Task:
    """How to read and score one task (`description` names its metrics and scale for the CLI help)."""

    name: str
    description: str
    score: Callable[[Path, Path, ScoreOptions], ScoreResult]


def _answers(path: Path) -> tuple[dict[str, tuple[str, ...]], list[formats.QAExample]]:
    examples = formats.read_qa_file(path)
    return {e.id: e.answers for e in examples}, examples


def _squad(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.squad import score_squad_v1

    golds, _ = _answers(refs)
    return score_squad_v1(golds, _matched(formats.read_predictions(preds), golds, preds, refs))


def _squad_v2(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.squad import score_squad_v2

    golds, _ = _answers(refs)
    predictions = _matched(formats.read_predictions(preds), golds, preds, refs)
    na_probs = formats.read_na_probs(opts.na_prob_file) if opts.na_prob_file else None
    return score_squad_v2(golds, predictions, na_probs, opts.na_prob_thresh)


def _vqa(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.vqa import score_vqa

    golds, examples = _answers(refs)
    answer_types = {e.id: e.answer_type for e in examples if e.answer_type}
    question_types = {e.id: e.question_type for e in examples if e.question_type}
    predictions = _matched(formats.read_predictions(preds), golds, preds, refs)
    return score_vqa(golds, predictions, answer_types, question_types)


def _anls(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.anls import score_anls

    golds, _ = _answers(refs)
    return score_anls(
        golds, _matched(formats.read_predictions(preds), golds, preds, refs), opts.anls_threshold
    )


def _rouge(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.rouge import score_rouge

    references = formats.read_text_references(refs)
    return score_rouge(references, _matched(formats.read_predictions(preds), references, preds, refs))


def _wer(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.speech import score_speech

    references = formats.read_text_references(refs)
    return score_speech(references, _matched(formats.read_predictions(preds), references, preds, refs))


def _classification(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.classification import score_classification

    labels = formats.read_labels(refs)
    return score_classification(labels, _matched(formats.read_predictions(preds), labels, preds, refs))


def _retrieval(preds: Path, refs: Path, opts: ScoreOptions) -> ScoreResult:
    from mmagent.evals.metrics.retrieval import score_retrieval

    relevance = formats.read_relevance(refs)
    return score_retrieval(relevance, _matched(formats.read_rankings(preds), relevance, preds, refs), opts.ks)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("squad", "SQuAD v1.1 exact_match, f1 (0-100)", _squad),
        Task(
            "squad_v2",
            "SQuAD v2.0 exact, f1, HasAns_*, NoAns_*, best_* with --na-prob-file (0-100)",
            _squad_v2,
        ),
        Task("vqa", "VQA accuracy, 10-choose-9 with the official normalisation (0-100)", _vqa),
        Task("anls", "ANLS with tau 0.5 (0-1)", _anls),
        Task("rouge", "rouge1, rouge2, rougeL, rougeLsum F-measure, stemmed (0-1)", _rouge),
        Task("wer", "corpus wer and cer after Whisper's English normaliser (fractions)", _wer),
        Task(
            "classification",
            "accuracy, macro_precision, macro_recall, macro_f1, confusion matrix (0-1)",
            _classification,
        ),
        Task("retrieval", "recall@k, mrr, ndcg@k (0-1)", _retrieval),
    )
}

FORMATS_HELP = "\n\n".join(
    [
        ("Tasks: {tasks}."),
        (
            "References (--references): squad, squad_v2, vqa, anls take a SQuAD dev JSON, a VQA annotations "
            'JSON (10 answers per question), a DocVQA JSON {{"data": [{{"questionId", "answers"}}]}} or a QA '
            'JSONL file (*.jsonl, {{"id", "question", "answers": [...]}} a line); rouge and wer take JSONL '
            '{{"id", "reference"}} or {{"id", "references": [...]}}; classification JSONL {{"id", "label"}}; '
            'retrieval JSONL {{"id", "relevant": [doc ids] or {{doc id: grade}}}}.'
        ),
        (
            "Predictions (--predictions): a JSON object {{id: text}} (SQuAD's format), or a JSON list / "
            'JSONL of records with an id ("id", "question_id" or "questionId") and a text ("prediction" or '
            '"answer"), e.g. VQA\'s [{{"question_id", "answer"}}]; retrieval: {{id: [doc ids]}} or JSONL '
            '{{"id", "ranked": [doc ids, best first]}}.'
        ),
    ]
).format(tasks="; ".join(f"{t.name} = {t.description}" for t in TASKS.values()))


def _matched(
    predictions: Mapping[str, Any], references: Mapping[str, Any], preds: Path, refs: Path
) -> Mapping[str, Any]:
    """Refuse a predictions file that shares no id with the references (wrong file, or renamed ids)."""
    if references and predictions and not set(predictions) & set(references):
        raise formats.EvalDataError(
            f"none of the {len(predictions)} ids in predictions file '{preds}' matches any of the "
            f"{len(references)} ids in references file '{refs}' (predictions start {_head(predictions)}, "
            f"references start {_head(references)}); check that both files are for the same data"
        )
    return predictions


def _head(ids: Sequence[str] | Mapping[str, Any]) -> list[str]:
    return list(ids)[:3]


def score_files(
    task: str, predictions: Path, references: Path, options: ScoreOptions | None = None
) -> ScoreResult:
    """Read both files and score them with `task`'s official metric."""
    if task not in TASKS:
        raise MMAgentError(f"unknown eval task {task!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[task].score(Path(predictions), Path(references), options or ScoreOptions())
