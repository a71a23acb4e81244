"""`MMChatModel`: the local vision-language model as a LangChain chat model.

Streams tokens, takes LangChain's multimodal content blocks, and calls tools: `bind_tools` renders the
tools through the model's own chat template (`tools=`), and — unless `constrain_tool_calls=False` — the
answer is decoded under a grammar built from the tools' JSON schemas (`mmagent.model.grammar`), so a
135M-parameter model still writes calls that parse and match the schema.

Two routes (`response_metadata["tool_calling"]`): a model with its own tool template and `<tool_call>`
tokens (Qwen2.5) decides under `tool_choice="auto"` — it generates freely and only what follows its call
marker is constrained ("template"); a model without them (the embedded SmolLM2) gets a grammar whose
first character makes the choice ("grammar"). `any`/`required`/a tool name force a call on both.
Usage metadata counts the real prompt tokens (rendered through the same template) and the generated tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, model_validator

from mmagent.errors import MMAgentError, RemoteUnsupported
from mmagent.model.grammar import CALL_CLOSE, CALL_OPEN, tool_call_grammar
from mmagent.orchestration.messages import ImagePolicy, to_hf_messages
from mmagent.orchestration.tool_parsing import ParsedOutput, holdback, parse_tool_calls
from mmagent.orchestration.tool_template import tool_template


@dataclass
class _Request:
    """One call, ready for the backend."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_names: list[str] | None
    gen: dict[str, Any]
    # how tool calls are decided: "template" (the model's own template and call tokens; it decides,
    # the call is grammar-checked) or "grammar" (a grammar makes the choice explicit); None: no tools
    route: str | None = None


class MMChatModel(BaseChatModel):
    """LangChain chat model over mmagent's model backend (the embedded default VLM or any HF model).

    Build it from a model id (`MMChatModel(model_id="default")`), a `Config`, or an existing backend.
    `None` generation fields fall back to the config's `model` section.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_id: str | None = Field(default=None, description="model.id to load; None = the config's")
    config: Any = Field(default=None, exclude=True, description="an mmagent Config; None = load_config()")
    backend: Any = Field(default=None, exclude=True, description="a loaded ModelBackend to use as is")
    adapter: str | None = Field(default=None, description="LoRA adapter every call uses; None = the base model")
    max_tokens: int | None = Field(default=None, description="max new tokens per answer")
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    constrain_tool_calls: bool = Field(default=True, description="grammar-constrained tool calls (llguidance)")
    allow_image_urls: bool = Field(default=False, description="fetch http(s) image URLs (off: no network)")

    @model_validator(mode="after")
    def _load(self) -> MMChatModel:
        if self.backend is None:
            from mmagent.config import load_config
            from mmagent.model import load_backend

            if self.config is None:
                self.config = load_config(overrides={"model.id": self.model_id} if self.model_id else {})
            elif self.model_id and self.model_id != self.config.model.id:
                raise MMAgentError(
                    f"model_id {self.model_id!r} disagrees with config.model.id {self.config.model.id!r}; give one."
                )
            self.backend = load_backend(self.config)
        if self.model_id is None:
            self.model_id = self.backend.info().model_id
        return self

    # ---- LangChain metadata ----------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "mmagent"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "adapter": self.adapter, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "chat_template_hash": self.backend.chat_template_hash}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params.update(ls_provider="mmagent", ls_model_name=kwargs.get("model") or self.model_id)
        for key, value in (("ls_temperature", self.temperature), ("ls_max_tokens", self.max_tokens),
                           ("ls_stop", stop or self.stop)):
            if value is not None:
                params[key] = value
        return params

    # ---- tools -----------------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | bool | dict | None = None,
        parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools. `tool_choice`: "auto"/None (the model decides), "any"/"required"/True (must call),
        a tool name (must call that one), "none"/False (tools shown, no call expected)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        choice = _normalise_choice(tool_choice, names)
        return super().bind(tools=formatted, tool_choice=choice, parallel_tool_calls=parallel_tool_calls, **kwargs)

    # ---- generation ------------------------------------------------------------------------------
    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Request:
        cfg = self.config
        policy = ImagePolicy(allow_urls=self.allow_image_urls,
                             max_pixels=cfg.limits.max_image_pixels if cfg else ImagePolicy.max_pixels)
        hf_messages = to_hf_messages(messages, policy)
        tools = kwargs.get("tools") or None
        choice = kwargs.get("tool_choice") or "auto"
        gen: dict[str, Any] = {}
        for name, value in (("max_new_tokens", kwargs.get("max_tokens", self.max_tokens)),
                            ("temperature", kwargs.get("temperature", self.temperature)),
                            ("top_p", kwargs.get("top_p", self.top_p)),
                            ("repetition_penalty", kwargs.get("repetition_penalty", self.repetition_penalty)),
                            ("seed", kwargs.get("seed", self.seed))):
            if value is not None:
                gen[name] = value
        stops = tuple(dict.fromkeys([*(self.stop or []), *(stop or [])]))
        if stops:
            gen["stop"] = stops
        route = None
        if tools and choice == "none":
            tools = None
        elif tools:
            template = tool_template(self.backend)
            route = "template" if template.native else "grammar"
            if self.constrain_tool_calls:
                forced = [t for t in tools if t["function"]["name"] == choice]
                mode = "required" if choice != "auto" else ("lazy" if template.native else "auto")
                gen["grammar"] = tool_call_grammar(forced or tools, mode, bool(kwargs.get("parallel_tool_calls")),
                                                   marker_tokens=template.marker_tokens)
        names = [t["function"]["name"] for t in tools] if tools else None
        return _Request(hf_messages, tools, names, gen, route)

    def _pieces(self, request: _Request) -> Iterator[str]:
        extra = {"tools": request.tools} if request.tools else {}
        return self.backend.generate(request.messages, adapter=self.adapter, **extra, **request.gen)

    def _usage(self, request: _Request, text: str) -> UsageMetadata | None:
        try:
            rendered = self.backend.prompt(request.messages, tools=request.tools)
        except RemoteUnsupported:  # the template is on the server: no count to give
            return None
        prompt = self.backend.count_tokens(rendered.text, rendered.images)
        output = self.backend.count_tokens(text) if text else 0
        return UsageMetadata(input_tokens=prompt, output_tokens=output, total_tokens=prompt + output)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._prepare(messages, stop, kwargs)
        text = ""
        for piece in self._pieces(request):
            text += piece
        parsed = parse_tool_calls(text, request.tool_names) if request.tools else ParsedOutput(text)
        message = AIMessage(
            content=parsed.content,
            tool_calls=[{"name": c.name, "args": c.args, "id": c.id, "type": "tool_call"} for c in parsed.calls],
            invalid_tool_calls=_invalid(parsed),
            usage_metadata=self._usage(request, text),
            response_metadata=self._response_metadata(request),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._prepare(messages, stop, kwargs)
        text, shown = "", 0
        for piece in self._pieces(request):
            text += piece
            visible = holdback(text, bool(request.tools))
            if visible > shown:
                delta, shown = text[shown:visible], visible
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        yield self._last_chunk(request, text, text[:shown])

    def _last_chunk(self, request: _Request, text: str, streamed: str) -> ChatGenerationChunk:
        """The rest of the text, the tool calls (parsed from the whole answer), usage and metadata."""
        parsed = parse_tool_calls(text, request.tool_names) if request.tools else ParsedOutput(text)
        content = parsed.content
        if parsed.invalid:  # LangChain's partial-JSON repair would turn invalid chunks into calls: show them as text
            content = "\n".join([content, *(f"{CALL_OPEN}{c.raw}{CALL_CLOSE}" for c in parsed.invalid)]).strip()
        rest = content[len(streamed):] if content.startswith(streamed) else ""
        chunks = [{"name": c.name, "args": json.dumps(c.args, ensure_ascii=False), "id": c.id, "index": i,
                   "type": "tool_call_chunk"} for i, c in enumerate(parsed.calls)]
        message = AIMessageChunk(content=rest, tool_call_chunks=chunks,
                                 usage_metadata=self._usage(request, text),
                                 response_metadata=self._response_metadata(request), chunk_position="last")
        return ChatGenerationChunk(message=message)

    def _response_metadata(self, request: _Request) -> dict[str, Any]:
        meta = {"model_name": self.model_id, "model_provider": "mmagent",
                "chat_template_hash": self.backend.chat_template_hash}
        if request.route:
            meta["tool_calling"] = request.route
        return meta


def _invalid(parsed: ParsedOutput) -> list[dict[str, Any]]:
    return [{"name": c.name, "args": c.raw, "id": c.id, "error": c.error, "type": "invalid_tool_call"}
            for c in parsed.invalid]


def _normalise_choice(choice: str | bool | dict | None, names: list[str]) -> Literal["auto", "required", "none"] | str:
    if choice is None or choice == "auto":
        return "auto"
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice is False or choice == "none":
        return "none"
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name") or choice.get("name")
    if isinstance(choice, str) and choice in names:
        return choice
    raise MMAgentError(f"tool_choice {choice!r} is not valid; use 'auto', 'any', 'none' or one of {names}.")
