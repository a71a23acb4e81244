"""A ModelBackend double whose every answer is a fixed reply: for tests where what the model proposes is
the untrusted input (a prompt-injected or confused model) and everything after it is real code."""

from __future__ import annotations

from typing import Any, Callable


class ScriptedModel:
    """Answers `reply` to everything and records each prompt. `before_answer`, when set, runs before the
    reply is given (a fault test pauses there to be killed mid-turn). It has no local chat template, as a
    remote model: tool calls take the grammar route."""

    chat_template_hash = "scripted"

    def __init__(self, config: Any, reply: str) -> None:
        self.config, self.model_config, self.reply = config, config.model, reply
        self.prompts: list = []
        self.before_answer: Callable[[], None] | None = None

    def generate(self, messages, *, images=(), adapter=None, **gen):
        self.prompts.append(messages)
        if self.before_answer is not None:
            self.before_answer()
        yield self.reply

    def info(self):
        from mmagent.model.base import ModelInfo

        return ModelInfo("scripted", None, "scripted", "none", "cpu", 0, self.chat_template_hash, ())

    def count_tokens(self, text: str, images=()) -> int:
        return len(text.split())

    def prompt(self, messages, *, images=(), tools=None):
        from mmagent.errors import RemoteUnsupported

        raise RemoteUnsupported("a scripted model has no chat template")
