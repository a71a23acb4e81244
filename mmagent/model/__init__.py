"""The model core: a vision-language backend, quantization, LoRA adapters, the chat template's hash.

`load_backend(config)` gives the process-wide backend: one resident model per configuration, so the
CLI, flows, tools and the UI share it (adapters switch per request instead of reloading).
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmagent.config import Config
    from mmagent.model.backend import HFVisionBackend

_backends: dict[str, "HFVisionBackend"] = {}  # resident models: what loading depends on -> backend
_views: dict[str, "HFVisionBackend"] = {}  # the same models under other per-request settings
_lock = threading.Lock()
# model.* fields that do not change the loaded weights: a backend reads them per request (decoding
# defaults) or per prompt (ocr), so configurations that differ only here share one resident model.
PER_REQUEST = ("max_new_tokens", "temperature", "repetition_penalty", "ocr")


def load_backend(config: "Config | None" = None) -> "HFVisionBackend":
    """The backend for `config` (its model is built once per process and model configuration).

    The resident model is keyed on what determines the loaded weights (``model`` without its decoding
    defaults and ocr switch, ``adapters``, ``paths.cache``; for an ``openai+http`` model, its URL). A caller
    whose decoding defaults, ocr switch or ``limits`` differ gets a view of the same resident model (same
    weights, adapters and generation lock) that applies its own settings, so two configurations never share
    or overwrite each other's settings and no model loads twice for them.
    """
    from mmagent.config import load_config

    config = config or load_config()
    weights = {k: v for k, v in config.model.__dict__.items() if k not in PER_REQUEST}
    remote = config.model.id.startswith("openai+")  # a model on an OpenAI-compatible server (openai_compat.py)
    key = json.dumps([weights] if remote else [weights, config.adapters, config.paths.cache], sort_keys=True, default=str)
    with _lock:
        if key not in _backends:
            _backends[key] = _build(config, remote)
        resident = _backends[key]
        if resident.config.model == config.model and resident.config.limits == config.limits:
            return resident
        view_key = json.dumps([key, config.model.__dict__, config.limits.__dict__], sort_keys=True, default=str)
        if view_key not in _views:
            _views[view_key] = resident.with_config(config)
        return _views[view_key]


def adapter_names(config: "Config") -> list[str]:
    """The adapters a request may name under `config`: those under ``adapters:`` for a local model (without
    loading it), the server's (its ``GET /v1/models`` entries with a parent) for an ``openai+http`` model."""
    if config.model.id.startswith("openai+"):
        return sorted(load_backend(config).adapters.names)
    return sorted(config.adapters)


def _build(config: "Config", remote: bool) -> "HFVisionBackend":
    if remote:
        from mmagent.model.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(config)  # type: ignore[return-value]
    from mmagent.model.backend import HFVisionBackend
    from mmagent.model.openmp import release_idle_team

    backend = HFVisionBackend(config)
    release_idle_team()  # loading computed in this thread; decoding runs in others (see openmp.py)
    return backend


__all__ = ["adapter_names", "load_backend"]
