"""Log-likelihoods of candidate replies: what `HFVisionBackend.score` computes for the classify flow.

Each candidate is scored as the assistant's *whole* reply — the text the chat template renders for an
assistant turn answering it, end-of-turn included — so "positive" is not a prefix win for "positive
review". All candidates share the prompt and go through the model in one padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from mmagent.model.base import Message


@dataclass
class ReplyBatch:
    """The prompt's ids followed by each candidate's reply ids, one row per candidate (right-padded)."""

    ids: Any  # LongTensor [candidates, width]
    mask: Any  # LongTensor [candidates, width]
    extra: dict[str, Any]  # pixel values and the like, repeated per row
    prompt_length: int
    replies: list[list[int]]

    def inputs(self, device: Any) -> dict[str, Any]:
        return {"input_ids": self.ids.to(device), "attention_mask": self.mask.to(device),
                **{k: v.to(device) for k, v in self.extra.items()}}

    def log_likelihoods(self, logits: Any) -> list[float]:
        """Sum over each reply's tokens of log p(token | everything before it)."""
        import torch

        logprobs = torch.log_softmax(logits, dim=-1)
        out = []
        for row, reply in enumerate(self.replies):
            positions = torch.arange(self.prompt_length - 1, self.prompt_length - 1 + len(reply))
            out.append(float(logprobs[row, positions, torch.tensor(reply)].sum()))
        return out


def reply_batch(backend: Any, messages: Sequence[Message], candidates: Sequence[str]) -> ReplyBatch:
    """Tokenise prompt + each candidate reply the way `backend` renders them (images decoded once)."""
    import torch

    prompt, pil_images = backend.render(messages)
    tok = backend.tokenizer
    if pil_images:
        prompt_ids = backend.processor(text=[prompt], images=pil_images, return_tensors="pt")
    else:
        prompt_ids = tok([prompt], return_tensors="pt", add_special_tokens=False)
    base = prompt_ids["input_ids"][0].tolist()
    replies = [tok(_reply_text(backend, messages, c), add_special_tokens=False)["input_ids"] for c in candidates]
    width = len(base) + max(len(r) for r in replies)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(replies), width), pad, dtype=torch.long)
    mask = torch.zeros((len(replies), width), dtype=torch.long)
    for row, reply in enumerate(replies):
        ids[row, : len(base) + len(reply)] = torch.tensor(base + reply)
        mask[row, : len(base) + len(reply)] = 1
    extra = {k: torch.cat([v] * len(replies)) for k, v in prompt_ids.items() if k not in ("input_ids", "attention_mask")}
    return ReplyBatch(ids, mask, extra, len(base), replies)


def _reply_text(backend: Any, messages: Sequence[Message], candidate: str) -> str:
    """The text the template renders for an assistant turn answering `candidate` (up to its end-of-turn)."""
    text_only = _text_only(messages)
    full, _ = backend.render([*text_only, {"role": "assistant", "content": candidate}], add_generation_prompt=False)
    prompt, _ = backend.render(text_only)
    if full.startswith(prompt):
        return full[len(prompt):].rstrip("\n")
    return candidate + (backend.tokenizer.eos_token or "")


def _text_only(messages: Sequence[Message]) -> list[Message]:
    """Messages with image parts dropped (the reply's rendering does not depend on them; no OCR rerun)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "image"]
        out.append(dict(m, content=content))
    return out
