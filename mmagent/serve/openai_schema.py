"""The OpenAI wire format the server speaks: pydantic models for requests and responses.

Only what mmagent serves is modelled; fields the official clients add that do not change the answer
(``user``, ``stream_options``, ``logprobs: false`` ...) are accepted and ignored, so the `openai` client
and LangChain's ``ChatOpenAI`` work unchanged. Anything that would change the answer and is not supported
(``n > 1``, tools) is refused with a 400 naming the field.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ImageURL(_Lenient):
    url: str
    detail: str | None = None


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Union[TextPart, ImagePart]


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart] | None = None


class StructuredOutputs(_Lenient):
    """vLLM's ``structured_outputs`` field; mmagent serve takes its ``grammar`` (llguidance Lark, the
    same text vLLM's guidance backend reads), so one request constrains output on either server."""

    grammar: str | None = Field(default=None, max_length=200_000)
    json_: Any = Field(default=None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None


class MMAgentOptions(BaseModel):
    """Raw-generation options OpenAI has no field for (sent by `OpenAICompatBackend` under ``mmagent``).

    They are what the flows need to run on a remote model: extractive spans, banned strings, and tool
    definitions rendered into the model's own chat template (the reply comes back as text; the caller
    parses the tool call). A grammar travels in vLLM's ``structured_outputs`` instead."""

    model_config = ConfigDict(extra="forbid")
    spans_from: list[str] = Field(default_factory=list, max_length=64)
    span_skip: list[str] = Field(default_factory=list, max_length=256)
    banned: list[str] = Field(default_factory=list, max_length=64)
    facts_from: list[str] = Field(default_factory=list, max_length=64)
    span_none: str = ""
    span_none_bias: float = Field(default=0.0, ge=-20.0, le=20.0)
    tools: list[dict[str, Any]] | None = None

    def gen(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.span_none:
            out.update(span_none=self.span_none, span_none_bias=self.span_none_bias)
        for key in ("spans_from", "span_skip", "banned", "facts_from"):
            if getattr(self, key):
                out[key] = tuple(getattr(self, key))
        return out


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    tools: list[dict[str, Any]] | None = None
    stream_options: dict[str, Any] | None = None
    repetition_penalty: float | None = Field(default=None, gt=0)  # vLLM's extra field, same meaning
    mmagent: MMAgentOptions | None = None
    structured_outputs: StructuredOutputs | None = None

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)


class ScoreRequest(BaseModel):
    """``POST /v1/mmagent/score``: log-likelihood of each candidate as the assistant's whole reply."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    candidates: list[str] = Field(min_length=1, max_length=64)


class EmbeddingRequest(_Lenient):
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"  # base64: little-endian float32 (the openai client's default)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "mmagent"
    parent: str | None = None  # adapters: the base model they sit on
    max_model_len: int | None = None  # the base model's context length (vLLM's field)
    reads_image_text: bool | None = None  # the base model's prompt carries each image's OCR text (mmagent's)


class TokenizeRequest(BaseModel):
    """``POST /tokenize`` as vLLM takes it (text prompts): how many tokens `prompt` is for `model`."""

    model: str | None = None
    prompt: str
    add_special_tokens: bool = False  # counted without special tokens (vLLM defaults to true; true is refused here)
    return_offsets: bool = False  # mmagent's extension: each token's (start, end) character span


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: dict[str, int]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
