"""ROUGE (rouge-score) and WER/CER (jiwer + Whisper normaliser): hand-computed values."""

from __future__ import annotations

import pytest
from mmagent.evals.metrics.rouge import score_rouge
from mmagent.evals.metrics.speech import normalize_text, score_speech


def test_rouge_by_hand():
    result = score_rouge({"a": ["The cat sat on the mat"]}, {"a": "a cat sat on mat"})
    # tokens ref: the cat sat on the mat (6); cand: a cat sat on mat (5)
    # overlap (clipped): cat sat on mat = 4
    p, r = 4 / 5, 4 / 6
    assert result.scores["rouge1"] == pytest.approx(2 * p * r / (p + r))
    assert result.scores["rouge1_precision"] == pytest.approx(p)
    # bigrams ref: the-cat cat-sat sat-on on-the the-mat (5); cand: a-cat cat-sat sat-on on-mat (4); overlap 2
    p2, r2 = 2 / 4, 2 / 5
    assert result.scores["rouge2"] == pytest.approx(2 * p2 * r2 / (p2 + r2))
    # LCS: cat sat on mat = 4 -> same as rouge1 here
    assert result.scores["rougeL"] == pytest.approx(2 * p * r / (p + r))


def test_rouge_stemming_is_on():
    result = score_rouge({"a": ["cats running"]}, {"a": "cat runs"})
    assert result.scores["rouge1"] == pytest.approx(1.0)  # cats->cat, running->run, runs->run


def test_rougelsum_splits_sentences_on_newlines():
    ref = "the cat sat\nthe dog ran"
    pred = "the dog ran\nthe cat sat"  # sentence order swapped
    result = score_rouge({"a": [ref]}, {"a": pred})
    # plain LCS over the whole text: "the cat sat" or "the dog ran" = 3 of 6 tokens
    assert result.scores["rougeL"] == pytest.approx(3 / 6)
    # summary-level LCS matches each reference sentence against the union of candidate sentences: all 6
    assert result.scores["rougeLsum"] == pytest.approx(1.0)


def test_rouge_takes_the_best_reference_and_averages_examples():
    result = score_rouge({"a": ["x y", "cat dog"], "b": ["cat"]}, {"a": "cat dog", "b": "dog"})
    assert result.examples[0].scores["rouge1"] == pytest.approx(1.0)
    assert result.examples[1].scores["rouge1"] == 0.0
    assert result.scores["rouge1"] == pytest.approx(0.5)


def test_whisper_normaliser_is_applied():
    assert normalize_text("Mr. Smith, it's 2 o'clock!") == normalize_text("mister smith it is 2 o'clock")


def test_wer_by_hand_is_corpus_level():
    refs = {"a": ["Hello Mr. Smith, how are you?"], "b": ["I have two dogs."]}
    preds = {"a": "hello mister smith how you", "b": "i have 2 dogs and a cat"}
    result = score_speech(refs, preds)
    # a: 6 reference words, 1 deletion
    # b: "i have 2 dogs" (4 words) vs "i have 2 dogs and a cat": 3 insertions
    assert result.wer == pytest.approx((1 + 3) / (6 + 4))
    assert [e.scores["wer"] for e in result.examples] == pytest.approx([1 / 6, 3 / 4])
    # the bootstrap statistic reproduces the corpus rate on the full sample
    assert result.statistic()(range(2)) == pytest.approx(result.wer)
    assert result.statistic("cer")(range(2)) == pytest.approx(result.cer)
    assert result.higher_is_better is False and result.worst(1)[0].id == "b"


def test_cer_by_hand():
    result = score_speech({"a": ["abcd"]}, {"a": "abed"})
    assert result.cer == pytest.approx(1 / 4) and result.wer == pytest.approx(1.0)


def test_missing_transcript_is_all_deletions():
    result = score_speech({"a": ["alpha beta gamma"], "b": ["delta"]}, {"a": "alpha beta gamma"})
    assert result.wer == pytest.approx(1 / 4) and result.missing == ["b"]
