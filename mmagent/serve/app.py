"""`create_app`: the OpenAI-compatible HTTP API over one resident model (FastAPI).

Routes: ``POST /v1/chat/completions`` (SSE streaming or not; ``model`` = the base model's served name or
an adapter's name), ``GET /v1/models``, ``POST /v1/embeddings`` (the memory embedder), the flows under
``/v1/flows/{qa,support,summarize,classify}`` (their events as SSE) with support sessions by id,
``GET /health`` and Prometheus ``GET /metrics``. All generation goes through one :class:`Batcher`, so
concurrent requests — chat and flows, any mix of adapters — are decoded together.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from mmagent.errors import MMAgentError, require
from mmagent.serve.batching import BatchedBackend, Batcher, Generation, GenerationTimeout
from mmagent.serve.heap import Trimmer
from mmagent.serve.limits import ApiError, BodyLimit, ServeSettings, check_bearer, decode_image
from mmagent.serve.metrics import ServeMetrics, route_of
from mmagent.serve.openai_schema import (ChatCompletionRequest, EmbeddingRequest, ModelCard, ModelList, ScoreRequest,
                                         TokenizeRequest)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mmagent.config import Config
    from mmagent.serve.flows_api import FlowRunner

log = logging.getLogger(__name__)


@dataclass
class Server:
    """What the app's handlers share: the model, its batcher, flows, metrics, the settings."""

    config: "Config"
    settings: ServeSettings
    backend: Any
    batcher: Batcher
    metrics: ServeMetrics
    flows: "FlowRunner"
    started: float = field(default_factory=time.time)

    @property
    def served_name(self) -> str:
        return self.settings.served_name or self.config.model.id

    def adapter_for(self, model: str) -> str | None:
        """The adapter a request's ``model`` names (None = the base model); 404 for an unknown name."""
        if model == self.served_name:
            return None
        if model in self.backend.adapters.names:
            return model
        names = ", ".join([self.served_name, *self.backend.adapters.names])
        raise ApiError(404, f"model {model!r} is not served here; available: {names} (GET /v1/models).",
                       param="model", code="model_not_found")


def create_app(config: "Config", settings: ServeSettings | None = None, backend: Any = None) -> "FastAPI":
    """The FastAPI app for `config` (loads its model unless `backend` is given)."""
    require("fastapi", "serve")
    require("prometheus_client", "serve")
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from mmagent.model import load_backend
    from mmagent.serve.flows_api import FlowRunner

    settings = settings or ServeSettings.for_config(config)
    backend = backend if backend is not None else load_backend(config)
    metrics = ServeMetrics()
    batcher = Batcher(backend, max_batch=settings.max_batch, max_wait=settings.batch_wait_ms / 1000,
                      metrics=metrics, max_prompt_tokens=settings.max_prompt_tokens)
    flows = FlowRunner(config, BatchedBackend(backend, batcher, settings.timeout), settings)
    server = Server(config, settings, backend, batcher, metrics, flows)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        flows.close()
        batcher.close()

    app = FastAPI(title="mmagent", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = server
    _errors(app)
    _routes(app, server)
    from mmagent.serve.flows_api import flow_routes

    flow_routes(app, server)
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_body_mb * 1e6))
    app.add_middleware(_Observed, metrics=metrics, api_key=settings.api_key, trimmer=Trimmer())
    return app


class _Observed:
    """ASGI middleware: bearer auth (everything but /health) and per-route request metrics."""

    def __init__(self, app: Any, metrics: ServeMetrics, api_key: str | None, trimmer: Trimmer | None = None) -> None:
        self.app, self.metrics, self.api_key, self.trimmer = app, metrics, api_key, trimmer

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]
        if scope["path"] != "/health":
            try:
                check_bearer(dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1"), self.api_key)
            except ApiError as exc:
                await _send_json(send, exc.status, exc.body())
                self.metrics.observe_request("unauthorized", exc.status, time.perf_counter() - started)
                return

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.observe_request(route_of(scope), status[0], time.perf_counter() - started)
            if self.trimmer is not None:
                self.trimmer.trim()  # freed memory back to the system (serve/heap.py), at most every few seconds


async def _send_json(send: Any, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _errors(app: "FastAPI") -> None:
    """Every refusal is a 4xx with an OpenAI-style JSON error body."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error(exc.errors()).body(), status_code=400)

    @app.exception_handler(GenerationTimeout)
    async def timeout(request: Request, exc: GenerationTimeout) -> JSONResponse:
        return JSONResponse(ApiError(408, str(exc), "timeout", code="timeout").body(), status_code=408)

    @app.exception_handler(MMAgentError)
    async def refused(request: Request, exc: MMAgentError) -> JSONResponse:  # bad adapter, image, flow input...
        return JSONResponse(ApiError(400, str(exc)).body(), status_code=400)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:  # a bug or a model failure: logged
        log.exception("request failed")
        return JSONResponse(ApiError(500, f"the server failed: {type(exc).__name__}: {exc}", "server_error").body(),
                            status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """pydantic's errors → one sentence naming the field and what was expected (or where the JSON broke)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        where = first.get("ctx", {}).get("error", "")
        return ApiError(400, f"the request body is not valid JSON ({where}); send a JSON object with "
                             "'Content-Type: application/json'.", code="invalid_json")
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {e.get('msg')}" + (f" (got {e['input']!r:.60})" if "input" in e and loc else ""))
    return ApiError(400, "invalid request: " + "; ".join(parts), param=str(first.get("loc", ("",))[-1]))


def _routes(app: "FastAPI", server: Server) -> None:
    from fastapi import Response
    from fastapi.responses import StreamingResponse

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": server.served_name, "adapters": list(server.backend.adapters.names),
                "queue": server.batcher.waiting(), "uptime_s": round(time.time() - server.started)}

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    def models() -> ModelList:
        created = int(server.started)
        info = server.backend.info()
        cards = [ModelCard(id=server.served_name, created=created, max_model_len=info.context_length,
                           reads_image_text=info.reads_image_text)]
        cards += [ModelCard(id=name, created=created, parent=server.served_name) for name in server.backend.adapters.names]
        return ModelList(data=cards)

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest) -> Any:
        generation = start_chat(server, request)
        if request.stream:
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            return StreamingResponse(until_disconnected(generation, sse_chunks(generation, request.model, include_usage)),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        return completion(generation, request.model)

    @app.post("/v1/embeddings")
    def embeddings(request: EmbeddingRequest) -> Any:
        return embed(server, request)

    @app.post("/v1/mmagent/score")
    def score(request: ScoreRequest) -> dict[str, Any]:
        """Label scores for the classify flow on a remote model (`OpenAICompatBackend.score`)."""
        adapter = server.adapter_for(request.model)
        messages = to_messages(request, server.settings)
        return {"object": "score", "model": request.model,
                "scores": server.backend.score(messages, request.candidates, adapter=adapter)}


    @app.post("/tokenize")
    def tokenize(request: TokenizeRequest) -> dict[str, Any]:
        """vLLM's token count endpoint (`OpenAICompatBackend.count_tokens`: the summarize flow's budget)."""
        server.adapter_for(request.model or server.served_name)  # an unknown name is a 404, as elsewhere
        if request.add_special_tokens:
            raise ApiError(400, "add_special_tokens=true is not supported; count the text alone (false).",
                           param="add_special_tokens")
        out: dict[str, Any] = {"count": server.backend.count_tokens(request.prompt),
                               "max_model_len": server.backend.info().context_length}
        if request.return_offsets:
            out["offsets"] = server.backend.token_spans(request.prompt)
        return out


def start_chat(server: Server, request: "ChatCompletionRequest") -> Generation:
    """Check a chat request against the limits and queue it (errors here are 4xx, before any streaming)."""
    if request.n != 1:
        raise ApiError(400, f"n={request.n} is not supported; ask for one choice (n=1) per request.", param="n")
    if request.tools:
        raise ApiError(400, "tool calling is not offered on /v1/chat/completions; the support flow "
                            "(POST /v1/flows/support) runs tools under a policy.", param="tools")
    adapter = server.adapter_for(request.model)
    asked = request.max_completion_tokens or request.max_tokens
    wanted = asked or min(server.config.model.max_new_tokens, server.settings.max_tokens)
    if wanted > server.settings.max_tokens:
        raise ApiError(400, f"max_tokens={wanted} is over this server's limit of {server.settings.max_tokens}; "
                            "ask for fewer, or start the server with a larger --max-tokens.", param="max_tokens",
                       code="max_tokens_over_limit")
    gen: dict[str, Any] = {"max_new_tokens": wanted, "stop": request.stop_strings()}
    if request.temperature is not None:
        gen["temperature"] = request.temperature
    if request.top_p is not None:
        gen["top_p"] = request.top_p
    if request.seed is not None and (request.temperature or 0) > 0:
        gen["seed"] = request.seed  # greedy decoding ignores the seed: keep such requests batchable
    if request.repetition_penalty is not None:
        gen["repetition_penalty"] = request.repetition_penalty
    tools = None
    structured = request.structured_outputs
    if structured is not None:
        if structured.json_ is not None or structured.regex or structured.choice:
            raise ApiError(400, "structured_outputs: only 'grammar' (llguidance Lark) is supported here; express a "
                                "JSON schema as a grammar with %json.", param="structured_outputs")
        if structured.grammar:
            gen["grammar"] = structured.grammar
    if request.mmagent is not None:
        gen.update(request.mmagent.gen())
        tools = request.mmagent.tools
    return server.batcher.submit(to_messages(request, server.settings), adapter=adapter, tools=tools,
                                 timeout=server.settings.timeout, **gen)


def to_messages(request: ChatCompletionRequest | ScoreRequest, settings: ServeSettings) -> list[dict[str, Any]]:
    """OpenAI messages → the model core's (Hugging Face) messages; images decoded and size-checked."""
    out = []
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        if message.content is None or isinstance(message.content, str):
            out.append({"role": role, "content": message.content or ""})
            continue
        parts = []
        for part in message.content:
            if part.type == "text":
                parts.append({"type": "text", "text": part.text})
            else:
                parts.append({"type": "image", "image": decode_image(part.image_url.url, settings)})
        out.append({"role": role, "content": parts})
    return out


def completion(generation: Generation, model: str) -> Any:
    from mmagent.serve.openai_schema import (AssistantMessage, ChatCompletion, Choice, Usage, completion_id, now)

    text = "".join(generation)
    usage = Usage(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                  total_tokens=generation.prompt_tokens + generation.completion_tokens)
    return ChatCompletion(id=completion_id(), created=now(), model=model, usage=usage,
                          choices=[Choice(message=AssistantMessage(content=text), finish_reason=generation.finish_reason)])


async def until_disconnected(generation: Generation, chunks: Iterator[str]) -> AsyncIterator[str]:
    """`chunks` for a StreamingResponse; a client that leaves cancels its request, so its batch row stops
    decoding at once instead of running to its token budget."""
    from starlette.concurrency import iterate_in_threadpool

    try:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
    finally:
        generation.cancel()


def sse_chunks(generation: Generation, model: str, include_usage: bool) -> Iterator[str]:
    """The answer as OpenAI chat.completion.chunk server-sent events, ending with ``data: [DONE]``."""
    from mmagent.serve.openai_schema import ChatCompletionChunk, ChunkChoice, Delta, Usage, completion_id, now

    cid, created = completion_id(), now()

    def chunk(delta: Delta, finish: str | None = None, usage: Usage | None = None, choices: bool = True) -> str:
        body = ChatCompletionChunk(id=cid, created=created, model=model, usage=usage,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)] if choices else [])
        return f"data: {body.model_dump_json(exclude_none=True)}\n\n"

    try:
        yield chunk(Delta(role="assistant", content=""))
        for piece in generation:
            yield chunk(Delta(content=piece))
        yield chunk(Delta(), finish=generation.finish_reason)
        if include_usage:
            usage = Usage(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                          total_tokens=generation.prompt_tokens + generation.completion_tokens)
            yield chunk(Delta(), usage=usage, choices=False)
    except Exception as exc:  # the status line is sent already: the error goes in the stream
        if not isinstance(exc, MMAgentError):
            log.exception("generation failed mid-stream")
        status = 408 if isinstance(exc, GenerationTimeout) else 500
        yield f"data: {json.dumps(ApiError(status, str(exc), 'server_error').body())}\n\n"
    finally:
        generation.close()
    yield "data: [DONE]\n\n"


def embed(server: Server, request: Any) -> Any:
    """Vectors from the memory embedder (the one `mmagent ingest` pins collections to)."""
    require("sentence_transformers", "memory")
    from mmagent.memory.embedder import get_embedder
    from mmagent.serve.openai_schema import EmbeddingItem, EmbeddingResponse

    texts = [request.input] if isinstance(request.input, str) else list(request.input)
    if not texts or len(texts) > 256:
        raise ApiError(400, f"input must hold 1 to 256 texts; got {len(texts)}.", param="input")
    embedder = get_embedder(server.config.memory.embedder)
    if request.model not in (None, embedder.name, embedder.requested):
        raise ApiError(404, f"embedding model {request.model!r} is not served here; use {embedder.name!r}.",
                       param="model", code="model_not_found")
    vectors = embedder.embed(texts)
    tokens = sum(len(embedder.tokenizer(t)["input_ids"]) for t in texts)
    if request.encoding_format == "base64":
        import numpy as np

        vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
    return EmbeddingResponse(data=[EmbeddingItem(index=i, embedding=v) for i, v in enumerate(vectors)],
                             model=embedder.name, usage={"prompt_tokens": tokens, "total_tokens": tokens})
