"""One chat turn: the user's input becomes a flow request; the flow's events become an answer.

No Streamlit here: :func:`build_request` maps what the user gave (text, stored images and documents)
onto the chosen flow's request dataclass, and :class:`TurnRecorder` wraps ``flow.run`` so the page can
pass the token text straight to ``st.write_stream`` while sources, tool calls, tickets and hand-offs
are collected into the :class:`~mmagent.ui.state.ChatMessage` that is saved with the conversation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mmagent.ui.state import ChatMessage

# label shown in the sidebar -> flow name in mmagent.flows.base.FLOWS
FLOW_LABELS = {"Question answering": "qa", "Customer service": "support", "Summarize": "summarize"}
CALL = "→ "  # how a tool call's line in ChatMessage.tools starts (its result's line starts with ✓ or ✗)


@dataclass
class TurnInput:
    """What the user sent in one turn; paths are stored uploads (see attachments.store_upload)."""

    text: str = ""
    images: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)


@dataclass
class Generation:
    """The answer being written in a session: `stop` ends it (see resources.stoppable); `done` is set once
    its run has saved the turn, so a rerun can wait for it."""

    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    stopped_at: float | None = None  # time.perf_counter() of the first stop request

    def request_stop(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.perf_counter()
        self.stop.set()


def build_request(flow: str, turn: TurnInput, *, session: str, collection: str | None, adapter: str | None) -> Any:
    """The request dataclass of `flow` for this turn (documents are summarized by `summarize` only). It
    carries everything of this tab's turn — session, adapter — since the flow instance is shared."""
    if flow == "qa":
        from mmagent.flows.qa import QARequest

        return QARequest(question=turn.text, images=list(turn.images), collection=collection or None, adapter=adapter)
    if flow == "support":
        from mmagent.flows.support import SupportRequest

        return SupportRequest(message=turn.text, session=session, images=list(turn.images),
                              collection=collection or None, adapter=adapter)
    if flow == "summarize":
        from mmagent.flows.summarize import SummarizeRequest

        return SummarizeRequest(paths=[*turn.documents, *turn.images], text=turn.text, adapter=adapter)
    from mmagent.flows.base import FlowError

    raise FlowError(f"the chat UI runs the flows {', '.join(FLOW_LABELS.values())}; got {flow!r}.")


class TurnRecorder:
    """Iterate :meth:`tokens` to stream the answer; afterwards :attr:`message` holds the whole turn."""

    def __init__(self, events: Iterator[Any], flow: str, adapter: str | None) -> None:
        self._events = events
        self.message = ChatMessage("assistant", "", flow=flow, adapter=adapter)
        self.started = time.perf_counter()
        self._streamed: list[str] = []
        self.first_token_s: float | None = None  # seconds from the flow's start to its first token (logged)

    def close(self) -> None:
        """End the flow's run (its generator); with the Stop event set, this also ends the model's thread."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def stopped(self) -> ChatMessage:
        """The turn so far, marked as stopped by the user (what was streamed is kept)."""
        self.message.stopped = True
        self.message.seconds = round(time.perf_counter() - self.started, 3)
        self.message.text = self.message.text or "".join(self._streamed).strip()
        return self.message

    def tokens(self) -> Iterator[str]:
        for event in self._events:
            text = self._record(event)
            if text:
                if self.first_token_s is None:
                    self.first_token_s = round(time.perf_counter() - self.started, 3)
                self._streamed.append(text)
                yield text
        self.message.seconds = round(time.perf_counter() - self.started, 3)
        if not self.message.text:
            self.message.text = "".join(self._streamed).strip()

    def _record(self, event: Any) -> str:
        from mmagent.flows.base import (
            DoneEvent,
            HandoffEvent,
            SourceEvent,
            TokenEvent,
            ToolCallEvent,
            ToolResultEvent,
        )

        m = self.message
        if isinstance(event, TokenEvent):
            return event.text
        if isinstance(event, SourceEvent):
            m.sources.append(event)
        elif isinstance(event, ToolCallEvent):
            m.tools.append(f"{CALL}{event.name}({', '.join(f'{k}={v!r}' for k, v in event.args.items())})")
        elif isinstance(event, ToolResultEvent):
            m.tools.append(f"✓ {event.name}: {event.text}" if event.ok else f"✗ {event.name}: {event.error}")
        elif isinstance(event, HandoffEvent):
            m.handoff = event.reason
            if event.ticket is not None:
                m.tickets.append(event.ticket)
        elif isinstance(event, DoneEvent):
            m.text = event.answer.strip()
            ticket = (event.data.get("result") or {}).get("ticket") if isinstance(event.data.get("result"), dict) else None
            for t in (ticket, event.data.get("ticket")):
                if t is not None and int(t) not in m.tickets:
                    m.tickets.append(int(t))
        return ""
