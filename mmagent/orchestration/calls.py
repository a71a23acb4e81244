"""One tool-calling step for flows, without flows importing LangChain.

:func:`propose_tool_calls` binds mmagent :class:`~mmagent.tools.base.Tool` objects to an
:class:`~mmagent.orchestration.chat_model.MMChatModel` (their `inputs` JSON schemas become the function
parameters, so decoding is grammar-constrained to them) and returns the proposed calls as plain
dataclasses. Running the calls is the flow's job: it checks them against its allow-list and policy first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from mmagent.orchestration.tool_parsing import InvalidCall, ToolCall, new_call_id
from mmagent.tools.base import Tool


@dataclass
class Proposal:
    """What the model answered: text, well-formed calls, and calls it could not form."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    invalid: list[InvalidCall] = field(default_factory=list)


def tool_spec(tool: Tool) -> dict[str, Any]:
    """The OpenAI-style function spec of a mmagent Tool (what `bind_tools` and chat templates take)."""
    return {"type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.inputs}}


def _to_langchain(messages: Sequence[dict[str, Any]]) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    out = []
    for message in messages:
        content = message.get("content") or ""
        if not isinstance(content, str):  # planning is text-only; images go to the answering step
            content = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
        out.append(kinds.get(message["role"], HumanMessage)(content=content))
    return out


def decides_tool_calls(backend: Any) -> bool:
    """True when the model calls tools through its own chat template (Qwen-style `<tool_call>` tokens), so
    a flow can leave the decision to it (`choice="auto"`); False when a flow must decide in code."""
    from mmagent.orchestration.tool_template import tool_template

    return tool_template(backend).native


def propose_tool_calls(
    backend: Any,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[Tool],
    *,
    choice: str = "auto",
    constrain: bool = True,
    max_new_tokens: int = 96,
    stop_on_text: bool = False,
    adapter: str | None = None,
) -> Proposal:
    """Ask the model (HF chat `messages`) which of `tools` to call. `choice`: auto | required | a tool name.

    `constrain=False` turns grammar-constrained decoding off (the model may then write broken calls,
    which come back in `invalid`). `stop_on_text`: with `choice="auto"`, stop as soon as the model starts
    answering in text instead of calling (a planner that only wants the decision saves the rest).
    `adapter`: the request's LoRA adapter (None = the base model)."""
    from mmagent.orchestration.chat_model import MMChatModel

    model = MMChatModel(backend=backend, adapter=adapter, max_tokens=max_new_tokens, constrain_tool_calls=constrain)
    bound = model.bind_tools([tool_spec(t) for t in tools], tool_choice=choice)
    if stop_on_text and choice == "auto":
        message = _until_text(bound, _to_langchain(messages))
    else:
        message = bound.invoke(_to_langchain(messages))
    calls = [ToolCall(c["name"], dict(c.get("args") or {}), c.get("id") or new_call_id()) for c in message.tool_calls]
    invalid = [InvalidCall(raw=str(c.get("args") or ""), error=str(c.get("error") or "unparseable call"),
                           id=c.get("id") or new_call_id(), name=c.get("name"))
               for c in message.invalid_tool_calls]
    text = message.content if isinstance(message.content, str) else str(message.content)
    return Proposal(text, calls, invalid)


def _until_text(bound: Any, messages: list[Any]) -> Any:
    """Stream `bound`; stop at the first visible text (a call is held back until complete, so text means
    the model chose to answer). Closing the stream stops generation in the backend."""
    from langchain_core.messages import AIMessageChunk

    full = AIMessageChunk(content="")
    stream = bound.stream(messages)
    try:
        for chunk in stream:
            full = full + chunk
            if isinstance(chunk.content, str) and chunk.content.strip():
                break
    finally:
        stream.close()
    return full
