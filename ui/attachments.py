"""Files a user attaches in the chat or the Memory page: checked, then stored in the browser session's
temporary upload area (:class:`UploadArea`), never in a lasting folder.

An area is one ``mmagent-ui-<pid>-*`` folder under the system temp directory per browser session. It is
removed when the session ends (Streamlit drops the session's state some time after the tab closes, and the
area's finalizer runs), when it has been idle longer than :data:`IDLE_SECONDS`, and when the process exits;
areas a killed process left behind are swept when the next one opens an area. A saved conversation keeps
its turns' text, not their files: a restored conversation shows no thumbnail for an image whose session
has ended. Memory-page uploads are deleted as soon as they are ingested (the collection holds their text).

An upload goes to ``<folder>/<sha256 prefix>/<cleaned name>``: the name keeps only letters, digits,
dots, dashes and underscores (no separators, no leading dot), so it cannot point outside the folder,
and it stays readable where it shows up later (memory sources, summaries). Images are decoded once with ``mmagent.images.load_image`` before they are kept,
so a corrupt or oversized picture becomes a readable error instead of a failed model call later.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from mmagent.errors import MMAgentError

KINDS = ("image", "audio", "document")
PREFIX = "mmagent-ui-"
IDLE_SECONDS = 6 * 3600  # an area untouched this long is removed even if its session lingers
SESSION_KEY = "_mmagent_upload_area"
_AREAS: "weakref.WeakSet[UploadArea]" = weakref.WeakSet()


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


class UploadArea:
    """One browser session's temporary folder of uploads (see the module docstring).

    ``folder(name)`` gives a sub-folder (a conversation id, "memory"); names are this app's, never a user's.
    ``close()`` removes everything; it also runs when the area is garbage-collected and at interpreter exit."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
        self.used = time.monotonic()
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)
        _AREAS.add(self)

    def folder(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise UploadError(f"upload folder name {name!r} is not one this app makes (letters, digits, _ and -).")
        if self.closed:
            raise UploadError("this session's upload area was removed (the session ended); reload the page.")
        self.used = time.monotonic()
        return self.path / name

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()


def expire_idle(max_idle: float = IDLE_SECONDS) -> int:
    """Close the areas of this process untouched for `max_idle` seconds; returns how many."""
    now, closed = time.monotonic(), 0
    for area in list(_AREAS):
        if not area.closed and now - area.used > max_idle:
            area.close()
            closed += 1
    return closed


def sweep_stale(root: str | Path | None = None) -> list[Path]:
    """Remove upload areas whose process is gone (killed before its exit handlers ran); returns them."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def session_area() -> UploadArea:
    """The current Streamlit session's upload area, made on first use (sweeping dead and idle ones then)."""
    import streamlit as st

    area = st.session_state.get(SESSION_KEY)
    if area is None or area.closed:
        sweep_stale()
        expire_idle()
        area = st.session_state[SESSION_KEY] = UploadArea()
    return area
