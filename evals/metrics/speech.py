"""WER and CER through ``jiwer``, after Whisper's English text normaliser (as the Whisper paper scores).

Both sides go through ``whisper_normalizer.english.EnglishTextNormalizer`` (lowercase, spelling
standardised, "Mr." -> "mister", numbers to digits, punctuation dropped ...). The aggregate is the
*corpus* rate jiwer computes over all examples (sum of edits / sum of reference words or characters),
not the mean of per-example rates; :meth:`SpeechResult.statistic` resamples that same ratio, so a
bootstrap CI brackets the corpus WER. Rates are fractions (0.12 = 12 %), as jiwer returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

from mmagent.errors import MMAgentError, require


@lru_cache(maxsize=1)
def _normalizer() -> Callable[[str], str]:
    english = require("whisper_normalizer.english", "eval")
    return english.EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """Whisper's English normalisation (what WER/CER compare)."""
    return _normalizer()(text)


@dataclass
class SpeechResult(ScoreResult):
    """Corpus ``wer`` and ``cer`` (fractions). Per example: ``wer``/``cer`` and the counts behind them."""

    wer: float = 0.0
    cer: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {"wer": self.wer, "cer": self.cer}

    def statistic(self, metric: str | None = None) -> Callable[[Sequence[int]], float]:
        """Corpus rate on a resample: sum of edits / sum of reference units (``wer`` or ``cer``)."""
        import numpy as np

        name = metric or self.primary
        if name not in ("wer", "cer"):
            return super().statistic(name)
        unit = "words" if name == "wer" else "chars"
        edits = np.asarray(self.per_example(f"{name}_edits"), dtype=float)
        units = np.asarray(self.per_example(f"ref_{unit}"), dtype=float)

        def rate(indices: Sequence[int]) -> float:
            idx = np.asarray(indices, dtype=int)
            total = units[idx].sum()
            return float(edits[idx].sum() / total) if total else float("nan")

        return rate


def _edits(output) -> float:  # jiwer WordOutput / CharacterOutput
    return float(output.substitutions + output.deletions + output.insertions)


def score_speech(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> SpeechResult:
    """Score ``{id: transcript}`` against ``{id: [reference]}`` (one reference each; a missing
    transcript counts as empty, i.e. all deletions)."""
    jiwer = require("jiwer", "eval")
    unmatched_predictions(predictions, references, "wer")
    ids, refs, hyps, missing = [], [], [], []
    for rid, ref in references.items():
        if len(ref) != 1:
            raise MMAgentError(
                f"example {rid!r} has {len(ref)} references; WER/CER take exactly one reference transcript"
            )
        ids.append(str(rid))
        refs.append(normalize_text(ref[0]))
        hyps.append(normalize_text(predictions.get(rid, "")))
        missing.append(rid not in predictions)
    if not ids:
        raise MMAgentError("no reference transcripts to score")
    if not any(refs):
        raise MMAgentError("every reference transcript is empty after normalisation; WER is undefined")
    examples = []
    for i, rid in enumerate(ids):
        words = jiwer.process_words(refs[i], hyps[i])
        chars = jiwer.process_characters(refs[i], hyps[i])
        n_words, n_chars = len(refs[i].split()), len(refs[i])
        scores = {
            "wer": words.wer,
            "cer": chars.cer,
            "wer_edits": _edits(words),
            "cer_edits": _edits(chars),
            "ref_words": float(n_words),
            "ref_chars": float(n_chars),
        }
        examples.append(
            ExampleScore(rid, predictions.get(rid, ""), (references[rid][0],), scores, missing[i])
        )
    return SpeechResult(
        task="wer",
        examples=examples,
        primary="wer",
        higher_is_better=False,
        wer=float(jiwer.wer(refs, hyps)),
        cer=float(jiwer.cer(refs, hyps)),
    )
