"""Rows of different requests decoded in one left-padded `generate` call, each under its own adapter.

Rows of one batch may name different LoRA adapters: peft applies each row's adapter to that row only
(``adapter_names``, ``"__base__"`` for the base model), the way vLLM multi-LoRA, S-LoRA and LoRAX serve many
adapters on one resident base. (In bfloat16, peft's mixed-batch path rounds each adapter's LoRA output to
bfloat16 before adding it, where its one-adapter path adds in float32 and rounds once, so a mixed row's
greedy answer can drift from its one-at-a-time answer; in float32 they agree. Batches of one adapter take
the one-adapter path.) Each row streams its own text as it is decoded and stops on its own end token, token
budget or cancellation (a per-row stopping criterion), so one long answer does not hold back the others.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any, Sequence

from mmagent.model.base import DecodeRow

log = logging.getLogger(__name__)
BASE_ROW = "__base__"  # peft's adapter name for "no adapter" rows of a mixed batch


class BatchDecoder:
    """Decodes batches of `DecodeRow`s on one backend. Holds private copies of the processor and tokenizer:
    a fast tokenizer keeps its padding settings as state, so a call in another thread (a flow tokenizing on
    the shared backend) could change them between our setting and our encoding."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.processor = _private_copy(backend.processor)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.eos = _eos_ids(backend.model, self.tokenizer)

    def run(self, rows: Sequence[DecodeRow]) -> None:
        """Decode `rows` (the caller holds the backend's lock)."""
        from transformers import StoppingCriteriaList

        from mmagent.model.backend import _generate_kwargs  # one place turns options into generate() arguments

        backend = self.backend
        inputs = _tokenize(self.processor, self.tokenizer, [r.prompt.text for r in rows],
                           [img for r in rows for img in r.prompt.images]).to(backend.model.device)
        for row, length in zip(rows, inputs["attention_mask"].sum(dim=1).tolist()):
            row.prompt_tokens, row.batch_size = int(length), len(rows)
        streamer = _Rows(self.tokenizer, list(rows), self.eos)
        budget = max(r.options.max_new_tokens for r in rows)  # stop strings are cut by the caller, per row
        kwargs = _generate_kwargs(dataclasses.replace(rows[0].options, max_new_tokens=budget, stop=()), self.tokenizer)
        stopping = StoppingCriteriaList([streamer.criterion()])
        if len({r.adapter for r in rows}) == 1:  # one adapter (or none): the same path as generate()
            with backend.adapters.selected(rows[0].adapter) as model:
                _generate(model, inputs, kwargs, streamer, stopping)
        else:  # name each row's adapter: peft's mixed-batch LoRA forward
            kwargs["adapter_names"] = [r.adapter or BASE_ROW for r in rows]
            _generate(backend.adapters.model, inputs, kwargs, streamer, stopping)
        streamer.end()  # rows still open ran out of the batch's budget (a failure raises instead)


def _generate(model: Any, inputs: Any, kwargs: dict[str, Any], rows: "_Rows", stopping: Any) -> None:
    import torch

    with torch.inference_mode():
        model.generate(**inputs, **kwargs, streamer=rows, stopping_criteria=stopping)


def _tokenize(processor: Any, tok: Any, texts: list[str], images: list[Any]) -> Any:
    """Left-padded model inputs for rendered prompts (decoder-only: new tokens follow each prompt)."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kwargs = {"return_tensors": "pt", "padding": True, "padding_side": "left"}
    if images:
        return processor(text=texts, images=images, **kwargs)
    return tok(texts, add_special_tokens=False, **kwargs)


def _private_copy(obj: Any) -> Any:
    try:
        return copy.deepcopy(obj)
    except Exception:  # a processor that cannot be copied: share it (single-threaded use stays correct)
        log.warning("could not copy %s for the batch decoder; sharing the backend's", type(obj).__name__)
        return obj


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


class _Rows:
    """A transformers streamer for a whole batch: each step's tokens go to their rows as text.

    `put` receives the prompt once, then one token per row per step; a row ends at an end token, its own
    `max_new_tokens`, or its cancellation (`criterion()` tells `generate` which rows are done)."""

    def __init__(self, tokenizer: Any, rows: list[DecodeRow], eos: set[int]) -> None:
        self.tok, self.rows, self.eos = tokenizer, rows, eos
        self.ids: list[list[int]] = [[] for _ in rows]
        self.sent = [""] * len(rows)
        self.done = [False] * len(rows)
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if self.done[i]:
                continue
            row = self.rows[i]
            if row.cancelled.is_set():
                self._finish(i, "cancelled")
            elif token in self.eos:
                self._finish(i, "stop")
            else:
                self.ids[i].append(token)
                self._emit(i)
                if len(self.ids[i]) >= row.options.max_new_tokens:
                    self._finish(i, "length")

    def end(self) -> None:
        for i in range(len(self.rows)):
            if not self.done[i]:
                self._finish(i, "length")

    def criterion(self) -> Any:
        from transformers import StoppingCriteria

        rows = self

        class _RowsDone(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
                import torch

                flags = [d or r.cancelled.is_set() for d, r in zip(rows.done, rows.rows)]
                return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

        return _RowsDone()

    def _emit(self, i: int) -> None:
        text = self.tok.decode(self.ids[i], skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
            return
        new = text[len(self.sent[i]):]
        if new:
            self.sent[i] = text
            self.rows[i].emit(new)

    def _finish(self, i: int, reason: str) -> None:
        self.done[i] = True
        row = self.rows[i]
        text = self.tok.decode(self.ids[i], skip_special_tokens=True)
        if len(text) > len(self.sent[i]):
            row.emit(text[len(self.sent[i]):])
        row.completion_tokens, row.finish_reason = len(self.ids[i]), reason
        row.on_end(row)
