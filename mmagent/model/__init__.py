"""The model core: a vision-language backend, quantization, LoRA adapters, the chat template's hash.

`load_backend(config)` gives the process-wide backend: one resident model per configuration, so the
CLI, flows, tools and the UI share it (adapters switch per request instead of reloading).
"""

from __future__ import annotations

import copy
import json
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmagent.config import Config
    from mmagent.model.backend import HFVisionBackend

_backends: dict[str, "HFVisionBackend"] = {}  # resident models: what loading depends on -> backend
_views: dict[str, "HFVisionBackend"] = {}  # the same models under other request limits
_lock = threading.Lock()


def load_backend(config: "Config | None" = None) -> "HFVisionBackend":
    """The backend for `config` (its model is built once per process and model configuration).

    The resident model is keyed on what loading depends on (``model``, ``adapters``, ``paths.cache``).
    ``limits`` are not baked into it: a caller whose limits differ gets a view of the same resident
    model (same weights, adapters and generation lock) that enforces its own `config.limits`, so two
    configurations never share or overwrite each other's limits and no model loads twice for them.
    """
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    config = config or load_config()
    if config.model.id.startswith("openai+"):  # a model on an OpenAI-compatible server (openai_compat.py)
        from mmagent.model.openai_compat import OpenAICompatBackend

        with _lock:
            key = json.dumps([config.model.id, config.limits.__dict__], sort_keys=True)
            if key not in _backends:
                _backends[key] = OpenAICompatBackend(config)  # type: ignore[assignment]
            return _backends[key]
    key = json.dumps([config.model.__dict__, config.adapters, config.paths.cache], sort_keys=True, default=str)
    with _lock:
        if key not in _backends:
            _backends[key] = HFVisionBackend(config)
        resident = _backends[key]
        if resident.config.limits == config.limits:
            return resident
        view_key = json.dumps([key, config.limits.__dict__], sort_keys=True, default=str)
        if view_key not in _views:
            view = copy.copy(resident)  # shares model, processor, adapters and the lock; not the config
            view.config = config
            _views[view_key] = view
        return _views[view_key]


__all__ = ["load_backend"]
