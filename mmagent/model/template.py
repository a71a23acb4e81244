"""The chat template's identity: one hash that serving, training and evals all record and compare.

We hash the *rendered* text of a fixed probe conversation rather than the template source, so two
templates that render identically count as the same, and processor-level changes (a different image
token, a new default system prompt) count as different.
"""

from __future__ import annotations

import hashlib
from typing import Any

PROBE_TEXT = [
    {"role": "system", "content": "SYSTEM"},
    {"role": "user", "content": [{"type": "text", "text": "QUESTION"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "ANSWER"}]},
    {"role": "user", "content": [{"type": "text", "text": "FOLLOW-UP"}]},
]
PROBE_IMAGE = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "QUESTION"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "ANSWER"}]},
]


def render(renderer: Any, messages: list[dict], **kwargs: Any) -> str:
    """Render with a processor's or tokenizer's chat template (text, not token ids)."""
    return renderer.apply_chat_template(messages, tokenize=False, **kwargs)


def template_hash(renderer: Any, vision: bool) -> str:
    """sha256 (first 16 hex digits) of the probe conversations rendered with the generation prompt."""
    text = render(renderer, PROBE_TEXT, add_generation_prompt=True)
    if vision:
        text += "\x00" + render(renderer, PROBE_IMAGE, add_generation_prompt=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
