"""What the UI process holds once: the config, the model backend, one instance of each flow, ASR.

Everything heavy sits behind ``st.cache_resource``, so Streamlit's reruns (every click) reuse it and
one model and one flow instance serve every browser tab. Nothing of a tab's turn is stored on them: the
adapter, session and collection travel in the flow's request (`turns.build_request`), and the backend
selects the adapter per call under its own lock, so two tabs using different adapters or support
sessions cannot switch each other's model or act under each other's identity. Switching the adapter
never reloads the base.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import streamlit as st

from mmagent.errors import MMAgentError

if TYPE_CHECKING:
    from mmagent.config import Config
    from mmagent.flows.base import GraphFlow

log = logging.getLogger("mmagent.ui")
# The Stop button's event for the turn being generated. LangGraph runs flow nodes in worker threads with a
# copy of the caller's context, so the node that streams from the model sees the event of its own turn.
STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("mmagent_ui_stop", default=None)


class GenerationStopped(MMAgentError):
    """The user pressed Stop: raised inside the flow so it ends instead of going on to its next step."""


@contextlib.contextmanager
def stoppable(stop: threading.Event) -> Iterator[threading.Event]:
    """Within this block, generation through :class:`Stoppable` ends soon after `stop` is set."""
    token = STOP.set(stop)
    try:
        yield stop
    finally:
        STOP.reset(token)


def _until_stopped(pieces: Iterator[str], stop: threading.Event) -> Iterator[str]:
    """`pieces` until `stop` is set; then the backend's generator is closed, which ends its model thread
    (HFVisionBackend._stream sets its stopping criterion and joins the thread when closed)."""
    try:
        for piece in pieces:
            if stop.is_set():
                raise GenerationStopped("stopped by the user")
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


@dataclass
class LoadStats:
    """Process-wide counters shown in the sidebar: how often the base loaded, how long switches took."""

    loads: int = 0
    load_seconds: float = 0.0
    switches: int = 0
    last_switch_seconds: float | None = None
    loaded: set[str] = field(default_factory=set)  # config keys whose model is resident
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def config_key() -> str:
    """A fingerprint of what configures this process (MMAGENT_* variables, the config file's bytes)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("MMAGENT_")}
    path = os.environ.get("MMAGENT_CONFIG") or ("mmagent.yaml" if os.path.isfile("mmagent.yaml") else "")
    body = Path(path).read_bytes() if path and os.path.isfile(path) else b""
    blob = json.dumps(env, sort_keys=True).encode() + hashlib.sha256(body).digest()
    return hashlib.sha256(blob).hexdigest()[:16]


@st.cache_resource(show_spinner=False)
def _config(key: str) -> Config:
    from mmagent.config import load_config

    return load_config()


def get_config() -> Config:
    """The validated config of this process (file + environment), read once per configuration."""
    return _config(config_key())


def storage_roots() -> list[str]:
    """The folders this server keeps data, memory and models in (kept out of what the page shows)."""
    config = get_config()
    roots = [config.paths.data, config.paths.cache, config.memory.path]
    return [str(Path(r).expanduser().resolve()) for r in roots if r] + [str(Path(r).expanduser()) for r in roots if r]


def public(text: str) -> str:
    """An error or status text for the page: storage paths cut to file names, Markdown escaped."""
    from mmagent.ui.plain import hide_paths, plain

    return plain(hide_paths(text, storage_roots()))


@st.cache_resource(show_spinner=False)
def load_stats() -> LoadStats:
    return LoadStats()


@st.cache_resource(show_spinner=False)
def _backend(key: str) -> Any:
    from mmagent.model import load_backend

    stats = load_stats()
    started = time.perf_counter()
    backend = load_backend(get_config())
    with stats.lock:
        stats.loads += 1
        stats.load_seconds = time.perf_counter() - started
        stats.loaded.add(key)
    log.info("mmagent ui: model loaded in %.2f s (load #%d)", stats.load_seconds, stats.loads)
    return backend


def backend_loaded() -> bool:
    """Whether this configuration's model is already resident (no spinner needed)."""
    return config_key() in load_stats().loaded


def get_backend() -> Any:
    """The one model of this process; the first call loads it behind a spinner."""
    if backend_loaded():
        return _backend(config_key())
    with st.spinner("Loading the model (once per server)…"):
        return _backend(config_key())


class Stoppable:
    """The shared backend, with generation that ends when the current turn's Stop event is set.

    It holds nothing of any request (the Stop event comes from the turn's context, see :func:`stoppable`);
    everything else, adapters included, is the backend's own."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def generate(self, messages: Any, **kwargs: Any) -> Any:
        stop = STOP.get()
        if stop is not None and stop.is_set():
            raise GenerationStopped("stopped by the user")
        pieces = self._backend.generate(messages, **kwargs)
        return pieces if stop is None else _until_stopped(pieces, stop)

    def __getattr__(self, name: str) -> Any:  # generate_batch, score, info(), adapters, tokenizer...: the backend's
        return getattr(self._backend, name)


def adapter_names() -> list[str]:
    """The adapters a chat may pick: those under `adapters:` (all loaded next to the base when the model
    loads), or a remote model's server's (model.id openai+http://...: its GET /v1/models)."""
    from mmagent.model import adapter_names as available

    return available(get_config())


@st.cache_resource(show_spinner=False)
def _flow(name: str, key: str) -> GraphFlow:
    from mmagent.flows.base import get_flow

    return get_flow(name, get_config(), Stoppable(_backend(key)))


def get_flow(name: str, adapter: str | None) -> GraphFlow:
    """Flow `name` on the shared model, shared by every tab; `adapter` (which the caller puts in each
    request) is checked here, and a change of adapter is timed as a switch."""
    backend = get_backend()
    stats = load_stats()
    started = time.perf_counter()
    if adapter is not None:
        backend.adapters.info(adapter)  # unknown name: AdapterError listing the loaded ones
    flow = _flow(name, config_key())
    seconds = time.perf_counter() - started
    if adapter != st.session_state.get("_last_adapter", adapter):
        with stats.lock:
            stats.switches += 1
            stats.last_switch_seconds = seconds
        log.info("mmagent ui: adapter switch to %s in %.4f s (model loads so far: %d)",
                    adapter or "none", seconds, stats.loads)
    st.session_state["_last_adapter"] = adapter
    return flow


@st.cache_resource(show_spinner=False)
def _transcriber(key: str) -> Any:
    from mmagent.asr import Transcriber

    return Transcriber(get_config().asr)


def transcribe(path: str) -> str:
    """The text spoken in an audio file (faster-whisper through `mmagent.asr.Transcriber`)."""
    with st.spinner("Transcribing…"):
        return _transcriber(config_key()).transcribe(path, progress=False).text.strip()
