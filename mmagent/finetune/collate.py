"""Turning conversations into training batches with the *serving* chat template, loss on assistant tokens.

The template comes from the backend that serves the model, so training, serving and evals render
identically (their shared hash is recorded in the adapter manifest).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from mmagent.finetune.data import Example, iter_turn_prefixes

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    text: str
    images: list[Any]
    spans: list[tuple[int, int]]  # [start, end) token positions of each assistant turn
    length: int


def _count_images(template_messages: Sequence[dict]) -> int:
    return sum(1 for m in template_messages if isinstance(m["content"], list) for p in m["content"] if p.get("type") == "image")


class ConversationEncoder:
    """Renders each example once per assistant turn to find which tokens the loss sees."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.processor = backend.processor
        self.tokenizer = backend.tokenizer

    def _length(self, text: str, images: list[Any]) -> int:
        if images:
            return int(self.processor(text=[text], images=images, return_tensors="pt")["input_ids"].shape[1])
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, example: Example) -> Encoded:
        template, images = self.backend.expand(example.messages)
        full = self.backend.apply_template(template, add_generation_prompt=False)
        spans = []
        for i in iter_turn_prefixes(template):
            before = template[:i]
            start = self._length(self.backend.apply_template(before, add_generation_prompt=True),
                                 images[: _count_images(before)])
            end = self._length(self.backend.apply_template(template[: i + 1], add_generation_prompt=False),
                               images[: _count_images(template[: i + 1])])
            spans.append((start, end))
        return Encoded(full, images, spans, self._length(full, images))


class Collator:
    """Pads a batch on the right and masks everything but the assistant turns."""

    def __init__(self, backend: Any) -> None:
        self.processor = backend.processor
        self.tokenizer = backend.tokenizer

    def __call__(self, batch: list[Encoded]) -> dict[str, Any]:
        tok = self.tokenizer
        side = tok.padding_side
        tok.padding_side = "right"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        try:
            texts = [e.text for e in batch]
            images = [img for e in batch for img in e.images]
            if images:
                enc = self.processor(text=texts, images=images, return_tensors="pt", padding=True)
            else:
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = side
        labels = enc["input_ids"].clone().fill_(IGNORE)
        for row, example in enumerate(batch):
            for start, end in example.spans:
                labels[row, start:end] = enc["input_ids"][row, start:end]
        enc["labels"] = labels
        return dict(enc)
