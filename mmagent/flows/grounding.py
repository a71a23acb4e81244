"""Answers quoted from passages: the extractive step the qa and support flows share.

The model is asked for the shortest phrase that answers, and decoding is constrained to verbatim spans
of the passages (:mod:`mmagent.model.extractive`), so whatever it writes is text a passage holds, with a
known passage and offsets. It may also write :data:`NO_SPAN_REPLY` instead: a near-miss question (the
passage is about the right product, but not the asked fact) passes every retrieval gate, and only the
model reading the passage can tell that it does not say. A span of function words only counts as no
answer too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from mmagent.images import ImageInput
from mmagent.model.extractive import Span, is_none, locate
from mmagent.flows.prompting import FENCE_MARKERS, fence

NO_SPAN_REPLY = "unknown"  # what an extractive prompt tells the model to write when the passages do not say
EXTRACT_TOKENS = 32  # a span longer than this is a passage, not an answer
# Logit added to NO_SPAN_REPLY's first token. Chosen on half of qa_extractive (the documents at even positions
# in title order, qwen2.5-coder-0.5b): 0 and 0.5 tied on F1 there and the larger, which declines more, was
# taken; from 1.0 on, answerable questions start being declined (benchmarks/RESULTS.md, "Declining").
NONE_BIAS = 0.5
_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_LEAD = re.compile(r"^(?:(?:and|so|ok|okay|please|now|then|also|but)\b[,\s]*|(?:tell|show) me\b\s*|"
                   r"(?:do|can|could) you (?:tell|show) me\b\s*|i (?:want|would like) to know\b\s*)+", re.IGNORECASE)
_FACTUAL = re.compile(r"^(?:(?:in|on|at|for|from|by|to|with|within|since|until|during) )?"
                      r"(?:who|whom|whose|when|where|which|what|"
                      r"how (?:many|much|long|old|far|big|large|tall|often|early|late|soon|fast|heavy)|name|list)\b",
                      re.IGNORECASE)
# the wh-word after a short lead phrase: "Up to what amount...", "Customers in which countries..."
_FACTUAL_INSIDE = re.compile(r"^(?:[\w'’-]+ ){1,4}(?:which|what|whose|how (?:many|much|long|old|far|big|large|tall|"
                             r"often|heavy))\b", re.IGNORECASE)
_NOT_FACTUAL_LEAD = re.compile(r"^(?:why|how|explain|describe|summari[sz]e|compare|discuss|tell me about|"
                               r"what do you|give me an overview|about)\b", re.IGNORECASE)
_YES_NO = re.compile(r"^(?:is|are|was|were|does|do|did|can|could|will|would|has|have|had|should|may|must)\b",
                     re.IGNORECASE)
_OPINION = re.compile(r"^what (?:do|does|did|should|would|could|can|might) (?:you|i|we)\b|^what (?:if|about)\b|"
                      r"^what'?s? (?:your|the best|better)\b",
                      re.IGNORECASE)


def shown(excerpt: str) -> str:
    """A passage's text exactly as a fenced prompt shows it (stripped, marker look-alikes neutralised),
    which is what an extractive span must be quoted from."""
    return fence(excerpt, "").split("\n", 1)[1].rsplit("\n", 1)[0]


def extract_span(backend: Any, messages: list[dict[str, Any]], passages: Sequence[str], question: str, *,
                 images: Iterable[ImageInput] = (), adapter: str | None = None,
                 max_new_tokens: int | None = None) -> Span | None:
    """The answer to `question` as a verbatim span of `passages` (as :func:`shown` renders them), or
    None when the model says they do not hold it. `messages` must show the passages and tell the model
    to reply NO_SPAN_REPLY when they do not answer."""
    from mmagent.memory.bm25 import terms

    gen = {"max_new_tokens": min(max_new_tokens or EXTRACT_TOKENS, EXTRACT_TOKENS),
           "spans_from": tuple(passages), "banned": FENCE_MARKERS,
           "span_none": NO_SPAN_REPLY, "span_none_bias": NONE_BIAS,
           # an answer restates what the question does not already say
           "span_skip": tuple({w.lower() for w in _WORD.findall(question)}),
           # the default penalty would punish exactly the prompt tokens a span must copy
           "repetition_penalty": 1.0}
    text = "".join(backend.generate(messages, images=images, adapter=adapter, **gen))
    if is_none(text, NO_SPAN_REPLY):
        return None
    span = locate(text, passages)
    if span is None or not terms(span.text):  # empty or only function words: no answer in the passages
        return None
    if not fits(question, span.text):  # "How long is the cord?" answered "2200 watts": the passage does not say
        return None
    return span


# Units by what they measure: a span that measures something else than the question asks about is a
# near-miss (the passage states a neighbouring fact), the commonest invented-looking answer a model quotes.
_UNITS = {
    "weight": r"kg|kilos?|kilograms?|grams?|g|tonnes?|tons?|lbs?|pounds?",
    "length": r"mm|cm|m|km|metres?|meters?|centimetres?|centimeters?|millimetres?|kilometres?|kilometers?|"
              r"inch(?:es)?|foot|feet|miles?",
    "duration": r"seconds?|minutes?|hours?|days?|weeks?|months?|years?|nights?|decades?",
    "money": r"euros?|cents?|dollars?|€|\$|£|free",
    "power": r"watts?|w|kw|kilowatts?",
    "volume": r"litres?|liters?|ml|l",
    "loudness": r"decibels?|db",
    "temperature": r"degrees?|°c|°f|kelvin",
    "share": r"percent|per cent|%",
}
_UNIT_RES = {kind: re.compile(rf"(?<![^\W\d_])(?:{units})(?![^\W\d_])", re.IGNORECASE) for kind, units in _UNITS.items()}
_ASKS = [  # (question pattern, the kinds of quantity that answer it)
    (re.compile(r"\bhow heavy\b|\bweigh", re.IGNORECASE), {"weight"}),
    (re.compile(r"\bhow (?:tall|high|wide|deep)\b", re.IGNORECASE), {"length"}),
    (re.compile(r"\bhow (?:long|far)\b", re.IGNORECASE), {"length", "duration"}),  # "how far ahead": days
    (re.compile(r"\bhow old\b", re.IGNORECASE), {"duration"}),
    (re.compile(r"\bhow loud\b", re.IGNORECASE), {"loudness"}),
    # a price asked for ("What does X cost?", "How much is paid...?"), not pay or price as a topic ("How many
    # weeks of full pay...?", "Within how many days must a lower price be found?")
    (re.compile(r"\bcosts?\b|\bhow much\b.*\b(?:pay|paid|charged?|earn\w*|spen[dt]|fee|surcharge|budget)\b|"
                r"\bwhat (?:is|are|was|were) the (?:price|fee|surcharge|budget|cost)\b|\bwhat did .* earn\b",
                re.IGNORECASE), {"money", "share"}),
]
_YEAR = re.compile(r"(?:19|20)\d\d")


def fits(question: str, answer: str) -> bool:
    """Whether a quoted answer is the kind of quantity the question asks for. False only on clear
    evidence: the answer names a unit of another kind and none of the asked kind ("How much does an audit
    cost?" → "18 months"), or a "how many" is answered by a bare year ("How many employees?" → "2027").
    Answers without units, and questions that ask for no quantity, always fit."""
    text = answer.strip()
    if re.search(r"\bhow many\b", question, re.IGNORECASE) and _YEAR.fullmatch(text) \
            and not re.search(r"\bhow many years\b", question, re.IGNORECASE):
        return False
    for pattern, kinds in _ASKS:
        if pattern.search(question):
            found = {kind for kind, unit in _UNIT_RES.items() if unit.search(text)}
            return not found or bool(found & kinds)
    return True


def sentence_of(span: Span, passages: Sequence[str]) -> str:
    """The whole sentence of its passage that holds `span`, verbatim: a reply that reads as a sentence
    and still says nothing the passage does not."""
    text = passages[span.passage]
    starts = [m.end() for m in _SENTENCE_END.finditer(text, 0, span.start)]
    start = starts[-1] if starts else 0
    end_match = _SENTENCE_END.search(text, span.end)
    end = end_match.end() if end_match else len(text)
    return text[start:end].strip()


def is_yes_no(question: str) -> bool:
    """Whether `question` asks yes or no ("Does the Brisa work with an app?", "Can gift cards be used in
    partner shops?"): the form most near-miss questions take, since they ask about a detail beside what the
    passage does say."""
    text = _LEAD.sub("", " ".join(question.split())).strip()
    return bool(_YES_NO.match(text))


def is_factual(question: str) -> bool:
    """Whether `question` asks for a fact a passage can state in a few words (who, when, where, which,
    how many/much/long..., what — also after "tell me" or a leading preposition): what ``auto`` answers
    extractively; also when a short lead phrase comes first ("Up to what amount...", "Customers in which
    countries..."). Why/how questions, yes/no questions, opinions and requests to explain are not."""
    text = _LEAD.sub("", " ".join(question.split())).strip()
    if _OPINION.match(text):
        return False
    if _FACTUAL.match(text):
        return True
    return (bool(_FACTUAL_INSIDE.match(text)) and not _NOT_FACTUAL_LEAD.match(text)
            and not is_yes_no(text) and not _OPINION.search(text))
