"""Errors a user can act on.

Every error raised for bad input or a missing piece derives from :class:`MMAgentError`; the CLI prints
its message (what was expected, what was got, what to do) without a traceback. Anything else is a bug.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def shown(name: object) -> str:
    """A file name or path as it may appear in a message: control characters escaped (``\\x1b``, ``\\n``),
    so a hostile name cannot recolour the terminal, fake a line of output or hide its own suffix."""
    text = str(name)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class MMAgentError(Exception):
    """Base class: the message alone must tell the user what to do."""


class ConfigError(MMAgentError, ValueError):
    """A configuration value is invalid or unknown."""


class ModelLoadError(MMAgentError):
    """A model, processor or adapter could not be loaded."""


class ImageError(MMAgentError, ValueError):
    """An image could not be read, or is refused (too large, not an image)."""


class AudioError(MMAgentError, ValueError):
    """An audio file could not be read, or its format is not supported."""


class AdapterError(MMAgentError, KeyError):
    """An adapter name is unknown, or an adapter does not fit the base model."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class RemoteUnsupported(MMAgentError):
    """A `ModelBackend` call that needs the model in this process (its chat template, tokenizer offsets,
    vision tower), asked of a model served elsewhere (``model.id: openai+http://...``)."""


class MemoryStoreError(MMAgentError, ValueError):
    """A vector-memory collection is missing, misnamed, or cannot be reached."""


class EmbedderMismatchError(MemoryStoreError):
    """A collection was built with another embedder than the one asked to read or extend it."""


class MissingExtraError(MMAgentError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this feature needs the Python module '{module}', which is not installed "
            f"({exc}); install it with: pip install 'mmagent[{extra}]'"
        ) from exc
