"""Closed-world facts during decoding: numbers, months and weekdays only as the sources write them.

Free text is what a summary, an explanation or a chat answer about an image needs, so it cannot be
constrained to spans the way a factual answer is (:mod:`mmagent.model.extractive`). What a small model
invents in free text is mostly the checkable kind of detail: a number it rounds or makes up, a month or
weekday it remembers from elsewhere (measured on summarize_full: "March 2026" for "May 2026", a price cut
mid-number). :class:`FactsLogitsProcessor` takes that freedom away and leaves the wording free:

- every maximal run of digits the output writes must be a run of digits some source writes ("2.1" is
  the runs 2 and 1, "30,000" the runs 30 and 000), so a number can be copied, not made up; while a run is
  still a proper prefix of the sources' runs only digits may follow, so no number stops half-copied;
- month and weekday names (capitalised, as a date writes them) must occur in a source;
- number words from "two" up must name a number the sources state ("four" needs a 4 or a "four").

Proper names stay free: a capitalised word starts every sentence, and banning unknown ones would ban
ordinary words. The faithfulness metric (:mod:`mmagent.facts`) still checks them afterwards.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_DIGITS = re.compile(r"\d+")
_LETTERS = re.compile(r"[^\W\d_]+")


class FactsLogitsProcessor:
    """A transformers logits processor; one instance per `generate` call (it tracks each row's digit run)."""

    def __init__(self, tokenizer: Any, sources: Sequence[str]) -> None:
        from mmagent.facts import NUMBER_WORDS, extract, vocabulary

        text = "\n".join(sources)
        numbers = extract(text).numbers  # digits and number words ("nine" -> 9): either may be written as digits
        self.runs = frozenset(_DIGITS.findall(text)) | {n for n in numbers if n.isdigit()}
        self.prefixes = frozenset(r[:i] for r in self.runs for i in range(1, len(r) + 1))
        known = vocabulary(sources)
        table = _token_table(tokenizer)
        self.texts = table.texts
        self.digit_tokens = table.digit_tokens
        banned = [t for t, word in table.date_words.items() if word not in known]
        banned += [t for t, word in table.number_words.items()
                   if NUMBER_WORDS[word] not in numbers and word not in known]
        # numerals of other scripts ("九", "½", "Ⅳ"): the way around a banned digit, unless a source writes them
        banned += [t for t in table.other_numerals if table.texts[t].strip() not in text]
        # ... and their first bytes: a byte-level vocabulary spells "۱" as two byte tokens (measured: Qwen 0.5B
        # wrote "launched on ۱۳۹۸..." once ASCII digits were closed), unless a source has a character they start
        started = _utf8_prefixes(c for c in text if ord(c) > 0x7F)
        banned += [t for t, fragment in table.numeral_fragments.items() if fragment not in started]
        self.word_banned = banned
        self._run: list[str] = []
        self._prompt_length: int | None = None
        self._masks: dict[str, Any] = {}

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        rows = input_ids.shape[0]
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
            self._run = [""] * rows
        else:
            for row in range(rows):
                self._run[row] = _next_run(self._run[row], self.texts[int(input_ids[row, -1])]
                                           if int(input_ids[row, -1]) < len(self.texts) else "")
        for row in range(rows):
            scores[row] = scores[row] + self._mask(self._run[row], scores.shape[1], scores.dtype, scores.device)
        return scores

    def _mask(self, run: str, size: int, dtype: Any, device: Any) -> Any:
        """Additive mask for a row whose output ends in the digit run `run` (cached per run)."""
        import torch

        if run not in self._masks:
            ok = [t for t in self.digit_tokens if t < size and self._digits_ok(run, self.texts[t])]
            if run and run not in self.runs:  # a half-copied number: only the digits that continue it may follow
                mask = torch.full((size,), float("-inf"), dtype=dtype, device=device)
                mask[torch.tensor([t for t in ok if self.texts[t][:1].isdigit()], dtype=torch.long, device=device)] = 0.0
            else:
                mask = torch.zeros(size, dtype=dtype, device=device)
                allowed = set(ok)
                banned = [t for t in self.word_banned if t < size]
                banned += [t for t in self.digit_tokens if t < size and t not in allowed]
                if banned:
                    mask[torch.tensor(banned, dtype=torch.long, device=device)] = float("-inf")
            self._masks[run] = mask
        return self._masks[run]

    def _digits_ok(self, run: str, text: str) -> bool:
        """Whether appending `text` to output ending in digit run `run` keeps every digit run copyable."""
        pieces = [(m.start(), m.end()) for m in _DIGITS.finditer(text)]
        if not pieces:
            return not run or run in self.runs
        if run and pieces[0][0] != 0 and run not in self.runs:
            return False
        for i, (a, b) in enumerate(pieces):
            digits = (run if a == 0 else "") + text[a:b]
            last = i == len(pieces) - 1 and b == len(text)
            if not (digits in self.prefixes if last else digits in self.runs):
                return False
        return True


def _next_run(run: str, text: str) -> str:
    """The digit run output ends in after appending `text`."""
    if not text:
        return run
    tail = re.search(r"\d+$", text)
    if tail is None:
        return ""
    return run + text if tail.start() == 0 else tail.group()


@dataclass(frozen=True)
class _TokenTable:
    texts: tuple[str, ...]  # each vocabulary id's text
    digit_tokens: list[int]  # ids whose text holds a digit
    date_words: dict[int, str]  # id -> month or weekday it spells (capitalised whole word)
    number_words: dict[int, str]  # id -> number word it spells ("four")
    other_numerals: list[int]  # ids holding a numeral that is not an ASCII digit
    numeral_fragments: dict[int, bytes]  # id -> the unfinished UTF-8 bytes it ends in, where they may start a numeral


@functools.lru_cache(maxsize=8)
def _token_table(tokenizer: Any) -> _TokenTable:
    """Per vocabulary: each token's text, the tokens holding a digit, and the whole-word date and number
    tokens ("␣March", "␣Tuesdays", "␣four") — the words the processor may have to ban."""
    from mmagent.facts import DAYS, MONTHS, NUMBER_WORDS, word_key
    from mmagent.model.extractive import _vocab_texts

    texts = _vocab_texts(tokenizer)
    special = set(tokenizer.all_special_ids)
    digit_tokens, dates, numbers, others, fragments = [], {}, {}, [], {}
    full_months = {m for m in MONTHS if len(m) > 4 or m in ("may", "june", "july")}
    numeral_starts = _numeral_prefixes()
    for i, text in enumerate(texts):
        if i in special:
            continue
        if "\ufffd" in text:  # a byte-level piece of a character
            fragment = _unfinished(_token_bytes(tokenizer, i))
            if fragment in numeral_starts:
                fragments[i] = fragment
            continue
        if any(c.isnumeric() and not ("0" <= c <= "9") for c in text):
            others.append(i)
            continue
        if any(c.isdigit() for c in text):
            digit_tokens.append(i)
            continue
        word = text.strip()
        if not word or not _LETTERS.fullmatch(word):
            continue
        lower = word.lower()
        if word[0].isupper() and word_key(lower) in DAYS | full_months:
            dates[i] = word_key(lower)
        elif lower in NUMBER_WORDS and NUMBER_WORDS[lower] not in ("0", "1"):
            numbers[i] = lower
    return _TokenTable(texts, digit_tokens, dates, numbers, others, fragments)


def _utf8_prefixes(chars: Any) -> frozenset[bytes]:
    """The proper, non-empty prefixes of each character's UTF-8 bytes."""
    return frozenset(b[:n] for b in {c.encode("utf-8") for c in chars} for n in range(1, len(b)))


@functools.lru_cache(maxsize=1)
def _numeral_prefixes() -> frozenset[bytes]:
    """The byte prefixes that can begin a numeral other than 0-9 ("۱", "九", "Ⅳ", "½")."""
    return _utf8_prefixes(chr(c) for c in range(0x80, 0x110000)
                          if not 0xD800 <= c <= 0xDFFF and chr(c).isnumeric())


def _unfinished(raw: bytes | None) -> bytes | None:
    """The bytes `raw` ends in that start a UTF-8 character without finishing it, or None."""
    if not raw:
        return None
    for back in range(1, min(4, len(raw)) + 1):
        lead = raw[-back]
        if lead & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        length = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4 if lead >> 3 == 0b11110 else 1
        return raw[-back:] if back < length else None
    return None


def _token_bytes(tokenizer: Any, token: int) -> bytes | None:
    """The raw bytes of a byte-level BPE token (GPT-2's byte alphabet) or a byte-fallback piece ("<0xDB>")."""
    piece = tokenizer.convert_ids_to_tokens(token)
    fallback = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece or "")
    if fallback:
        return bytes([int(fallback.group(1), 16)])
    try:
        return bytes(_BYTE_OF[c] for c in piece)
    except (KeyError, TypeError):
        return None


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted (byte-level BPE vocabularies use it)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    return {**{chr(b): b for b in kept}, **{chr(256 + n): b for n, b in enumerate(moved)}}


_BYTE_OF = _byte_alphabet()
