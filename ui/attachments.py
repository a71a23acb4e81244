"""Files a user attaches in the chat: checked, then stored under the conversation's upload folder.

An upload goes to ``<folder>/<sha256 prefix>/<cleaned name>``: the name keeps only letters, digits,
dots, dashes and underscores (no separators, no leading dot), so it cannot point outside the folder,
and it stays readable where it shows up later (memory sources, summaries). Images are decoded once with ``mmagent.images.load_image`` before they are kept,
so a corrupt or oversized picture becomes a readable error instead of a failed model call later.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from mmagent.errors import MMAgentError

KINDS = ("image", "audio", "document")


class UploadError(MMAgentError, ValueError):
    """An attachment was refused (too large, unknown type, unreadable)."""


@dataclass(frozen=True)
class Attachment:
    """A stored upload. `kind`: image | audio | document; `name`: the user's file name (display only)."""

    name: str
    path: str
    kind: str
    size: int


def kind_for(name: str) -> str:
    """image | audio | document for a file name, or an UploadError listing what is accepted."""
    from mmagent.memory.loaders import kind_of, supported_suffixes

    kind = kind_of(Path(name))
    if kind in ("image", "audio"):
        return kind
    if kind is not None:
        return "document"
    raise UploadError(
        f"'{name}' is not a file type the assistant can read; attach one of: {' '.join(supported_suffixes())}."
    )


def safe_name(name: str) -> str:
    """`name` reduced to a plain file name (letters, digits, ``._-``), keeping its suffix."""
    base = Path(name.replace("\\", "/")).name
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(base).stem).strip("_")[:80] or "upload"
    suffix = re.sub(r"[^A-Za-z0-9]", "", Path(base).suffix)[:10].lower()
    return f"{stem}.{suffix}" if suffix else stem


def accepted_suffixes() -> list[str]:
    """Suffixes (without dots) for Streamlit's uploaders."""
    from mmagent.memory.loaders import supported_suffixes

    return [s.lstrip(".") for s in supported_suffixes()]


def store_upload(name: str, data: bytes, folder: str | Path, *, max_mb: int, max_pixels: int) -> Attachment:
    """Check `data` (size, type, images decode) and write it into `folder`; returns where it went."""
    size_mb = len(data) / 1e6
    if size_mb > max_mb:
        raise UploadError(
            f"'{name}' is {size_mb:.1f} MB, over the {max_mb} MB upload limit; "
            "send a smaller file or raise `limits.max_upload_mb` in mmagent.yaml."
        )
    if not data:
        raise UploadError(f"'{name}' is empty (0 bytes); attach the file again.")
    kind = kind_for(name)
    if kind == "image":
        from mmagent.images import load_image

        try:
            load_image(data, max_pixels)
        except MMAgentError as exc:  # corrupt, truncated, too many pixels: say which file
            raise UploadError(f"'{name}' cannot be used as an image: {exc}") from exc
    folder = Path(folder) / hashlib.sha256(data).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_name(name)
    if not path.exists():
        path.write_bytes(data)
    return Attachment(Path(name).name, str(path), kind, len(data))
