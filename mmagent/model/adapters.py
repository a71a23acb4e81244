"""Several LoRA adapters (peft format) on one resident base model, chosen per request.

Adapters are injected next to the base weights (peft's multi-adapter PeftModel) and switched with
`set_adapter` / `disable_adapter`; nothing is ever merged into the base, so a 4-bit or 8-bit base stays
exactly as loaded and "no adapter" always means the base model's own behaviour.

There is no "active" adapter: every request names its own (`selected(name)`, the backend's `adapter=`).
A process-wide default would be state one request could leave behind for another; a caller that wants
a default (a chat session, an eval run) keeps it itself and passes it on every call.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mmagent.errors import AdapterError

log = logging.getLogger(__name__)

MANIFEST = "mmagent_adapter.json"  # written by `mmagent finetune` next to adapter_config.json


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str
    rank: int | None
    target_modules: str
    template_hash: str | None


def read_adapter_manifest(path: str | Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    return json.loads(file.read_text()) if file.is_file() else {}


class AdapterManager:
    """Owns the (possibly peft-wrapped) model; `model` is what generation must call."""

    def __init__(self, base_model: Any, template_hash: str | None = None, allow_pickle: bool = False) -> None:
        self.base = base_model
        self.model = base_model
        self.template_hash = template_hash
        self.allow_pickle = allow_pickle
        self._loaded: dict[str, AdapterInfo] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def info(self, name: str) -> AdapterInfo:
        self._check(name)
        return self._loaded[name]

    def load(self, name: str, path: str | Path) -> AdapterInfo:
        """Load a peft adapter directory under `name` (replacing an adapter of that name)."""
        path = Path(path).expanduser()
        if not (path / "adapter_config.json").is_file():
            raise AdapterError(
                f"adapter '{name}': {path} is not a peft adapter directory (no adapter_config.json); "
                "give the folder `mmagent finetune` or peft's save_pretrained wrote."
            )
        if not self.allow_pickle and not (path / "adapter_model.safetensors").is_file():
            raise AdapterError(
                f"adapter '{name}': {path} has no adapter_model.safetensors (a pickled adapter_model.bin runs code "
                "when loaded, so mmagent loads safetensors only); re-save it with peft's "
                "save_pretrained(safe_serialization=True), or set model.allow_pickle: true for an adapter you trust."
            )
        if name in self._loaded:
            self.unload(name)
        from peft import PeftModel

        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.base, str(path), adapter_name=name, is_trainable=False)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise AdapterError(f"adapter '{name}' at {path} does not fit the loaded base model: {exc}") from exc
        self.model.eval()
        config = json.loads((path / "adapter_config.json").read_text())
        manifest = read_adapter_manifest(path)
        info = AdapterInfo(name, str(path), config.get("r"), str(config.get("target_modules")), manifest.get("template_hash"))
        if self.template_hash and info.template_hash and info.template_hash != self.template_hash:
            log.warning(
                "ADAPTER '%s' WAS TRAINED WITH CHAT TEMPLATE %s BUT THE MODEL SERVES %s: answers may degrade; "
                "retrain it or serve the template it was trained with.",
                name, info.template_hash, self.template_hash,
            )
        self._loaded[name] = info
        return info

    def unload(self, name: str) -> None:
        self._check(name)
        del self._loaded[name]
        if not self._loaded:
            self.model = self.model.unload()  # removes the LoRA layers without merging
            self.base = self.model
        else:
            self.model.delete_adapter(name)

    @contextlib.contextmanager
    def selected(self, name: str | None) -> Iterator[Any]:
        """Run a block with adapter `name` (None = base) and give the model to call. The switch mutates
        the shared model: the caller serialises blocks (HFVisionBackend holds its lock around them)."""
        if name is not None:
            self._check(name)
        if not self._loaded:
            yield self.model
            return
        if name is None:
            with self.model.disable_adapter():
                yield self.model
        else:
            self.model.set_adapter(name)
            yield self.model

    def _check(self, name: str) -> None:
        if name not in self._loaded:
            loaded = ", ".join(self._loaded) or "none"
            raise AdapterError(
                f"unknown adapter '{name}'; loaded adapters: {loaded}. Add it under `adapters:` in mmagent.yaml "
                "or load it with --adapter-path NAME=DIR."
            )
