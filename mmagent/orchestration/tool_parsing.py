"""Reading tool calls out of a local model's text.

Models with the common `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` convention (the
embedded default, Qwen, Hermes-style fine-tunes) write it with mistakes when small: a missing closing
tag, single quotes, `parameters` instead of `arguments`, arguments as a JSON string, a code fence, or
a bare JSON object without tags. This module accepts those, and whatever it cannot read becomes an
`InvalidCall` carrying the raw text and the reason, so nothing is silently dropped.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mmagent.model.grammar import CALL_CLOSE, CALL_OPEN

_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]
    id: str


@dataclass(frozen=True)
class InvalidCall:
    raw: str
    error: str
    id: str
    name: str | None = None


@dataclass
class ParsedOutput:
    """The text the user should see, plus the calls found (valid and not)."""

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    invalid: list[InvalidCall] = field(default_factory=list)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_tool_calls(text: str, tool_names: Iterable[str] | None = None) -> ParsedOutput:
    """Split model output into text and tool calls. `tool_names`: the bound tools (None = accept any name)."""
    names = set(tool_names) if tool_names is not None else None
    blocks = [m.group(1) for m in _BLOCK.finditer(text)]
    if blocks:
        content = _BLOCK.sub("", text).strip()
        parsed = ParsedOutput(content)
        for raw in blocks:
            _add(parsed, raw.strip(), names)
        return parsed
    bare = _bare_calls(text, names)
    if bare is not None:
        parsed = ParsedOutput("")
        for raw in bare:
            _add(parsed, raw, names)
        return parsed
    return ParsedOutput(text)


def _add(parsed: ParsedOutput, raw: str, names: set[str] | None) -> None:
    call_id = new_call_id()
    try:
        obj = _loads(raw)
        name, args = _name_and_args(obj)
    except ValueError as exc:
        parsed.invalid.append(InvalidCall(raw=raw, error=str(exc), id=call_id))
        return
    if names is not None and name not in names:
        error = f"unknown tool {name!r}; bound tools: {sorted(names)}"
        parsed.invalid.append(InvalidCall(raw=raw, error=error, id=call_id, name=name))
        return
    parsed.calls.append(ToolCall(name=name, args=args, id=call_id))


def _loads(raw: str) -> Any:
    """JSON, tolerating a code fence, trailing text after the object, and Python-literal quoting."""
    raw = raw.strip()
    fenced = _FENCE.match(raw)
    if fenced:
        raw = fenced.group(1)
    if not raw:
        raise ValueError("empty tool call")
    start = raw.find("{")
    if start < 0:
        raise ValueError("no JSON object in tool call")
    try:
        obj, _ = json.JSONDecoder().raw_decode(raw[start:])
        return obj
    except json.JSONDecodeError as exc:
        json_error: Exception = exc
    except RecursionError:  # thousands of nested brackets: no tool call looks like that
        raise ValueError("tool call nests too deeply to read") from None
    end = raw.rfind("}")
    try:  # {'name': 'x', 'arguments': {'a': 1}} — a literal, never evaluated as code
        return ast.literal_eval(raw[start:end + 1])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: {[1]: 2}
        raise ValueError(f"tool call is not valid JSON: {json_error}") from None


def _name_and_args(obj: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(obj, dict):
        raise ValueError(f"tool call must be a JSON object; got {type(obj).__name__}")
    if isinstance(obj.get("function"), dict):  # OpenAI shape
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("tool call has no 'name'")
    args = next((obj[k] for k in ("arguments", "args", "parameters", "input") if k in obj), {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"arguments of {name!r} are not valid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise ValueError(f"arguments of {name!r} must be an object; got {type(args).__name__}")
    return name, args


def _bare_calls(text: str, names: set[str] | None) -> list[str] | None:
    """The answer is only a JSON object (or list of them) naming a bound tool: treat it as calls."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    if not stripped.startswith(("{", "[")):
        return None
    try:
        obj = json.loads(stripped)
        items = obj if isinstance(obj, list) else [obj]
        for item in items:
            fn = item.get("function", item) if isinstance(item, dict) else None
            if not isinstance(fn, dict) or "name" not in fn or not ({"arguments", "parameters", "args"} & set(fn)):
                return None
            if names is not None and (not isinstance(fn["name"], str) or fn["name"] not in names):
                return None
        return [json.dumps(item) for item in items] if items else None
    except (json.JSONDecodeError, RecursionError):  # not JSON, or nested too deeply to be a call: text
        return None


def holdback(text: str, tools_bound: bool) -> int:
    """How many characters of streamed `text` may be shown now: text that might be (the start of) a tool
    call is held back until the end, when it is parsed as a whole."""
    if not tools_bound:
        return len(text)
    at = text.find(CALL_OPEN)
    if at >= 0:
        return at
    if text.lstrip().startswith(("{", "[", "```")):
        return 0
    for keep in range(min(len(CALL_OPEN) - 1, len(text)), 0, -1):  # a partial "<tool_c" at the end
        if CALL_OPEN.startswith(text[-keep:]):
            return len(text) - keep
    return len(text)
