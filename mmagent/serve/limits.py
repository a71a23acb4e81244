"""What the server accepts: its settings, bearer-token auth, body size, images (data URLs; http(s) only
when allowed), token and time limits. Every refusal is an :class:`ApiError`: a 4xx status and a JSON body
in OpenAI's error format that says what was expected, what came, and what to do."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from mmagent.errors import MMAgentError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeSettings:
    """How `mmagent serve` runs. Limits default from the config's `limits:` section and `model:` section."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # None: no auth (fine on loopback; warned about on any other address)
    max_body_mb: float = 200.0
    max_image_pixels: int = 89_478_485
    max_tokens: int = 1024  # the most a request may ask for (max_tokens / max_completion_tokens)
    max_prompt_tokens: int = 8192
    timeout: float = 300.0  # seconds from arrival to last token, queue wait included
    allow_image_urls: bool = False  # fetch http(s) image URLs (the server then makes outgoing requests)
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    served_name: str | None = None  # the base model's name in /v1/models; None = model.id

    def __post_init__(self) -> None:
        for name in ("max_body_mb", "max_image_pixels", "max_tokens", "max_prompt_tokens", "timeout", "max_batch"):
            if getattr(self, name) <= 0:
                raise MMAgentError(f"serve setting {name} must be > 0; got {getattr(self, name)!r}.")
        if self.batch_wait_ms < 0:
            raise MMAgentError(f"serve setting batch_wait_ms must be >= 0; got {self.batch_wait_ms!r}.")

    @classmethod
    def for_config(cls, config: Any, **values: Any) -> "ServeSettings":
        """Settings whose body and image limits are `config.limits`' (the UI's and the CLI's too)."""
        values.setdefault("max_body_mb", float(config.limits.max_upload_mb))
        values.setdefault("max_image_pixels", config.limits.max_image_pixels)
        return cls(**values)

    @property
    def exposed(self) -> bool:
        return self.host not in LOOPBACK and not _is_loopback(self.host)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiError(MMAgentError):
    """A refused request: `status` (4xx) and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def check_bearer(header: str | None, api_key: str | None) -> None:
    """Refuse (401) a request without ``Authorization: Bearer <api_key>`` when a key is set."""
    if api_key is None:
        return
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' with the key "
                            "the server was started with (MMAGENT_SERVE_API_KEY).", "authentication_error",
                       code="invalid_api_key")


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413, by Content-Length or while reading
    a chunked body, before the JSON is parsed."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, int(length))
            return
        seen = 0
        refused = False

        async def counting_receive() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(send, seen)

    async def _refuse(self, send: Any, got: int) -> None:
        error = ApiError(413, f"request body is {got / 1e6:.1f} MB (or more), over the server's limit of "
                              f"{self.max_bytes / 1e6:.1f} MB; send smaller or fewer images, or start the server "
                              "with a larger --max-body-mb.", code="body_too_large")
        payload = json.dumps(error.body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


class _TooLarge(Exception):
    pass


def decode_image(url: str, settings: ServeSettings) -> Any:
    """An OpenAI ``image_url`` (a ``data:image/...;base64,`` URL, or http(s) when allowed) → a PIL image,
    refused with 413 above `max_image_pixels` (read from the header, before decoding the pixels)."""
    if url.startswith("data:"):
        data = _data_url_bytes(url)
    elif url.startswith(("http://", "https://")):
        if not settings.allow_image_urls:
            raise ApiError(400, "image URLs are not fetched by this server; send the image inline as a data URL "
                                "('data:image/png;base64,...'), or start the server with --allow-image-urls.",
                           param="messages", code="image_url_refused")
        data = _fetch(url, settings)
    else:
        raise ApiError(400, f"image_url must be a data URL or an http(s) URL; got one starting {url[:16]!r}.",
                       param="messages")
    return _open_checked(data, settings.max_image_pixels)


def _data_url_bytes(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64") or not header[5:].startswith("image/"):
        raise ApiError(400, f"expected a data URL like 'data:image/png;base64,...'; got one starting {url[:30]!r}.",
                       param="messages")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"the image data URL is not valid base64 ({exc}).", param="messages") from exc


def _fetch(url: str, settings: ServeSettings) -> bytes:
    import httpx

    limit = int(settings.max_body_mb * 1e6)
    try:
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=False) as response:
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the image at {url} is over {limit / 1e6:.0f} MB.", param="messages")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ApiError(400, f"could not fetch the image at {url}: {exc}", param="messages") from exc


def _open_checked(data: bytes, max_pixels: int) -> Any:
    import io

    from PIL import Image

    from mmagent.errors import ImageError
    from mmagent.images import load_image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Exception as exc:
        raise ApiError(400, f"the image could not be read ({type(exc).__name__}: {exc}); send PNG, JPEG, WebP or GIF.",
                       param="messages", code="bad_image") from exc
    if width * height > max_pixels:
        raise ApiError(413, f"image is {width}x{height} px ({width * height / 1e6:.1f} Mpx), over the server's "
                            f"{max_pixels / 1e6:.1f} Mpx limit (limits.max_image_pixels); resize it.",
                       param="messages", code="image_too_large")
    try:
        return load_image(data, max_pixels)
    except ImageError as exc:
        raise ApiError(400, str(exc), param="messages", code="bad_image") from exc
