"""Constrained decoding: a grammar that the generated text must match, enforced token by token.

Small local models write malformed tool calls (missing braces, invented argument names, strings where
an integer belongs). `tool_call_grammar` turns the tools' JSON schemas into a grammar for the
`<tool_call>{"name": ..., "arguments": ...}</tool_call>` convention, and `GrammarLogitsProcessor` masks,
at every step, the tokens that would leave the grammar — so whatever the model picks is schema-valid.

The matching engine is llguidance (Microsoft's Rust engine behind Guidance; one wheel with no
dependencies, works offline with any fast tokenizer). Grammars are llguidance Lark text with `%json`
for JSON schemas, which is also what vLLM's structured outputs accept, so a grammar can cross to an
OpenAI-compatible server unchanged.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import weakref
from collections.abc import Sequence
from typing import Any, Literal

from mmagent.errors import MMAgentError, require

log = logging.getLogger(__name__)

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
# Fixed separators: one canonical spelling of JSON, no room for the model to wander into whitespace.
_JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
ToolMode = Literal["auto", "lazy", "required"]


class GrammarError(MMAgentError, ValueError):
    """A grammar (or a tool schema turned into one) is not valid."""


_SAFE_INT = 2**53 - 1  # the largest integer every JSON reader keeps exact


def _closed(schema: Any) -> Any:
    """Tighten what a schema leaves open, so decoding cannot wander: objects accept no undeclared keys,
    integers stay within ±2^53 (a model repeating a digit would otherwise never end the number) —
    unless the schema says otherwise."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        if schema.get("type") == "integer":
            schema.setdefault("minimum", -_SAFE_INT)
            schema.setdefault("maximum", _SAFE_INT)
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool)
    params = copy.deepcopy(fn.get("parameters") or {"type": "object", "properties": {}})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, "arguments": _closed(params)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_call_grammar(tools: Sequence[dict[str, Any]], mode: ToolMode = "auto", parallel: bool = False,
                      marker_tokens: bool = False) -> str:
    """Lark grammar for an answer that is either text or `<tool_call>` blocks valid for `tools`.

    `tools` are OpenAI-style tool dicts (`{"type": "function", "function": {name, parameters}}`).
    `mode="auto"`: the first character decides — plain text that does not start with `<`, or tool calls
    (for models that were not trained on the convention: the grammar makes the choice explicit).
    `mode="lazy"`: the model's own choice — free text, and once it writes the call marker, tool calls
    only, each valid for `tools` (text before the first call is allowed; text never contains the marker).
    `mode="required"`: tool calls only. `parallel`: allow several calls, one per block.
    `marker_tokens`: the tokenizer has `<tool_call>` and `</tool_call>` as single added tokens (Qwen,
    Hermes): name them as tokens, so the model writes the token it was trained on. llguidance treats
    added tokens as special, so the quoted text form would forbid exactly that token.
    """
    if not tools:
        raise GrammarError("tool_call_grammar needs at least one tool; got none.")
    if mode not in ("auto", "lazy", "required"):
        raise GrammarError(f"tool-call mode must be 'auto', 'lazy' or 'required'; got {mode!r}.")
    schemas = [_call_schema(t) for t in tools]
    schema = {"x-guidance": _JSON_STYLE, **(schemas[0] if len(schemas) == 1 else {"anyOf": schemas})}
    calls = 'call ("\\n" call)*' if parallel else "call"
    if marker_tokens:
        call = f'call: {CALL_OPEN} "\\n" obj "\\n" {CALL_CLOSE}'
    else:
        call = f'call: "{CALL_OPEN}\\n" obj "\\n{CALL_CLOSE}"'
    rules = [f"calls: {calls}", call, f"obj: %json {json.dumps(schema, ensure_ascii=False)}"]
    if mode == "required":
        start = "start: calls"
    elif mode == "lazy":
        start = "start: TEXT | TEXT? calls"
        # any text that does not spell the marker (the marker token itself is never text to llguidance)
        rules.append(f"TEXT: /(?s:.+)/ & ~/(?s:.*{re.escape(CALL_OPEN)}.*)/")
    else:
        start = "start: TEXT | calls"
        rules.append(r"TEXT: /\s*[^<\s][\s\S]*/")
    return "\n".join([start, *rules])


def call_markers_are_tokens(tokenizer: Any) -> bool:
    """True when `<tool_call>` and `</tool_call>` are each one added token of `tokenizer` (a model trained
    on the convention, e.g. Qwen2.5); False for models that spell them from ordinary pieces (SmolLM2)."""
    added = getattr(tokenizer, "get_added_vocab", lambda: {})()
    return CALL_OPEN in added and CALL_CLOSE in added


def json_grammar(schema: dict[str, Any]) -> str:
    """Lark grammar for one JSON value matching `schema` (structured output, JSON mode)."""
    return "start: obj\nobj: %json " + json.dumps({"x-guidance": _JSON_STYLE, **_closed(schema)}, ensure_ascii=False)


_tokenizers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _ll_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a fast HF tokenizer (built once per tokenizer: ~ms for small vocabularies, ~1 s for large)."""
    require("llguidance", "flows")
    import llguidance.hf

    cached = _tokenizers.get(tokenizer)
    if cached is None:
        if not getattr(tokenizer, "is_fast", True):
            raise GrammarError(
                f"constrained decoding needs a fast (Rust) tokenizer; got {type(tokenizer).__name__}. "
                "Load the model with its tokenizer.json, or turn constraints off."
            )
        cached = llguidance.hf.from_tokenizer(tokenizer)
        _tokenizers[tokenizer] = cached
    return cached


class GrammarLogitsProcessor:
    """A transformers logits processor: only tokens that keep the output inside `grammar` stay possible.

    One instance per generation (it remembers what it has consumed); batch size 1. When the grammar is
    complete only end-of-sequence is allowed, so generation stops exactly at the end of the match.
    """

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        import llguidance
        import llguidance.torch as lt

        self._lt = lt
        self.tokenizer = _ll_tokenizer(tokenizer)
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self.tokenizer)
        if failed:
            raise GrammarError(f"invalid grammar: {messages[0] if messages else 'unknown error'}")
        self.matcher = llguidance.LLMatcher(self.tokenizer, grammar)
        self.mask = lt.allocate_token_bitmask(1, self.tokenizer.vocab_size)
        self._prompt_length: int | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != 1:
            raise GrammarError(f"constrained decoding runs one sequence at a time; got a batch of {input_ids.shape[0]}.")
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
        elif not self.matcher.consume_token(int(input_ids[0, -1])):
            log.warning("grammar matcher stopped accepting tokens: %s", self.matcher.get_error())
            return scores
        self._lt.fill_next_token_bitmask(self.matcher, self.mask)
        self._lt.apply_token_bitmask_inplace(scores, self.mask.to(scores.device))
        return scores
