"""The model core's interface: what flows, tools, evals and surfaces may rely on.

Messages are the Hugging Face chat format, so they pass straight to a processor's chat template:
``{"role": "system"|"user"|"assistant", "content": str | [parts]}`` where a part is
``{"type": "text", "text": ...}`` or ``{"type": "image", "image": path | bytes | PIL.Image}``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

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
    span_none_bias: float = 0.0  # logit added to that reply's first token (mmagent.flows.grounding.NONE_BIAS)
    facts_from: tuple[str, ...] = ()  # non-empty: numbers, months, weekdays only as these texts write them (mmagent.model.closed_facts)


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
    context_length: int | None = None  # tokens the model reads at once (None: the server does not say)
    reads_image_text: bool = False  # the backend itself adds each image's OCR text to the prompt
    quantization: str | None = None  # model.quantization as configured ("none", "8bit", "4bit"); None: remote


@dataclass(frozen=True)
class Prompt:
    """A conversation as the model reads it: the chat template's text and the decoded images in order."""

    text: str
    images: tuple[Any, ...] = ()


@dataclass(eq=False)
class DecodeRow:
    """One request of a batch decoded together (`decode_rows`): its prompt, adapter and options in; its text
    out through `emit`, piece by piece, and its figures set when it ends. Setting `cancelled` ends the row at
    the next decoding step."""

    prompt: Prompt
    adapter: str | None
    options: GenerationOptions
    emit: Callable[[str], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_end: Callable[["DecodeRow"], None] = lambda row: None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""  # "stop" (an end token), "length" (its max_new_tokens) or "cancelled"
    batch_size: int = 0


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
        `adapter` picks a loaded LoRA adapter for this request only (None = the base model). `gen` also
        takes `tools` (OpenAI tool definitions the chat template shows the model)."""
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

    def options(self, gen: dict[str, Any]) -> GenerationOptions:
        """The decoding options a request's `gen` resolves to (the configured defaults filled in); an unknown
        option name raises."""
        ...

    def count_tokens(self, text: str, images: Sequence[Any] = ()) -> int:
        """Tokens of `text` as the model reads it (no special tokens added), with the tokens the processor
        expands `images` into when given (a `Prompt`'s text and images: the whole prompt's length)."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character span of each token of `text`: chunking at token counts on word borders."""
        ...

    def prompt(self, messages: Sequence[Message], *, images: Iterable[ImageInput] = (),
               tools: list[dict] | None = None) -> Prompt:
        """`messages` through the model's chat template (images decoded, OCR text added where the backend adds
        it): what `generate` would read. Raises for a model whose template lives elsewhere (a remote server)."""
        ...

    def image_text(self, image: ImageInput) -> list[str]:
        """The text the model is given about `image` besides its pixels (class names an embedded tower spells
        into the image tokens, the OCR block the backend adds); [] when it adds none."""
        ...

    def decode_rows(self, rows: Sequence[DecodeRow]) -> None:
        """Decode `rows` together (one batch, each row under its own adapter), streaming each row's text to
        its `emit` and calling its `on_end` once it ends. The serve batcher's entry: rows share a decoding
        rule (greedy, or the same sampling settings); the longest row's budget bounds the batch."""
        ...


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
