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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<end_of_turn>")


@dataclass(frozen=True)
class Span:
    """A verbatim answer span: `text == passages[passage][start:end]` (0-based passage index)."""

    text: str
    passage: int
    start: int
    end: int


class SpanIndex:
    """Token ids of the passages and, per token id, the positions where an answer may start with it."""

    def __init__(self, tokenizer: Any, passages: Sequence[str]) -> None:
        self.passages = [p for p in passages]
        encoded = [_encode(tokenizer, p) for p in self.passages]
        self.tokens = [ids for ids, _ in encoded]
        self.cuts = [cuts for _, cuts in encoded]  # token positions that fall between two characters
        starts: dict[int, list[tuple[int, int]]] = defaultdict(list)
        variants = _spaceless_variants(tokenizer, frozenset(t for ids in self.tokens for t in ids))
        for p, ids in enumerate(self.tokens):
            for i, token in enumerate(ids):
                if i not in self.cuts[p]:  # a span never starts inside a multi-byte character
                    continue
                starts[token].append((p, i + 1))
                if token in variants:
                    starts[variants[token]].append((p, i + 1))
        self.starts = dict(starts)
        self.end_ids = end_token_ids(tokenizer)

    def first(self) -> set[int]:
        """Tokens an answer may start with."""
        return set(self.starts)

    def advance(self, live: set[tuple[int, int]] | None, token: int) -> set[tuple[int, int]]:
        """The occurrences still live after `token` (None = nothing generated yet)."""
        if live is None:
            return set(self.starts.get(token, ()))
        return {(p, i + 1) for p, i in live if i < len(self.tokens[p]) and self.tokens[p][i] == token}

    def allowed(self, live: set[tuple[int, int]] | None) -> set[int]:
        """Tokens that continue some live occurrence, plus the end tokens where the span can end (not
        inside a multi-byte character, which would decode to a replacement character)."""
        if live is None:
            return self.first() | set(self.end_ids)
        nexts = {self.tokens[p][i] for p, i in live if i < len(self.tokens[p])}
        can_end = any(i in self.cuts[p] for p, i in live)
        return nexts | set(self.end_ids) if can_end or not nexts else nexts


class SpanLogitsProcessor:
    """A transformers logits processor: only tokens continuing a verbatim passage span stay possible.

    One instance per `generate` call (it remembers each row's live occurrences). Works for batches: every
    row is constrained to the same passages. Once a row has written an end token, only end tokens
    follow (padding of a finished row never breaks the constraint).
    """

    def __init__(self, tokenizer: Any, passages: Sequence[str]) -> None:
        if not any(p.strip() for p in passages):
            raise ValueError("extractive decoding needs at least one non-empty passage; got none. "
                             "Retrieve passages first, or generate without `spans_from`.")
        self.index = SpanIndex(tokenizer, passages)
        if not self.index.end_ids:
            raise ValueError(f"the tokenizer has no end-of-answer token (looked for eos and {END_TOKENS}); "
                             "extractive decoding cannot stop an answer.")
        self._prompt_length: int | None = None
        self._live: list[Any] = []
        self._ended: list[bool] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        rows = input_ids.shape[0]
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
            self._live, self._ended = [None] * rows, [False] * rows
        else:
            for row in range(rows):
                self._step(row, int(input_ids[row, -1]))
        mask = torch.full_like(scores, float("-inf"))
        for row in range(rows):
            allowed = self.index.end_ids if self._ended[row] else sorted(self.index.allowed(self._live[row]))
            ids = torch.tensor([t for t in allowed if t < scores.shape[1]], dtype=torch.long)
            mask[row, ids] = 0.0
        return scores + mask

    def _step(self, row: int, token: int) -> None:
        if self._ended[row] or token in self.index.end_ids:
            self._ended[row] = True
            return
        self._live[row] = self.index.advance(self._live[row], token)


def _encode(tokenizer: Any, text: str) -> tuple[list[int], frozenset[int]]:
    """Token ids of `text` and the positions i (0..len) where the text between tokens i-1 and i is cut
    between two characters. Byte-level tokenizers split a multi-byte character over several tokens;
    their offsets then overlap, which marks the positions inside it."""
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:  # a slow (Python) tokenizer: no offsets, every position counts as a cut
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids, frozenset(range(len(ids) + 1))
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    cuts = {0, len(ids)}
    cuts.update(i for i in range(1, len(ids)) if offsets[i - 1][1] <= offsets[i][0])
    return ids, frozenset(cuts)


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
