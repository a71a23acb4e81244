"""Reading documents into plain text sections: .txt/.md as is, .html without markup, .pdf page by page.

Images and audio need a model (a caption, a transcript) and are handled in :mod:`mmagent.memory.ingest`
through pluggable callables; this module only reads files that already hold text.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from mmagent.audio import AUDIO_SUFFIXES
from mmagent.errors import MemoryStoreError, require, shown

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# One text document is read, tokenized and chunked in memory (~100 bytes of offsets per token): 20 MB of
# text is ~5 M tokens, about 10,000 chunks to embed. Larger files are refused up front, not ground through.
MAX_TEXT_MB = 20


@dataclass(frozen=True)
class Section:
    """A stretch of a document's text; `page` is 1-based for PDFs, None otherwise."""

    text: str
    page: int | None = None


def kind_of(path: Path) -> str | None:
    """text | html | pdf | image | audio, or None for a file ingest cannot read."""
    suffix = path.suffix.lower()
    for kind, suffixes in (
        ("text", TEXT_SUFFIXES),
        ("html", HTML_SUFFIXES),
        ("pdf", PDF_SUFFIXES),
        ("image", IMAGE_SUFFIXES),
        ("audio", frozenset(AUDIO_SUFFIXES)),
    ):
        if suffix in suffixes:
            return kind
    return None


def supported_suffixes() -> list[str]:
    return sorted(TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | IMAGE_SUFFIXES | set(AUDIO_SUFFIXES))


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MemoryStoreError(
            f"'{shown(path)}' is not UTF-8 text (line {line}, byte {exc.start}); convert it to UTF-8, "
            "e.g. `iconv -f latin1 -t utf-8` (or from the encoding it was written in)."
        ) from exc


def read_text_bytes(path: Path, max_mb: float = MAX_TEXT_MB) -> bytes:
    """The bytes of a text document, refused before reading when over `max_mb` megabytes."""
    size = path.stat().st_size
    if size > max_mb * 1_000_000:
        raise MemoryStoreError(
            f"'{shown(path)}' is {size / 1e6:.1f} MB, over the {max_mb:g} MB limit for one text document; "
            "split it into smaller files (e.g. `split -C 10M`) or raise `limits.max_text_mb`."
        )
    return path.read_bytes()


def load_text(path: Path, max_mb: float = MAX_TEXT_MB) -> list[Section]:
    return [Section(_decode(read_text_bytes(path, max_mb), path))]


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page: script/style/template dropped, block elements become line breaks."""

    SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "tr",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "blockquote",
            "title",
            "hr",
            "dd",
            "dt",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML document, whitespace tidied."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return " ".join("".join(parser.title).split()), text


def load_html(path: Path, max_mb: float = MAX_TEXT_MB) -> list[Section]:
    title, text = html_to_text(_decode(read_text_bytes(path, max_mb), path))
    return [Section(f"{title}\n\n{text}" if title and not text.startswith(title) else text)]


def load_pdf(path: Path, max_mb: float = MAX_TEXT_MB) -> list[Section]:
    """One section per page that has a text layer; scanned pages (no text) are left out.

    `max_mb` is unused: a PDF's size is mostly pictures, not text.
    """
    pypdf = require("pypdf", "memory")
    name = shown(path)
    try:
        with _quiet("pypdf"):  # its warnings ("EOF marker not found") say less than the error below
            reader = pypdf.PdfReader(str(path))
            encrypted = reader.is_encrypted and not reader.decrypt("")
            sections = [] if encrypted else [
                Section(page.extract_text() or "", i) for i, page in enumerate(reader.pages, start=1)
            ]
    except Exception as exc:  # pypdf raises many types on damaged files (PdfReadError, KeyError, ValueError…)
        raise MemoryStoreError(
            f"PDF '{name}' could not be read ({type(exc).__name__}: {exc}); it is damaged or not a PDF — "
            "open it in a PDF viewer and save it again."
        ) from exc
    if encrypted:
        raise MemoryStoreError(f"PDF '{name}' is password-protected; decrypt it first (e.g. `qpdf --decrypt`).")
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise MemoryStoreError(
            f"PDF '{name}' has no text layer (a scan?); run OCR on it first (e.g. `ocrmypdf`) "
            "or ingest its pages as images."
        )
    return sections


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Raise a library's logger to ERROR for the duration (its warnings repeat what our error says)."""
    logger = logging.getLogger(logger_name)
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


LOADERS = {"text": load_text, "html": load_html, "pdf": load_pdf}
