"""The model core: a vision-language backend, quantization, LoRA adapters, the chat template's hash.

`load_backend(config)` gives the process-wide backend: one resident model per configuration, so the
CLI, flows, tools and the UI share it (adapters switch per request instead of reloading).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmagent.config import Config
    from mmagent.model.backend import HFVisionBackend

_backends: dict[str, "HFVisionBackend"] = {}
_lock = threading.Lock()


def load_backend(config: "Config | None" = None) -> "HFVisionBackend":
    """The backend for `config.model` (built once per process and configuration)."""
    import json

    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    config = config or load_config()
    key = json.dumps([config.model.__dict__, config.adapters, config.paths.cache], sort_keys=True, default=str)
    with _lock:
        if key not in _backends:
            _backends[key] = HFVisionBackend(config)
        return _backends[key]


__all__ = ["load_backend"]
