"""Does the loaded model call tools through its own chat template?

A model trained on tool calling (Qwen2.5, Hermes-style fine-tunes) has a chat template that puts the
tools into the prompt and dedicated `<tool_call>` / `</tool_call>` tokens it writes when it decides to
call. Such a model is left to decide (`tool_choice="auto"`): it generates freely, and only once it
writes the call marker is the rest constrained to the tools' argument schemas (the "lazy" grammar).
A model without those tokens (the embedded SmolLM2-135M, whose composed template shows the tools but
which was never trained on them) keeps the explicit grammar in which the first character decides.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any

from mmagent.model.grammar import CALL_CLOSE, CALL_OPEN

log = logging.getLogger(__name__)

_PROBE_TOOL = {"type": "function", "function": {
    "name": "mmagent_probe_tool", "description": "probe", "parameters": {"type": "object", "properties": {}}}}
_cache: weakref.WeakKeyDictionary[Any, ToolTemplate] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ToolTemplate:
    """How a model's own template handles tools."""

    renders_tools: bool  # the chat template writes the offered tools into the prompt
    marker_tokens: bool  # `<tool_call>`/`</tool_call>` are single tokens of the vocabulary

    @property
    def native(self) -> bool:
        """The model calls tools through its own template: let it decide, constrain only the call."""
        return self.renders_tools and self.marker_tokens


def tool_template(backend: Any) -> ToolTemplate:
    """What `backend`'s template and tokenizer say about tool calling (computed once per backend).

    Backends without a local template (an OpenAI-compatible server) report neither."""
    try:
        return _cache[backend]
    except (KeyError, TypeError):
        pass
    found = _inspect(backend)
    try:
        _cache[backend] = found
    except TypeError:  # not weak-referenceable: inspect again next time (a few ms)
        pass
    return found


def _inspect(backend: Any) -> ToolTemplate:
    from mmagent.errors import MMAgentError

    try:
        text = backend.prompt([{"role": "user", "content": "probe"}], tools=[_PROBE_TOOL]).text
    except MMAgentError as exc:  # the template lives elsewhere (a remote server: RemoteUnsupported)
        log.debug("no local chat template to inspect: %s", exc)
        return ToolTemplate(False, False)
    except Exception as exc:  # a template that cannot take tools at all (e.g. raises on `tools`)
        log.debug("chat template does not render tools: %s", exc)
        return ToolTemplate(False, _marker_tokens(backend))
    return ToolTemplate("mmagent_probe_tool" in text, _marker_tokens(backend))


def _marker_tokens(backend: Any) -> bool:
    """`<tool_call>` and `</tool_call>` are each one token (added to the vocabulary by a model trained on the
    convention, e.g. Qwen2.5); SmolLM2 spells them from ordinary pieces."""
    return all(backend.count_tokens(marker) == 1 for marker in (CALL_OPEN, CALL_CLOSE))
