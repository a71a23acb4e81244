"""The model core's interface: what flows, tools, evals and surfaces may rely on.

Messages are the Hugging Face chat format, so they pass straight to a processor's chat template:
``{"role": "system"|"user"|"assistant", "content": str | [parts]}`` where a part is
``{"type": "text", "text": ...}`` or ``{"type": "image", "image": path | bytes | PIL.Image}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

from mmagent.images import ImageInput

if TYPE_CHECKING:
    from mmagent.model.adapters import AdapterInfo

Message = dict[str, Any]


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings; `temperature == 0` means greedy."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # llguidance Lark grammar the output must match (mmagent.model.grammar)
    banned: tuple[str, ...] = ()  # no output token may contain these (e.g. the flows' data-fence markers)
    spans_from: tuple[str, ...] = ()  # non-empty: the output is a verbatim span of one of these passages (mmagent.model.extractive)
    span_skip: tuple[str, ...] = ()  # words such a span may not start with (the question's own words)
    span_none: str = ""  # a reply the model may write instead of a span: the passages do not answer


@dataclass(frozen=True)
class ModelInfo:
    """What is actually loaded, for `doctor`, manifests and the UI."""

    model_id: str
    path: str | None
    architecture: str
    precision: str  # e.g. "float32", "bfloat16", "int8 (bitsandbytes)", "nf4 (bitsandbytes)"
    device: str
    parameters: int
    chat_template_hash: str
    adapters: tuple[str, ...]


class AdapterCatalog(Protocol):
    """The LoRA adapters a backend can serve; a request picks one by name (``adapter=``)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def info(self, name: str) -> "AdapterInfo":
        """The adapter `name`; an unknown name raises AdapterError listing the loaded ones."""
        ...


@runtime_checkable
class ModelBackend(Protocol):
    """Everything flows, tools, evals and surfaces may call on a model. Nobody reaches past it.

    Every request names its adapter (`adapter=`; None = the base model): there is no "current" adapter
    a request could inherit from another one, so one backend serves concurrent requests with different
    adapters. The backend serialises (or batches) what it must; callers never take its locks.
    """

    accepts: frozenset[str]
    chat_template_hash: str
    adapters: AdapterCatalog

    def generate(
        self,
        messages: Sequence[Message],
        *,
        images: Iterable[ImageInput] = (),
        adapter: str | None = None,
        **gen: Any,
    ) -> Iterator[str]:
        """Stream the answer's text pieces. `images` are attached to the last user message, first.
        `adapter` picks a loaded LoRA adapter for this request only (None = the base model)."""
        ...

    def generate_batch(
        self, conversations: Sequence[Sequence[Message]], *, adapter: str | None = None, **gen: Any
    ) -> list[str]:
        """One whole answer per conversation, all under `adapter` (None = base); greedy answers equal
        one-at-a-time `generate` up to float rounding."""
        ...

    def score(
        self,
        messages: Sequence[Message],
        candidates: Sequence[str],
        *,
        images: Iterable[ImageInput] = (),
        adapter: str | None = None,
    ) -> list[float]:
        """Log-likelihood (natural log, summed over tokens) of each candidate as the assistant's whole
        reply to `messages`, its end-of-turn included (so "positive" is no prefix win for "positive
        review"): the classify flow's label scores."""
        ...

    def info(self) -> ModelInfo: ...


def attach_images(messages: Sequence[Message], images: Iterable[ImageInput]) -> list[Message]:
    """Copy of `messages` with `images` put before the text of the last user message."""
    images = list(images)
    out = [dict(m) for m in messages]
    if not images:
        return out
    for message in reversed(out):
        if message.get("role") == "user":
            content = message.get("content") or ""
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            message["content"] = [{"type": "image", "image": img} for img in images] + parts
            return out
    return out + [{"role": "user", "content": [{"type": "image", "image": img} for img in images]}]
