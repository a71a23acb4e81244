"""Checkable facts in text: numbers, amounts, dates and proper names, extracted deterministically.

Two jobs need the same extraction, so it lives here, below both: the qa flow refuses to credit a passage
whose facts disagree with an answer (issue 17, bug 4), and the evals' faithfulness metric counts outputs
that state a fact found in none of their sources. What counts as a fact:

- a number (``12``, ``1,200.50``, ``8:30``, ``30%``, ``€12``, ``1st``, number words up to ninety),
  normalised to digits so "twelve", "12" and "12.0" are one fact;
- a month or weekday name (the parts of a date beside its numbers), lower-cased; "may" and "march" only
  when capitalised mid-sentence, since they are mostly the modal and the verb;
- a proper name: a capitalised word that does not start a sentence (or an all-caps acronym), lower-cased,
  with a possessive 's dropped. Sentence-initial words are skipped because capitals there say nothing.

It is a word-level check, not understanding: "12 euros" supports "12 dollars" (the 12 matches and
"dollars" is not a name). It errs towards silence on paraphrase and towards flagging invented specifics,
which is what a small model's unfaithfulness mostly is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen twenty").split()
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_WORDS)} | {
    w: str(10 * i) for i, w in enumerate("_ _ _ thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
MONTHS = frozenset("january february march april may june july august september october november december "
                   "jan feb mar apr jun jul aug sep sept oct nov dec".split())
DAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
# Month names that are also common words ("the assistant may grant", "march on"): a date only when written
# with a capital away from a sentence start, where the word is not the modal or the verb.
AMBIGUOUS_MONTHS = frozenset({"may", "march"})
# Capitalised words that are not names wherever they stand (pronoun, titles and interjections).
NOT_NAMES = frozenset("i i'm i've i'd i'll mr mrs ms dr st ok yes no".split())

# Function words: they match everywhere (keyword search ignores them) and are never an answer by themselves
# (an extractive span does not start with one, a span of only these means "no answer").
FUNCTION_WORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
off on once only or other our ours out over own same she should so some such than that the their theirs them then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself tell please many much""".split())
_CITATION = re.compile(r"\[\d{1,2}\]")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*(?:st|nd|rd|th)?")
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_][\w'’-]*|[.!?:;\n]", re.UNICODE)
_ABBREVIATIONS = frozenset("mr mrs ms dr st prof no vs etc".split())  # a full stop after these ends nothing


@dataclass(frozen=True)
class Facts:
    """The normalised facts of a text, by kind."""

    numbers: frozenset[str]
    dates: frozenset[str]  # month and weekday names
    names: frozenset[str]

    def all(self) -> frozenset[str]:
        return self.numbers | self.dates | self.names


def _number(raw: str) -> str:
    """'1,200.50' → '1200.5', '8:30' → '8:30', '12.0' → '12', '3rd' → '3'."""
    raw = re.sub(r"(st|nd|rd|th)$", "", raw.lower())
    if ":" in raw:
        return raw
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", raw):
        raw = raw.replace(",", "")
    raw = raw.replace(",", ".")
    if "." in raw:
        whole, _, frac = raw.partition(".")
        frac = frac.rstrip("0")
        raw = f"{whole}.{frac}" if frac else whole
    return raw.lstrip("0") or "0"


def word_key(word: str) -> str:
    """The form a word is compared in: lower case, possessive dropped, a plural weekday made singular."""
    word = word.lower().replace("’", "'")
    if word.endswith("s") and word[:-1] in DAYS:  # "on Tuesdays" states the weekday "Tuesday"
        return word[:-1]
    return word[:-2] if word.endswith("'s") else word


def extract(text: str) -> Facts:
    """The numbers, date words and proper names `text` states (citation marks like [1] ignored)."""
    text = _CITATION.sub(" ", text or "")
    numbers = {_number(m.group()) for m in _NUMBER.finditer(text)}
    dates, names = set(), set()
    initial, previous = True, ""
    for token in _TOKEN.findall(text):
        if token in ".!?:;\n":
            initial = initial or token == "\n" or previous not in _ABBREVIATIONS
            continue
        key = word_key(token)
        if key in NUMBER_WORDS:
            numbers.add(NUMBER_WORDS[key])
        elif key in AMBIGUOUS_MONTHS:
            if not initial and token[0].isupper():
                dates.add(key)
        elif key in MONTHS or key in DAYS:
            dates.add(key)
        elif not initial and token[0].isupper() and len(token) > 1 and key not in NOT_NAMES:
            names.add(key)
        initial, previous = False, key
    return Facts(frozenset(numbers), frozenset(dates), frozenset(names))


def vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Every fact and every lower-cased word of `texts`: what a claim may be supported by. Names are
    looked up among all words, since a source may mention a name sentence-initially or in lower case."""
    out: set[str] = set()
    for text in texts:
        out |= extract(text).all()
        out.update(word_key(w) for w in re.findall(r"[^\W\d_][\w'’-]*", text or ""))
    return frozenset(out)


def unsupported(output: str, sources: Iterable[str]) -> list[str]:
    """The facts `output` states that none of `sources` (passages, question, image text) holds, sorted."""
    known = vocabulary(sources)
    return sorted(f for f in extract(output).all() if f not in known)


def disagrees(answer: str, passage: str) -> bool:
    """Whether `passage` states facts of a kind the answer states, but not the answer's: it says 12 euros
    where the answer says 15. A passage silent on that kind neither agrees nor disagrees."""
    said, held = extract(answer), extract(passage)
    words = vocabulary([passage])
    for kind in ("numbers", "dates", "names"):
        mine, theirs = getattr(said, kind), getattr(held, kind)
        if mine and theirs and not mine <= words:
            return True
    return False
