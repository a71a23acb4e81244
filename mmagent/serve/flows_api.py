"""The flows over HTTP: ``POST /v1/flows/{qa,support,summarize,classify}`` streams a flow's events as
server-sent events (one JSON event per ``data:`` line, the ``done`` event last, then ``data: [DONE]``);
``GET /v1/flows/support/sessions/{id}`` gives a support conversation's stored history.

A client sends values, never server paths: images arrive as data URLs (checked like chat images) and are
written to a per-request temporary folder that is removed when the run ends; prompt, policy and
classifier files are the server's configuration, not request fields. Turns of one support session run
one at a time (a second turn waits for the first), turns of different sessions run side by side.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mmagent.serve.limits import ApiError, ServeSettings, decode_image

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mmagent.config import Config
    from mmagent.serve.app import Server

# What a client may set per flow (besides `model`, and `images` / `image` as data URLs where the flow takes them).
FIELDS = {
    "qa": {"question", "collection", "k", "min_score", "mode", "max_new_tokens"},
    "support": {"message", "session", "collection", "max_new_tokens"},
    "summarize": {"text", "style", "words"},
    "classify": {"labels", "text"},
}
log = logging.getLogger(__name__)
IMAGE_FIELD = {"qa": "images", "support": "images", "classify": "image"}


class FlowRunner:
    """One instance per flow, built on first use over the batched backend; per-session locks for support."""

    def __init__(self, config: "Config", backend: Any, settings: ServeSettings) -> None:
        self.config, self.backend, self.settings = config, backend, settings
        self._flows: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._sessions: dict[str, threading.Lock] = {}

    def flow(self, name: str) -> Any:
        from mmagent.flows.base import get_flow

        with self._lock:
            if name not in self._flows:
                self._flows[name] = get_flow(name, self.config, self.backend)
            return self._flows[name]

    def session_lock(self, session: str) -> threading.Lock:
        with self._lock:
            return self._sessions.setdefault(session, threading.Lock())

    def close(self) -> None:
        for flow in self._flows.values():
            close = getattr(flow, "close", None)
            if close:
                close()

    def start(self, name: str, body: dict[str, Any], adapter: str | None) -> Iterator[Any]:
        """Build the flow's request and run it up to its first event, so bad input is a 4xx, not a broken stream."""
        from mmagent.flows.base import flow_class

        if name not in FIELDS:
            raise ApiError(404, f"unknown flow {name!r}; available: {', '.join(FIELDS)}.", code="flow_not_found")
        folder = Path(tempfile.mkdtemp(prefix="mmagent-serve-"))
        lock = None
        try:
            values = self._values(name, body, folder)
            request_type = flow_class(name).request_type
            if adapter is not None:
                if "adapter" not in {f.name for f in dataclasses.fields(request_type)}:
                    raise ApiError(400, f"the {name} flow takes no per-request adapter in this version; use the "
                                        "base model's name as 'model'.", param="model")
                values["adapter"] = adapter
            try:
                request = request_type(**values)
            except TypeError as exc:
                raise ApiError(400, f"bad fields for the {name} flow: {exc}.") from exc
            if name == "support":
                lock = self.session_lock(request.session)
                lock.acquire()
            events = self.flow(name).run(request)
            first = next(events)
        except BaseException:
            if lock:
                lock.release()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return _finishing(first, events, folder, lock)

    def _values(self, name: str, body: dict[str, Any], folder: Path) -> dict[str, Any]:
        image_field = IMAGE_FIELD.get(name)
        allowed = FIELDS[name] | ({image_field} if image_field else set())
        unknown = set(body) - allowed
        if unknown:
            raise ApiError(400, f"unknown field(s) {sorted(unknown)} for the {name} flow; valid: {sorted(allowed | {'model'})}.",
                           param=sorted(unknown)[0])
        values = {k: v for k, v in body.items() if k != image_field}
        if image_field == "images":
            urls = body.get("images") or []
            if not isinstance(urls, list):
                raise ApiError(400, "images must be a list of data URLs.", param="images")
            values["images"] = [self._save(url, folder, i) for i, url in enumerate(urls)]
        elif image_field and body.get(image_field):
            values[image_field] = self._save(body[image_field], folder, 0)
        return values

    def _save(self, url: Any, folder: Path, index: int) -> str:
        if not isinstance(url, str):
            raise ApiError(400, f"an image must be a data URL string; got {type(url).__name__}.", param="images")
        path = folder / f"image-{index}.png"
        decode_image(url, self.settings).save(path)
        return str(path)


def _finishing(first: Any, events: Iterator[Any], folder: Path, lock: threading.Lock | None) -> Iterator[Any]:
    try:
        yield first
        yield from events
    finally:
        close = getattr(events, "close", None)
        if close:
            close()
        if lock:
            lock.release()
        shutil.rmtree(folder, ignore_errors=True)


def sse_events(events: Iterator[Any]) -> Iterator[str]:
    from mmagent.errors import MMAgentError

    try:
        for event in events:
            yield f"data: {json.dumps(event.to_dict(), ensure_ascii=False, default=str)}\n\n"
    except Exception as exc:  # the status line is sent already: the error goes in the stream
        if not isinstance(exc, MMAgentError):
            log.exception("flow failed mid-stream")
        yield f"data: {json.dumps(ApiError(500, str(exc), 'server_error').body())}\n\n"
    yield "data: [DONE]\n\n"


def flow_routes(app: "FastAPI", server: "Server") -> None:
    from fastapi import Body
    from fastapi.responses import StreamingResponse

    @app.post("/v1/flows/{name}")
    def run_flow(name: str, body: dict[str, Any] = Body(...)) -> Any:
        body = dict(body)
        model = body.pop("model", None)
        adapter = server.adapter_for(model) if model is not None else None
        events = server.flows.start(name, body, adapter)
        return StreamingResponse(sse_events(events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/flows/support/sessions/{session}")
    def support_session(session: str) -> dict[str, Any]:
        flow = server.flows.flow("support")
        return {"session": session, "history": flow.history(session)}
