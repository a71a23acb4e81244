"""Extractive decoding: the answer is forced to be a verbatim span of given passages, token by token.

A small model asked a factual question over retrieved passages writes fluent text that is often not in
them (a price, a name, a date it remembers or invents). :class:`SpanLogitsProcessor` removes that
freedom during decoding: at each step only the tokens that continue *some occurrence* of the
answer-so-far inside the passages' token ids stay possible, plus an end-of-answer token. The first token
may start at any passage position, so the model still chooses *which* span; it cannot choose words the
passages do not hold. The result is a verbatim substring with a known passage and character offsets
(:func:`locate`), so its citation is exact rather than inferred.

Passages are tokenized on their own, as the flows render them (each fenced passage starts on its own
line, so its first word carries no leading space, and every later word does). An answer usually starts
mid-passage at a word the passage spells with a leading space (" Paris") while the model, right after
the assistant header, prefers the spelling without one ("Paris"); the first step therefore also allows
the space-less variant of every passage token that has a single-token one.

The state is a set of (passage, position) pairs per sequence, advanced with each generated token, so
the work per step is proportional to the number of live occurrences (a few, after the first token).
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
_WORD = re.compile(r"[\w'’-]+")

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<end_of_turn>")


@dataclass(frozen=True)
class Span:
    """A verbatim answer span: `text == passages[passage][start:end]` (0-based passage index)."""

    text: str
    passage: int
    start: int
    end: int


class SpanIndex:
    """The passages' token ids and, per position, whether a span may start, end or continue there.

    Positions are token boundaries: (p, i) means "after the first i tokens of passage p". A span
    - starts only where a word starts that is neither a function word nor one of `skip` (the question's
      own words: an answer restates what the question does not already say), and not inside a
      multi-byte character;
    - starts only in the sentences sharing the most of `skip`'s content words (when any sentence shares
      one): the answer sentence restates the question, and a 135M model left to choose anywhere starts
      copying at the top of the first passage (measured on squad_mini: EM 16.7 without, see README);
    - ends only at a word boundary, and must end before clause punctuation (". , ; : ! ?" followed by a
      space): a 135M model, once copying, rarely chooses to stop, so the clause is the longest answer.
    """

    def __init__(self, tokenizer: Any, passages: Sequence[str], skip: Iterable[str] = ()) -> None:
        from mmagent.facts import FUNCTION_WORDS

        self.passages = list(passages)
        avoid = FUNCTION_WORDS | {w.lower() for w in skip}
        self.tokens: list[list[int]] = []
        self.ends: list[frozenset[int]] = []
        self.stops: list[frozenset[int]] = []
        starts: dict[int, list[tuple[int, int]]] = defaultdict(list)
        encoded = [_encode(tokenizer, text) for text in self.passages]
        focus = _focus(self.passages, {w.lower() for w in skip} - FUNCTION_WORDS)
        for p, (text, (ids, offsets)) in enumerate(zip(self.passages, encoded)):
            marks = _positions(text, offsets, avoid)
            self.tokens.append(ids)
            self.ends.append(marks.ends)
            self.stops.append(marks.stops)
            for i in marks.starts:
                if focus is None or any(a <= offsets[i][0] < b for a, b in focus[p]):
                    starts[ids[i]].append((p, i + 1))
        variants = _spaceless_variants(tokenizer, frozenset(starts))
        for token, where in list(starts.items()):
            if token in variants:
                starts.setdefault(variants[token], []).extend(where)
        self.starts = dict(starts)
        self.end_ids = end_token_ids(tokenizer)

    def first(self) -> set[int]:
        """Tokens an answer may start with."""
        return set(self.starts)

    def advance(self, live: set[tuple[int, int]] | None, token: int) -> set[tuple[int, int]]:
        """The occurrences still live after `token` (None = nothing generated yet)."""
        if live is None:
            return set(self.starts.get(token, ()))
        return {(p, i + 1) for p, i in live
                if i < len(self.tokens[p]) and i not in self.stops[p] and self.tokens[p][i] == token}

    def allowed(self, live: set[tuple[int, int]] | None) -> set[int]:
        """Tokens that continue some live occurrence, plus the end tokens where the span can end."""
        if live is None:
            return self.first() | set(self.end_ids)
        nexts = {self.tokens[p][i] for p, i in live if i < len(self.tokens[p]) and i not in self.stops[p]}
        can_end = any(i in self.ends[p] for p, i in live)
        return nexts | set(self.end_ids) if can_end or not nexts else nexts


@dataclass(frozen=True)
class _Marks:
    starts: frozenset[int]  # token indices a span may start with
    ends: frozenset[int]  # positions a span may end at
    stops: frozenset[int]  # positions a span must end at (clause punctuation follows)


_CLAUSE_END = ".,;:!?"
_START_SYMBOLS = "$€£#+-"
_OPENERS = "([{\"'“‘/"  # a word may start right after these


# a sentence runs to . ! ? before a space or the end; a point inside a number ("2.1 kilograms") or an
# abbreviation ("e.g.") does not end it
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?![.!?]|\s|$))+(?:[.!?]+(?=\s|$)|\n|$)|[.!?]+")


def _fold(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _focus(passages: Sequence[str], words: set[str]) -> list[list[tuple[int, int]]] | None:
    """Per passage, the character ranges of the sentences sharing the most of `words` (folded plurals);
    None when no sentence shares any, or there are no words: then spans may start anywhere."""
    wanted = {_fold(w) for w in words}
    if not wanted:
        return None
    scored = []
    for p, text in enumerate(passages):
        for match in _SENTENCE.finditer(text):
            shared = wanted & {_fold(w) for w in _WORD.findall(match.group())}
            scored.append((len(shared), p, match.span()))
    best = max((n for n, _, _ in scored), default=0)
    if best == 0:
        return None
    focus: list[list[tuple[int, int]]] = [[] for _ in passages]
    for n, p, span in scored:
        if n == best:
            focus[p].append(span)
    return focus


def _positions(text: str, offsets: Sequence[tuple[int, int]], avoid: frozenset[str]) -> _Marks:
    """Where in a passage's tokens a span may start, may end and must end (see :class:`SpanIndex`)."""
    n = len(offsets)
    cut = [i == 0 or i == n or offsets[i - 1][1] <= offsets[i][0] for i in range(n + 1)]
    starts, ends, stops = set(), set(), set()
    for i in range(n + 1):
        if not cut[i]:
            continue
        end_char = offsets[i - 1][1] if i else 0
        if i == n or end_char >= len(text) or not text[end_char].isalnum():
            ends.add(i)
        if i == n:
            break
        c = offsets[i][0]
        if text[c:c + 1] and text[c] in _CLAUSE_END and (c + 1 >= len(text) or text[c + 1].isspace()):
            stops.add(i)
        while c < len(text) and text[c].isspace():
            c += 1
        if c >= len(text) or (c > 0 and not (text[c - 1].isspace() or text[c - 1] in _OPENERS)) or offsets[i][1] <= c:
            continue  # mid-word ("spur" of "Larkspur", "1" of "6.1"), or a token of spaces only
        word = _WORD.match(text, c)
        if (text[c].isalnum() or text[c] in _START_SYMBOLS) and not (word and word.group().lower() in avoid):
            starts.add(i)
    return _Marks(frozenset(starts), frozenset(ends), frozenset(stops))


class SpanLogitsProcessor:
    """A transformers logits processor: only tokens continuing a verbatim passage span stay possible.

    One instance per `generate` call (it remembers each row's live occurrences). Works for batches: every
    row is constrained to the same passages. Once a row has written an end token, only end tokens
    follow (padding of a finished row never breaks the constraint).

    `none` is a reply the model may write instead of a span ("unknown"): with it the model itself can
    say that the passages do not answer. Without it, a near-miss question (the passage is about the
    right product, but not the asked fact) always gets *some* span — the constraint forbids the words
    that would refuse. :func:`is_none` recognises the reply.
    """

    def __init__(self, tokenizer: Any, passages: Sequence[str], skip: Iterable[str] = (), none: str = "",
                 none_bias: float = 0.0) -> None:
        if not any(p.strip() for p in passages):
            raise ValueError("extractive decoding needs at least one non-empty passage; got none. "
                             "Retrieve passages first, or generate without `spans_from`.")
        self.index = SpanIndex(tokenizer, passages, skip)
        if not self.index.end_ids:
            raise ValueError(f"the tokenizer has no end-of-answer token (looked for eos and {END_TOKENS}); "
                             "extractive decoding cannot stop an answer.")
        # the reply as given and capitalised: a model starting its answer often prefers "Unknown"
        self.nones = [_encode(tokenizer, v)[0] for v in dict.fromkeys((none, none[:1].upper() + none[1:]))] \
            if none.strip() else []
        self.none_bias = none_bias  # added to the no-answer reply's first token: a calibrated lean towards declining
        self._prompt_length: int | None = None
        self._live: list[Any] = []
        self._ended: list[bool] = []
        self._said: list[list[int]] = []  # each row's tokens so far (for the no-answer reply)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        rows = input_ids.shape[0]
        first = self._prompt_length is None
        if first:
            self._prompt_length = input_ids.shape[1]
            self._live, self._ended, self._said = [None] * rows, [False] * rows, [[] for _ in range(rows)]
        else:
            for row in range(rows):
                self._step(row, int(input_ids[row, -1]))
        mask = torch.full_like(scores, float("-inf"))
        for row in range(rows):
            allowed = self.index.end_ids if self._ended[row] else sorted(self._allowed(row))
            ids = torch.tensor([t for t in allowed if t < scores.shape[1]], dtype=torch.long)
            mask[row, ids] = 0.0
        if first and self.none_bias:
            for token in {reply[0] for reply in self.nones}:
                mask[:, token] += self.none_bias
        return scores + mask

    def _allowed(self, row: int) -> set[int]:
        """The span tokens, plus the next token of the no-answer reply while the row is still writing it."""
        said = self._said[row]
        allowed = self.index.allowed(self._live[row]) if self._live[row] is None or self._live[row] else set()
        for reply in self.nones:
            if said == reply[:len(said)]:
                allowed |= set(self.index.end_ids) if len(said) == len(reply) else {reply[len(said)]}
        return allowed or set(self.index.end_ids)

    def _step(self, row: int, token: int) -> None:
        if self._ended[row] or token in self.index.end_ids:
            self._ended[row] = True
            return
        self._said[row].append(token)
        self._live[row] = self.index.advance(self._live[row], token)


def _encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of `text` and each token's character offsets. Byte-level tokenizers split a multi-byte
    character over several tokens; their offsets then overlap, which marks the positions inside it."""
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return encoded["input_ids"], [tuple(o) for o in encoded["offset_mapping"]]
    except NotImplementedError:  # a slow (Python) tokenizer: offsets from decoding prefixes
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        bounds = [len(tokenizer.decode(ids[:i])) for i in range(len(ids) + 1)]
        return ids, list(zip(bounds, bounds[1:]))


@functools.lru_cache(maxsize=8)
def _vocab_texts(tokenizer: Any) -> tuple[str, ...]:
    """Each vocabulary id's text as it decodes alone (cached on the tokenizer itself)."""
    return tuple(tokenizer.decode([i]) for i in range(len(tokenizer)))


def _spaceless_variants(tokenizer: Any, tokens: frozenset[int]) -> dict[int, int]:
    """token id → the id of the same text without its leading space, where that is one token."""
    texts = _vocab_texts(tokenizer)
    by_text = _text_ids(tokenizer)
    out = {}
    for token in tokens:
        text = texts[token] if token < len(texts) else ""
        if len(text) > 1 and text[0] == " " and text[1:] in by_text:
            out[token] = by_text[text[1:]]
    return out


@functools.lru_cache(maxsize=8)
def _text_ids(tokenizer: Any) -> dict[str, int]:
    """Decoded text → the lowest id that decodes to it (non-special tokens only)."""
    special = set(tokenizer.all_special_ids)
    out: dict[str, int] = {}
    for i, text in enumerate(_vocab_texts(tokenizer)):
        if i not in special and text and "\ufffd" not in text:
            out.setdefault(text, i)
    return out


def end_token_ids(tokenizer: Any) -> list[int]:
    """The ids that end an answer: the tokenizer's eos and the usual chat end-of-turn tokens it has."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_TOKENS if t in vocab)
    return sorted(ids)


def is_none(answer: str, none: str) -> bool:
    """Whether a constrained answer is the no-answer reply `none` rather than a span."""
    return bool(none.strip()) and answer.strip().strip(".").lower() == none.strip().lower()


def locate(answer: str, passages: Sequence[str]) -> Span | None:
    """Where `answer` (stripped) occurs verbatim: the first passage holding it, first occurrence.

    None for an empty answer or one found in no passage (which a constrained generation never gives,
    unless the tokenizer normalises text so that decoding does not reproduce it)."""
    text = answer.strip().strip("\ufffd").strip()  # a span may end inside a multi-byte character
    if not text:
        return None
    for p, passage in enumerate(passages):
        start = passage.find(text)
        if start >= 0:
            return Span(text, p, start, start + len(text))
    return None
