"""VQA accuracy exactly as the official VQA evaluation (GT-Vision-Lab ``vqaEval.py``, used on EvalAI).

For each question with n human answers (10 in VQAv2), accuracy is the mean over the n leave-one-out
subsets of n-1 annotators of ``min(1, #matching answers / 3)``, i.e. the 10-choose-9 averaging.

Normalisation follows the official code, quirks included, because they change scores:

- the prediction always goes through ``processPunctuation`` then ``processDigitArticle`` (lowercase,
  number words to digits, articles dropped, contractions restored: "dont" -> "don't");
- the human answers go through ``processPunctuation`` only, and only when they are not all identical;
- the period regex ``(?!<=\\d)(\\.)(?!\\d)`` is a look-*ahead* typo for a look-behind, so it removes every
  period not followed by a digit; and ``re.UNICODE`` is passed as the ``count`` argument, so at most 32
  periods are removed. Both are kept.

The official overall accuracy is reported on the 0-100 scale (the script rounds to 2 decimals when
printing; ``accuracy`` here is unrounded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mmagent.evals.metrics.base import ExampleScore, ScoreResult, unmatched_predictions

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_COUNT = int(re.UNICODE)  # official passes re.UNICODE (32) positionally as `count`


def process_punctuation(text: str) -> str:
    """Official ``processPunctuation``: drop or space out punctuation, then strip periods (see module doc)."""
    out = text
    has_digit_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, _PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """Official ``processDigitArticle``: lowercase, number words -> digits, drop articles, contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_prediction(answer: str) -> str:
    """What the official script compares for a model answer."""
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(answer))


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy (0-1) of one answer against the human answers of one question."""
    if not answers:
        return 0.0
    pred = normalize_prediction(prediction)
    gts = list(answers)
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    matches = [g == pred for g in gts]
    total = sum(matches)
    # leave-one-out over annotators: the other n-1 answers contain `total - matches[i]` matches
    return sum(min(1.0, (total - m) / 3.0) for m in matches) / len(gts)


@dataclass
class VqaResult(ScoreResult):
    """``accuracy`` (overall, 0-100), and per answer type / question type when the annotations give them."""

    accuracy: float = 0.0
    per_answer_type: dict[str, float] = field(default_factory=dict)
    per_question_type: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        out = {"accuracy": self.accuracy}
        out.update({f"accuracy_{k}": v for k, v in sorted(self.per_answer_type.items())})
        return out


def _by_group(examples: list[ExampleScore], groups: Mapping[str, str]) -> dict[str, float]:
    buckets: dict[str, list[float]] = {}
    for e in examples:
        if e.id in groups:
            buckets.setdefault(groups[e.id], []).append(e.scores["accuracy"])
    return {k: sum(v) / len(v) for k, v in buckets.items()}


def score_vqa(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    answer_types: Mapping[str, str] | None = None,
    question_types: Mapping[str, str] | None = None,
) -> VqaResult:
    """Score ``{question_id: answer}`` against ``{question_id: [human answers]}``; missing answers score 0.

    (The official script requires an answer for every question; a missing one scores 0 here.)
    """
    unmatched_predictions(predictions, references, "vqa")
    examples = []
    for qid, answers in references.items():
        missing = qid not in predictions
        prediction = predictions.get(qid, "")
        accuracy = 0.0 if missing else 100.0 * vqa_accuracy(prediction, answers)
        examples.append(ExampleScore(str(qid), prediction, tuple(answers), {"accuracy": accuracy}, missing))
    n = len(examples) or 1
    return VqaResult(
        task="vqa",
        examples=examples,
        primary="accuracy",
        accuracy=sum(e.scores["accuracy"] for e in examples) / n,
        per_answer_type=_by_group(examples, answer_types or {}),
        per_question_type=_by_group(examples, question_types or {}),
    )
