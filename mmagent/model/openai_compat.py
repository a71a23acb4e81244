"""`OpenAICompatBackend`: the model core over HTTP, on any OpenAI-compatible server.

``model.id: openai+http://HOST:PORT/v1`` (or ``openai+https://...``; ``#NAME`` at the end picks the base
model when the server lists several) makes flows, evals and the UI generate on another process: another
``mmagent serve`` (one model for many users) or vLLM with ``--enable-lora`` (adapters are model names).
Adapters are the server's: ``/v1/models`` entries with a ``parent`` (vLLM ``--lora-modules``, ``mmagent
serve --adapter-path``); choosing one per request sends its name as ``model``.

What crosses the wire is the OpenAI chat format, images as data URLs. Decoding options OpenAI has no
field for go as extra body fields: ``repetition_penalty`` and a grammar as ``structured_outputs.grammar``
(llguidance Lark; vLLM and mmagent serve read both) and, under ``mmagent``, extractive spans, banned
strings and tool definitions (only mmagent serve applies them; other servers ignore them, so the
extractive qa mode and native tool templates are exact only against mmagent serve). The API key comes
from ``MMAGENT_OPENAI_API_KEY`` (or ``OPENAI_API_KEY``).

The classify flow's label scores come from mmagent serve's ``/v1/mmagent/score`` (no OpenAI or vLLM
equivalent); token counts from the server's ``/tokenize`` (vLLM's endpoint, which mmagent serve offers too)
and the context length from its ``/v1/models`` card (``max_model_len``). What needs the chat template or the
weights in this process (a rendered `Prompt`, token offsets, the image's tower text, batched rows) raises
`RemoteUnsupported` saying so; training needs the model in-process too.
"""

from __future__ import annotations

import base64
import copy
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Sequence

from mmagent.errors import AdapterError, MMAgentError, ModelLoadError, RemoteUnsupported, require
from mmagent.images import IMAGE_MIME_TYPES, ImageInput, load_image
from mmagent.model.adapters import AdapterInfo
from mmagent.model.base import DecodeRow, GenerationOptions, Message, ModelInfo, Prompt, attach_images

PREFIX = "openai+"
EXTRA = ("spans_from", "span_skip", "span_none", "span_none_bias", "banned", "facts_from")  # sent under "mmagent"; only mmagent serve applies them


def remote_url(model_id: str) -> str | None:
    """The server URL of an ``openai+http(s)://...`` model id (None for any other id)."""
    if model_id.startswith((PREFIX + "http://", PREFIX + "https://")):
        return model_id[len(PREFIX):].partition("#")[0].rstrip("/")
    return None


class RemoteAdapters:
    """The server's adapters (its `/v1/models` entries that have a parent), chosen per request by name."""

    def __init__(self, backend: "OpenAICompatBackend") -> None:
        self._backend = backend

    @property
    def names(self) -> tuple[str, ...]:
        return self._backend.listing()[1]

    def info(self, name: str) -> AdapterInfo:
        if name not in self.names and name not in self._backend.listing(refresh=True)[1]:
            raise AdapterError(f"unknown adapter '{name}'; the server at {self._backend.url} serves: "
                               f"{', '.join(self.names) or 'no adapters'} (GET /v1/models).")
        return AdapterInfo(name, f"{self._backend.url} (remote)", None, "", None)

    def load(self, name: str, path: Any) -> AdapterInfo:
        raise AdapterError(f"adapters of a remote model are loaded by its server, not here: start it with "
                           f"'mmagent serve --adapter-path {name}={path}' or 'vllm serve ... --enable-lora "
                           f"--lora-modules {name}={path}'.")


class OpenAICompatBackend:
    """A `ModelBackend` that streams from an OpenAI-compatible ``/v1/chat/completions``."""

    def __init__(self, config: Any) -> None:
        require("openai", "serve")
        import openai

        self.config = config
        self.model_config = config.model
        url = remote_url(config.model.id)
        if url is None:
            raise ModelLoadError(f"model.id {config.model.id!r} is not 'openai+http(s)://HOST:PORT/v1'.")
        self.url = url
        self._pinned = config.model.id.partition("#")[2] or None
        key = os.environ.get("MMAGENT_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=600.0)
        self._listing: tuple[str, tuple[str, ...]] | None = None
        self._base_card: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.adapters = RemoteAdapters(self)
        self.accepts = IMAGE_MIME_TYPES
        self.listing()  # fail now, with the URL, if nothing answers there

    @property
    def chat_template_hash(self) -> str:
        return f"remote:{self.base_name}"  # the template lives on the server; this marks manifests as remote

    @property
    def base_name(self) -> str:
        return self.listing()[0]

    def listing(self, refresh: bool = False) -> tuple[str, tuple[str, ...]]:
        """(base model name, adapter names) from the server's ``/v1/models``."""
        import openai

        with self._lock:
            if self._listing is None or refresh:
                try:
                    cards = list(self.client.models.list())
                except openai.OpenAIError as exc:
                    raise ModelLoadError(f"no OpenAI-compatible server answered at {self.url} ({exc}); start one "
                                         "(mmagent serve, vllm serve) or fix model.id.") from exc
                bases = [c.id for c in cards if not getattr(c, "parent", None)]
                adapters = tuple(c.id for c in cards if getattr(c, "parent", None))
                if self._pinned and self._pinned not in bases:
                    raise ModelLoadError(f"the server at {self.url} serves no base model {self._pinned!r}; it "
                                         f"serves {', '.join(bases) or 'none'}.")
                if not bases:
                    raise ModelLoadError(f"the server at {self.url} lists no models.")
                self._listing = (self._pinned or bases[0], adapters)
                card = next(c for c in cards if c.id == self._listing[0])
                self._base_card = card.model_dump() if hasattr(card, "model_dump") else dict(card)
            return self._listing

    def with_config(self, config: Any) -> "OpenAICompatBackend":
        """This server connection under `config`'s decoding defaults and limits (`load_backend`'s view)."""
        view = copy.copy(self)
        view.config, view.model_config = config, config.model
        view.adapters = RemoteAdapters(view)
        return view

    def options(self, gen: dict[str, Any]) -> GenerationOptions:
        mc = self.model_config
        return GenerationOptions(**{"max_new_tokens": mc.max_new_tokens, "temperature": mc.temperature,
                                    "repetition_penalty": mc.repetition_penalty, **gen})

    def info(self) -> ModelInfo:
        names = self.adapters.names
        length = self._base_card.get("max_model_len")  # vLLM's card field; mmagent serve's too
        return ModelInfo(model_id=self.model_config.id, path=self.url, architecture="remote (OpenAI-compatible)",
                         precision="remote", device=self.url, parameters=0,
                         chat_template_hash=self.chat_template_hash, adapters=names,
                         context_length=int(length) if length else None,
                         reads_image_text=bool(self._base_card.get("reads_image_text")))

    def count_tokens(self, text: str, images: Sequence[Any] = ()) -> int:
        """Tokens of `text` as the server's tokenizer counts them (``POST /tokenize``, vLLM's endpoint)."""
        if images:
            raise RemoteUnsupported(f"the model server at {self.url} counts text tokens only; an image's tokens "
                                    "depend on its processor, which runs on the server.")
        return int(self._tokenize(text, offsets=False)["count"])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Each token's character span, from mmagent serve's ``/tokenize`` (``return_offsets``, our extension;
        vLLM's endpoint gives none, so chunking at token counts needs mmagent serve or a local model)."""
        offsets = self._tokenize(text, offsets=True).get("offsets")
        if offsets is None:
            raise RemoteUnsupported(f"the model server at {self.url} gives no token offsets (its /tokenize has no "
                                    "return_offsets: not mmagent serve); chunking at token counts (the summarize "
                                    "flow) needs 'mmagent serve' there or a local model.id.")
        return [(int(a), int(b)) for a, b in offsets]

    def _tokenize(self, text: str, offsets: bool) -> dict[str, Any]:
        import openai

        root = self.url.removesuffix("/v1")
        body: dict[str, Any] = {"model": self.base_name, "prompt": text, "add_special_tokens": False}
        if offsets:
            body["return_offsets"] = True
        try:
            return self.client.post(root + "/tokenize", body=body, cast_to=object)
        except openai.NotFoundError as exc:
            raise RemoteUnsupported(f"the model server at {self.url} does not count tokens (no {root}/tokenize); "
                                    "vLLM and mmagent serve offer it.") from exc
        except openai.OpenAIError as exc:
            raise ModelLoadError(f"the model server at {self.url} did not tokenize: {exc}") from exc

    def prompt(self, messages: Sequence[Message], *, images: Iterable[ImageInput] = (),
               tools: list[dict] | None = None) -> Prompt:
        raise RemoteUnsupported(self._local_only("the chat template's rendered prompt"))

    def image_text(self, image: ImageInput) -> list[str]:
        raise RemoteUnsupported(self._local_only("the text the model reads about an image"))

    def decode_rows(self, rows: Sequence[DecodeRow]) -> None:
        raise RemoteUnsupported(self._local_only("batched rows (the server batches its own requests)"))

    def _local_only(self, what: str) -> str:
        return (f"{what} needs the model in this process; the model is served at {self.url} "
                "(model.id openai+...). Use a local model.id for this.")

    def generate(self, messages: Sequence[Message], *, images: Iterable[ImageInput] = (),
                 adapter: str | None = None, tools: list[dict] | None = None, **gen: Any) -> Iterator[str]:
        """Stream the answer; the request is sent (and refused, if it is) before the first piece is asked for."""
        import openai

        GenerationOptions(**gen)  # unknown option names fail here, as on the local backend
        body = self._body(attach_images(messages, images), self._model(adapter), tools, gen)
        try:
            stream = self.client.chat.completions.create(stream=True, **body)
        except openai.APIStatusError as exc:
            raise MMAgentError(f"the model server at {self.url} refused the request ({exc.status_code}): "
                               f"{_message(exc)}") from exc
        except openai.OpenAIError as exc:
            raise ModelLoadError(f"the model server at {self.url} did not answer: {exc}") from exc
        return _pieces(stream, self.url)

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> str:
        return "".join(self.generate(messages, **kwargs))

    def generate_batch(self, conversations: Sequence[Sequence[Message]], *, adapter: str | None = None,
                       **gen: Any) -> list[str]:
        """Answers to several conversations, sent concurrently (the server batches them)."""
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(conversations)))) as pool:
            return list(pool.map(lambda c: self.complete(c, adapter=adapter, **gen), conversations))

    def score(self, messages: Sequence[Message], candidates: Sequence[str], *, images: Iterable[ImageInput] = (),
              adapter: str | None = None) -> list[float]:
        """Log-likelihood of each candidate reply, computed by the server (``POST /v1/mmagent/score``, which
        mmagent serve offers; vLLM and hosted APIs have no equivalent, so the classify flow needs mmagent serve)."""
        import openai

        body = {"model": self._model(adapter), "candidates": list(candidates),
                "messages": [self._message(m) for m in attach_images(messages, images)]}
        try:
            result = self.client.post("/mmagent/score", body=body, cast_to=object)
        except openai.NotFoundError as exc:
            raise MMAgentError(f"the model server at {self.url} cannot score replies (no /v1/mmagent/score): the "
                               "classify flow's label scoring needs 'mmagent serve' there.") from exc
        except openai.APIStatusError as exc:
            raise MMAgentError(f"the model server at {self.url} refused to score ({exc.status_code}): "
                               f"{_message(exc)}") from exc
        return [float(x) for x in result["scores"]]

    def _model(self, adapter: str | None) -> str:
        """The ``model`` field naming `adapter` (None = the base model); an unknown adapter fails here."""
        if adapter is None:
            return self.base_name
        self.adapters.info(adapter)
        return adapter

    def _body(self, messages: list[Message], model: str, tools: list[dict] | None, gen: dict[str, Any]) -> dict:
        body: dict[str, Any] = {"model": model, "messages": [self._message(m) for m in messages]}
        # the config's decoding defaults apply as they do locally: a remote engine left to its own decides
        # the length itself (vLLM generated up to its context length for a chat given --max-new-tokens 24)
        mc = self.model_config
        gen = {"max_new_tokens": mc.max_new_tokens, "temperature": mc.temperature,
               "repetition_penalty": mc.repetition_penalty, **gen}
        body["max_tokens"] = gen["max_new_tokens"]
        for key in ("temperature", "top_p", "seed"):
            if gen.get(key) is not None:
                body[key] = gen[key]
        if gen.get("stop"):
            body["stop"] = list(gen["stop"])
        extra: dict[str, Any] = {}
        if gen.get("repetition_penalty") is not None:
            extra["repetition_penalty"] = gen["repetition_penalty"]
        ours = {k: (list(gen[k]) if isinstance(gen[k], tuple) else gen[k]) for k in EXTRA if gen.get(k)}
        if tools:
            ours["tools"] = tools
        if ours:
            extra["mmagent"] = ours
        if gen.get("grammar"):
            extra["structured_outputs"] = {"grammar": gen["grammar"]}  # vLLM's field; mmagent serve reads it too
        if extra:
            body["extra_body"] = extra
        return body

    def _message(self, message: Message) -> dict[str, Any]:
        content = message.get("content")
        if content is None or isinstance(content, str):
            return {"role": message["role"], "content": content or ""}
        parts = []
        for part in content:
            if part.get("type") == "image" or "image" in part:
                parts.append({"type": "image_url", "image_url": {"url": self._data_url(part.get("image"))}})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        return {"role": message["role"], "content": parts}

    def _data_url(self, image: ImageInput) -> str:
        picture = load_image(image, self.config.limits.max_image_pixels)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pieces(stream: Any, url: str) -> Iterator[str]:
    import openai

    try:
        for chunk in stream:
            error = getattr(chunk, "error", None)
            if error:
                raise MMAgentError(f"the model server at {url} failed mid-answer: {error}")
            for choice in chunk.choices or []:
                if choice.delta and choice.delta.content:
                    yield choice.delta.content
    except openai.OpenAIError as exc:
        raise ModelLoadError(f"the model server at {url} failed mid-answer: {exc}") from exc
    finally:
        stream.close()


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc)
