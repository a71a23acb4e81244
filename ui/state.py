"""Conversations of the chat UI, kept as one JSON file each under ``<paths.data>/ui/conversations``.

Pure Python (no Streamlit, no torch): the page code renders these dataclasses, tests read them, and a
restart of the app finds every conversation where it was left. Writes go through a temporary file
and a rename, so a crash mid-write never leaves a half-written conversation behind.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mmagent.tools.base import Source

from mmagent.errors import MMAgentError
from mmagent.flows.base import SourceEvent

_ID = re.compile(r"^[0-9a-f]{12}$")
TITLE_WORDS = 8


def location(source: Source) -> str:
    """'p. 3', '0:12–0:25' or '' — where in its file a source is."""
    if source.page is not None:
        return f"p. {source.page}"
    if source.start is None:
        return ""
    end = source.end if source.end is not None else source.start
    return f"{int(source.start) // 60}:{int(source.start) % 60:02d}–{int(end) // 60}:{int(end) % 60:02d}"


@dataclass
class ChatMessage:
    """One turn. `kind`: "text" (a normal turn), "error" (shown as an error), "note" (status line)."""

    role: str
    text: str
    kind: str = "text"
    images: list[str] = field(default_factory=list)  # stored upload paths, shown inline
    files: list[str] = field(default_factory=list)  # other attachments (audio, documents) by display name
    sources: list[SourceEvent] = field(default_factory=list)  # the flow's source events, as they came
    tools: list[str] = field(default_factory=list)  # one line per tool call / result
    handoff: str | None = None  # reason, when the turn handed the conversation to a human
    tickets: list[int] = field(default_factory=list)
    flow: str | None = None
    adapter: str | None = None
    seconds: float | None = None
    stopped: bool = False  # the user pressed Stop: `text` is what was generated until then
    created: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["sources"] = [SourceEvent(s["index"], Source(**s["source"]), s.get("cited", True))
                             for s in values.get("sources", [])]
        return cls(**values)


@dataclass
class Conversation:
    """A conversation and the settings it was held with (restored when it is reopened)."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    title: str = "New conversation"
    flow: str = "qa"
    adapter: str | None = None
    collection: str | None = None
    messages: list[ChatMessage] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def handed_off(self) -> bool:
        return any(m.handoff for m in self.messages)

    @property
    def tickets(self) -> list[int]:
        return sorted({t for m in self.messages for t in m.tickets})

    def add(self, message: ChatMessage) -> ChatMessage:
        self.messages.append(message)
        if self.title == "New conversation" and message.role == "user" and message.text.strip():
            words = message.text.split()
            self.title = " ".join(words[:TITLE_WORDS]) + ("…" if len(words) > TITLE_WORDS else "")
        self.updated = time.time()
        return message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["messages"] = [ChatMessage.from_dict(m) for m in values.get("messages", [])]
        return cls(**values)

    def to_markdown(self) -> str:
        """The conversation as Markdown (export): turns, attachments, sources and hand-offs."""
        lines = [f"# {self.title}", "", f"Flow `{self.flow}`, adapter `{self.adapter or 'none'}`"
                 + (f", collection `{self.collection}`" if self.collection else ""), ""]
        for m in self.messages:
            who = {"user": "You", "assistant": "Assistant"}.get(m.role, m.role)
            lines.append(f"**{who}**" + (" (error)" if m.kind == "error" else "") + f": {m.text}")
            lines += [f"- attached image: `{Path(p).name}`" for p in m.images]
            lines += [f"- attached file: `{name}`" for name in m.files]
            for s in m.sources:
                where = f" {location(s.source)}" if location(s.source) else ""
                score = f" (score {s.source.score:.2f})" if s.source.score is not None else ""
                lines.append(f"- [{s.index}] `{s.source.uri}`{where}{score}")
            if m.handoff:
                lines.append(f"- handed off to a human: {m.handoff}")
            lines += [f"- ticket #{t}" for t in m.tickets]
            lines.append("")
        return "\n".join(lines)


class ConversationStore:
    """The folder of saved conversations; ids are generated here, so a file name never comes from a user."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @classmethod
    def for_config(cls, config: Any) -> ConversationStore:
        return cls(Path(config.paths.data).expanduser() / "ui" / "conversations")

    def _path(self, conversation_id: str) -> Path:
        if not _ID.match(conversation_id):
            raise MMAgentError(f"conversation id {conversation_id!r} is not one this app made (12 hex digits).")
        return self.root / f"{conversation_id}.json"

    def save(self, conversation: Conversation) -> Path:
        path = self._path(conversation.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(conversation.to_dict(), ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def load(self, conversation_id: str) -> Conversation:
        path = self._path(conversation_id)
        try:
            return Conversation.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise MMAgentError(f"conversation {conversation_id} was not found in {self.root}.") from exc
        except (json.JSONDecodeError, TypeError) as exc:
            raise MMAgentError(f"conversation file {path} is damaged ({exc}); delete it or fix the JSON.") from exc

    def list(self) -> list[Conversation]:
        """Every readable conversation, most recently updated first (damaged files are left out)."""
        out = []
        for path in self.root.glob("*.json"):
            try:
                out.append(self.load(path.stem))
            except MMAgentError:
                continue
        return sorted(out, key=lambda c: c.updated, reverse=True)

    def delete(self, conversation_id: str) -> None:
        self._path(conversation_id).unlink(missing_ok=True)
