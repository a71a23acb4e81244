"""LangChain messages → the model core's Hugging Face chat messages.

Every message keeps its own images (a user photo stays in the conversation when the model later calls
a tool and reads its answer), and tool calls/results use the `tool_calls` / role `tool` shape that chat
templates with tool support render. Image blocks are accepted in the formats LangChain users meet:
standard v1 blocks (`{"type": "image", "base64" | "url" | "path"}`), legacy v0 (`source_type`),
OpenAI (`image_url`) and Anthropic (`source`). Images are decoded here through `mmagent.images.load_image`,
so a bad image fails before generation with the same message everywhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from mmagent.errors import ImageError, MMAgentError
from mmagent.images import DEFAULT_MAX_PIXELS, load_image

_SKIPPED_BLOCKS = {"tool_use", "tool_call", "tool_call_chunk", "thinking", "reasoning", "invalid_tool_call",
                   "server_tool_call", "server_tool_result", "non_standard"}


@dataclass(frozen=True)
class ImagePolicy:
    """What image sources a conversation may use. http(s) URLs are refused unless `allow_urls`: fetching
    at run time would let a prompt make this process reach any address (and breaks offline use)."""

    allow_urls: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 20.0


def to_hf_messages(messages: Sequence[BaseMessage], policy: ImagePolicy = ImagePolicy()) -> list[dict[str, Any]]:
    """Convert a LangChain conversation, in order, to HF chat messages (images as decoded PIL images)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            out.append({"role": "system", "content": _content(message.content, policy)})
        elif isinstance(message, HumanMessage):
            out.append({"role": "user", "content": _content(message.content, policy)})
        elif isinstance(message, AIMessage):
            out.append(_assistant(message, policy))
        elif isinstance(message, ToolMessage):
            out.append({"role": "tool", "content": _content(message.content, policy),
                        "tool_call_id": message.tool_call_id, **({"name": message.name} if message.name else {})})
        elif isinstance(message, ChatMessage) and message.role in ("system", "user", "assistant", "tool"):
            out.append({"role": message.role, "content": _content(message.content, policy)})
        else:
            raise MMAgentError(
                f"cannot send a {type(message).__name__} (role {getattr(message, 'role', message.type)!r}) to the "
                "model; use System, Human, AI or Tool messages."
            )
    return out


def _assistant(message: AIMessage, policy: ImagePolicy) -> dict[str, Any]:
    converted: dict[str, Any] = {"role": "assistant", "content": _content(message.content, policy)}
    if message.tool_calls:
        converted["tool_calls"] = [
            {"type": "function", "id": call.get("id"), "function": {"name": call["name"], "arguments": call["args"]}}
            for call in message.tool_calls
        ]
    return converted


def _content(content: str | list, policy: ImagePolicy) -> str | list[dict[str, Any]]:
    """A string stays a string (every template handles that); lists become text and image parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind in ("image", "image_url"):
            parts.append({"type": "image", "image": load_image(_image_bytes(block, policy), policy.max_pixels)})
        elif kind in _SKIPPED_BLOCKS:
            continue  # tool calls travel in `tool_calls`; reasoning is not replayed to the model
        else:
            raise MMAgentError(
                f"content block of type {kind!r} is not supported by this model; "
                "send text and images (base64, data URL, local path)."
            )
    if all(p["type"] == "text" for p in parts):  # plain text: keep the shape every chat template accepts
        return "".join(p["text"] for p in parts)
    return parts


def _image_bytes(block: dict[str, Any], policy: ImagePolicy) -> bytes | str:
    """The image a block points at, as bytes or a local path."""
    if block.get("type") == "image_url":  # OpenAI: {"image_url": {"url": ...}} or {"image_url": "..."}
        ref = block["image_url"]
        return _from_url(ref["url"] if isinstance(ref, dict) else ref, policy)
    source = block.get("source")
    if isinstance(source, dict):  # Anthropic
        if source.get("type") == "base64":
            return _b64(source.get("data", ""))
        if source.get("type") == "url":
            return _from_url(source["url"], policy)
    if block.get("base64") or block.get("source_type") == "base64":
        return _b64(block.get("base64") or block.get("data", ""))
    if block.get("path"):
        return str(Path(block["path"]).expanduser())
    url = block.get("url") or (block.get("data") if block.get("source_type") == "url" else None)
    if url:
        return _from_url(url, policy)
    if block.get("file_id") or block.get("id") and block.get("source_type") == "id":
        raise ImageError("image blocks that refer to a provider's file id cannot be used locally; send base64 or a path.")
    raise ImageError(f"image block has no image data (expected base64, url or path); got keys {sorted(block)}.")


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"image base64 data could not be decoded ({exc}); send standard base64.") from exc


def _from_url(url: str, policy: ImagePolicy) -> bytes | str:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            return unquote(payload).encode("latin-1")
        return _b64(payload)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme in ("http", "https"):
        if not policy.allow_urls:
            raise ImageError(
                f"image URL '{url}' refused: fetching images from the network is off by default. Send the image "
                "as base64 / a data URL / a local path, or create the model with allow_image_urls=True."
            )
        return _fetch(url, policy)
    if not parsed.scheme:
        return url  # a plain local path
    raise ImageError(f"image URL scheme '{parsed.scheme}' is not supported; use data:, file:, a path, or http(s).")


def _fetch(url: str, policy: ImagePolicy) -> bytes:
    """Download an image the user explicitly allowed, with a size cap."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=policy.timeout) as response:
            data = response.read(policy.max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"image URL '{url}' could not be fetched: {exc}") from exc
    if len(data) > policy.max_bytes:
        raise ImageError(f"image URL '{url}' is larger than {policy.max_bytes // 2**20} MB; download it yourself.")
    return data

