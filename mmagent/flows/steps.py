"""Steps several flows share: running a tool with events, transcribing audio, streaming an answer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mmagent.errors import MMAgentError
from mmagent.flows.base import TokenEvent, ToolCallEvent, ToolResultEvent, emit
from mmagent.orchestration.tool_parsing import new_call_id
from mmagent.tools.base import Tool, ToolResult

if TYPE_CHECKING:
    from mmagent.config import Config

log = logging.getLogger(__name__)


class ToolBox:
    """The tools a flow may use, built on first use from the `mmagent.tools` registry (one per flow)."""

    def __init__(self, config: "Config") -> None:
        self.config = config
        self._tools: dict[str, Tool] = {}

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            from mmagent.tools.registry import load_tools

            self._tools.update(load_tools(self.config, [name]))
        return self._tools[name]


def run_tool(tool: Tool, args: dict[str, Any], call_id: str | None = None, *, raise_errors: bool = True) -> ToolResult | None:
    """Call `tool` with `args`, emitting tool_call and tool_result events.

    A user-facing failure (MMAgentError) is reported as a failed tool_result; it is re-raised when
    `raise_errors`, else the caller gets None and decides (e.g. count it towards a hand-off)."""
    call_id = call_id or new_call_id()
    emit(ToolCallEvent(tool.name, dict(args), call_id))
    try:
        result = tool(**args)
    except MMAgentError as exc:
        emit(ToolResultEvent(tool.name, call_id, ok=False, error=str(exc)))
        if raise_errors:
            raise
        return None
    emit(ToolResultEvent(tool.name, call_id, ok=True, text=result.text))
    return result


def transcribe(tools: ToolBox, audio: Sequence[str]) -> list[ToolResult]:
    """Transcribe each audio file with the `asr` tool (events included)."""
    results = []
    for path in audio:
        result = run_tool(tools.get("asr"), {"path": str(path)})
        if result is not None:
            results.append(result)
    return results


def stream_answer(backend: Any, messages: list[dict[str, Any]], images: Sequence[Any] = (), **gen: Any) -> str:
    """Generate with `backend`, emitting each piece as a token event; returns the whole text."""
    pieces = []
    for piece in backend.generate(messages, images=list(images), **gen):
        pieces.append(piece)
        emit(TokenEvent(piece))
    return "".join(pieces)


def say(text: str) -> str:
    """Emit a fixed (not generated) answer as one token event; returns it."""
    emit(TokenEvent(text))
    return text


def check_files(paths: Sequence[str | Path], what: str) -> list[str]:
    """Absolute paths of existing files, or a FlowError naming the missing one."""
    from mmagent.flows.base import FlowError

    out = []
    for path in paths:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FlowError(f"{what} file '{path}' does not exist or is not a file; check the path.")
        out.append(str(p.resolve()))
    return out
