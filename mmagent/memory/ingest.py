"""Ingesting files into a collection: read or describe, chunk, embed, store.

One file's failure never stops the batch; the summary says what happened to each file.

Text, Markdown, HTML and PDF are read directly. Images become a caption plus the text visible in them
(the document keeps the image's path, so a search result can show the picture: text-to-image retrieval
is an ordinary search over captions). Audio becomes a timed transcript. Both need a model, passed in
as plain callables so the caller decides which (see :func:`default_describer`, :func:`default_transcriber`).

Chunks of consecutive files are stored together, :attr:`Ingestor.batch_chunks` at a time: one full
embedding pass and one Chroma write instead of one small one per file (benchmarks/memory_bench.py measures
ingest against the embedder alone). The progress bar counts a file once its chunks are stored. An image
or recording is stored as soon as it is described (a model's minutes are not left in memory). If a
combined write fails, its files are stored one by one, so the failure is still reported against the file
that caused it.

Re-ingesting is free: each file's SHA-256 is stored with its chunks, a file whose content is already in
the collection is skipped before any model runs, and chunk ids derive from the content. A file whose
content changed replaces its older chunks (matched by path). What the store holds is asked for
:data:`LOOKUP_FILES` files at a time: each such query scans the collection's metadata, so one per file
made a large ingest slower the larger the collection grew (at 82k chunks, same store and files: 0.77x the
embedding rate asked per file, 0.96x per group; benchmarks/RESULTS.md has the full runs).

An interrupted run (Ctrl-C, ``kill -9``, a full disk) is finished by running it again: every chunk records
how many its file has (``chunks``), so a file whose chunks were only partly written is stored again rather
than skipped, and content-derived ids mean nothing is stored twice. A store that cannot be written (disk
full, read-only) stops the run with :class:`~mmagent.memory.store.StoreUnwritableError`: every later file
would fail the same way.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmagent.errors import MemoryStoreError, MMAgentError, ModelLoadError, shown
from mmagent.memory.chunking import ChunkOptions, chunk_segments, chunk_text
from mmagent.memory.embedder import ENCODE_BATCH
from mmagent.memory.loaders import LOADERS, MAX_TEXT_MB, kind_of, supported_suffixes
from mmagent.memory.store import Document, Memory, StoreUnwritableError

if TYPE_CHECKING:
    from mmagent.config import Config

log = logging.getLogger(__name__)

DescribeImage = Callable[[Path], str]
Transcribe = Callable[[Path], Iterable[tuple[float, float, str]]]
VISIBLE_TEXT_HEADING = "Visible text:"
LOOKUP_FILES = 64  # files whose stored state is asked in one query


@dataclass(frozen=True)
class FileNote:
    """A file that was skipped or failed, and why (one sentence a person can act on).

    `path` has control characters escaped (:func:`mmagent.errors.shown`): it is printed to terminals.
    """

    path: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", shown(self.path))


@dataclass
class IngestSummary:
    """What one ingest run did. `files` counts every file looked at; `chunks` only newly stored chunks."""

    collection: str
    files: int = 0
    ingested: int = 0
    updated: int = 0  # ingested files whose older content (same path, other bytes) was replaced
    chunks: int = 0
    skipped: list[FileNote] = field(default_factory=list)
    failed: list[FileNote] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Known:
    """What the store held, before this group of files was read, of their contents and paths."""

    shas: dict[Path, str] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)  # sha -> chunks stored with it
    expected: dict[str, Any] = field(default_factory=dict)  # sha -> how many its file was cut into
    sources_of: dict[str, str] = field(default_factory=dict)  # sha -> a source it is stored under
    sources: set[str] = field(default_factory=set)  # sources (of files not stored as they are) with chunks

    def complete(self, sha: str) -> bool:
        expected = self.expected.get(sha)
        return expected is None or self.chunks.get(sha, 0) >= int(expected)


@dataclass
class _Pending:
    """One file's chunks waiting for the combined write."""

    path: Path
    docs: list[Document]


@dataclass
class Ingestor:
    """Turns files into stored chunks of one collection.

    `describe_image` or `transcribe` None: files of that kind are skipped with `missing_reasons[kind]`.
    """

    memory: Memory
    describe_image: DescribeImage | None = None
    transcribe: Transcribe | None = None
    chunking: ChunkOptions = field(default_factory=ChunkOptions)
    missing_reasons: dict[str, str] = field(default_factory=dict)  # kind -> why it cannot be ingested here
    max_text_mb: float = MAX_TEXT_MB  # larger text/HTML files are refused (config: limits.max_text_mb)
    batch_chunks: int = ENCODE_BATCH  # chunks gathered over files for one store write: one full embedding pass

    def run(self, paths: Iterable[str | Path], progress: bool | None = None) -> IngestSummary:
        """Ingest every file under `paths` (folders recursively); per-file problems go in the summary."""
        from tqdm.auto import tqdm

        started = time.perf_counter()
        summary = IngestSummary(self.memory.name)
        files = list(iter_files(paths, summary))
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(
            total=len(files), unit="file", desc=f"ingest → {self.memory.name}", disable=not show, file=sys.stderr
        ) as bar:  # a file counts as done once its chunks are stored (a kill keeps every file reported done)
            pending: list[_Pending] = []
            seen: dict[str, Path] = {}  # content already taken in this run -> the file it came from
            waiting = 0  # files looked at since the last write
            for at, path in enumerate(files):
                if at % LOOKUP_FILES == 0:
                    known = self._look_up(files[at : at + LOOKUP_FILES])
                bar.set_postfix_str(path.name[:30])
                self._one(path, summary, pending, known, seen)
                waiting += 1
                described = pending and pending[-1].docs[0].metadata["kind"] in ("image", "audio")
                if described or sum(len(p.docs) for p in pending) >= self.batch_chunks:  # a model's work: keep it
                    self._store(pending, summary)
                    bar.update(waiting)
                    pending, waiting = [], 0
            self._store(pending, summary)
            bar.update(waiting)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _one(
        self, path: Path, summary: IngestSummary, pending: list[_Pending], known: _Known, seen: dict[str, Path]
    ) -> None:
        """Check, read and chunk one file; its chunks join `pending` (stored by :meth:`_store`)."""
        summary.files += 1
        kind = kind_of(path)
        if kind is None:
            summary.skipped.append(
                FileNote(
                    str(path),
                    f"unsupported type '{shown(path.suffix) or '(none)'}'; "
                    f"supported: {' '.join(supported_suffixes())}",
                )
            )
            return
        if self._cannot(kind):
            summary.skipped.append(FileNote(str(path), self._cannot(kind)))
            return
        try:
            sha = known.shas.get(path) or file_sha256(path)
            stored_as = str(seen[sha].resolve()) if sha in seen else self._stored(sha, known)
            if stored_as:
                summary.skipped.append(FileNote(str(path), f"already stored (same content as {stored_as})"))
                return
            docs = self.documents(path, kind, sha)
            if not docs:
                summary.skipped.append(FileNote(str(path), "no text found in it"))
                return
            source = docs[0].metadata["source"]
            if source in known.sources:  # the file changed: its older chunks go
                summary.updated += bool(self.memory.delete(where={"source": source}))
            seen[sha] = path
            pending.append(_Pending(path, docs))
        except StoreUnwritableError:
            raise  # not this file's fault: every later file would fail the same way
        except MMAgentError as exc:
            summary.failed.append(FileNote(str(path), str(exc)))
        except Exception as exc:
            log.debug("ingest of %s failed", path, exc_info=True)
            summary.failed.append(FileNote(str(path), f"{type(exc).__name__}: {exc}"))

    def _store(self, pending: list[_Pending], summary: IngestSummary) -> None:
        """Store the chunks of `pending` files in one write; if it fails, file by file to find the culprit."""
        if not pending:
            return
        try:
            before = self.memory.count()
            self.memory.add([d for p in pending for d in p.docs])
            summary.chunks += self.memory.count() - before
            summary.ingested += len(pending)
            return
        except StoreUnwritableError:
            raise  # not a file's fault: every later write would fail the same way
        except Exception as exc:
            if len(pending) > 1:
                for one in pending:
                    self._store([one], summary)
                return
            note = str(exc) if isinstance(exc, MMAgentError) else f"{type(exc).__name__}: {exc}"
            log.debug("storing %s failed", pending[0].path, exc_info=True)
            summary.failed.append(FileNote(str(pending[0].path), note))

    def _look_up(self, paths: list[Path]) -> _Known:
        """What the store holds of these files, in two queries for the group (not two per file: each scans
        the collection's metadata, measured 11 ms at 82k chunks, which made ingest slow down as it grew)."""
        known = _Known()
        for path in paths:
            kind = kind_of(path)
            if kind is None or self._cannot(kind):
                continue  # skipped by _one without being read: not hashed here either
            try:
                known.shas[path] = file_sha256(path)
            except OSError:
                continue  # reported by _one, which reads it again
        if not known.shas or self.memory.count() == 0:
            return known
        for hit in self.memory.find({"sha256": {"$in": sorted(set(known.shas.values()))}}, limit=None):
            sha = str(hit.metadata.get("sha256"))
            known.chunks[sha] = known.chunks.get(sha, 0) + 1
            known.expected.setdefault(sha, hit.metadata.get("chunks"))
            known.sources_of.setdefault(sha, str(hit.source))
        complete = {sha for sha in known.chunks if known.complete(sha)}
        rest = sorted({str(p.resolve()) for p, sha in known.shas.items() if sha not in complete})
        if rest:
            known.sources = {str(h.source) for h in self.memory.find({"source": {"$in": rest}}, limit=None)}
        return known

    def _stored(self, sha: str, known: _Known) -> str:
        """The source a file with this content is completely stored under, or ''.

        Complete means every chunk the file was cut into is there: a run killed between two writes of a
        long file leaves a part, which is deleted here so the file is stored again. Chunks written before
        the `chunks` count existed are taken as complete."""
        if sha not in known.chunks:
            return ""
        if known.complete(sha):
            return known.sources_of[sha]
        source = known.sources_of[sha]
        log.info("%s: only part of its chunks are stored (an interrupted run); storing it again", source)
        self.memory.delete(where={"sha256": sha})
        return ""

    def _cannot(self, kind: str) -> str:
        if kind == "image" and self.describe_image is None:
            return self.missing_reasons.get(
                "image", "skipped: needs an image describer (a vision-language model)"
            )
        if kind == "audio" and self.transcribe is None:
            return self.missing_reasons.get("audio", "skipped: needs a transcriber (speech recognition)")
        return ""

    def documents(self, path: Path, kind: str, sha: str) -> list[Document]:
        """The chunks of one file as Documents with source, kind, page or times, and content-derived ids."""
        tokenizer = self.memory.embedder.tokenizer
        self.chunking.check_fits(self.memory.embedder.max_tokens)
        base = {"source": str(path.resolve()), "name": path.name, "kind": kind, "sha256": sha}
        pieces: list[tuple[str, dict[str, Any]]] = []
        if kind == "audio":
            segments = list(self.transcribe(path))  # type: ignore[misc]
            for c in chunk_segments(segments, tokenizer, self.chunking):
                pieces.append((c.text, {"start": c.start, "end": c.end}))
        elif kind == "image":
            description = self.describe_image(path).strip()  # type: ignore[misc]
            pieces.extend((c, {}) for c in chunk_text(description, tokenizer, self.chunking))
        else:
            for section in LOADERS[kind](path, self.max_text_mb):
                extra = {"page": section.page} if section.page is not None else {}
                pieces.extend((c, extra) for c in chunk_text(section.text, tokenizer, self.chunking))
        docs = []
        for i, (text, extra) in enumerate(pieces):
            doc_id = hashlib.sha256(f"{sha}\0{i}\0{text}".encode()).hexdigest()[:32]
            docs.append(Document(text, {**base, **extra, "chunk": i, "chunks": len(pieces)}, id=doc_id))
        return docs


def iter_files(paths: Iterable[str | Path], summary: IngestSummary) -> Iterator[Path]:
    """Files named, and files under folders named (sorted, hidden left out); missing paths are failures."""
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            yield path
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in rel):
                    yield child
        else:
            summary.files += 1
            summary.failed.append(FileNote(str(path), "does not exist or is not a file or folder"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- the default models for images and audio --------------------------------------------------------
class ImageDescriber:
    """Caption from the vision tool's 'describe' task, plus the lines OCR reads in the image.

    Calls ``mmagent.tools.vision.look(VisionRequest("describe", [path]), config)`` (the configured
    vision-language model with the shipped describe prompt; it loads on the first image) and
    ``mmagent.model.ocr.read_text``. A model that failed to load is not retried for every image.
    """

    def __init__(self, config: Config, max_new_tokens: int = 48) -> None:
        self.config = config
        self.max_new_tokens = max_new_tokens
        self._load_error: MMAgentError | None = None

    def __call__(self, path: Path) -> str:
        from mmagent.images import load_image
        from mmagent.model.ocr import read_text
        from mmagent.tools.vision import VisionRequest, look

        image = load_image(path, self.config.limits.max_image_pixels)  # refuse bad files before the model
        if self._load_error is not None:
            raise self._load_error
        try:
            run = look(VisionRequest("describe", [str(path)]), self.config, max_new_tokens=self.max_new_tokens)
        except ModelLoadError as exc:
            self._load_error = exc
            raise
        caption = run.collect().answer
        lines = [line.text for line in read_text(image)]
        return caption + (f"\n{VISIBLE_TEXT_HEADING} " + " / ".join(lines) if lines else "")


def default_transcriber(config: Config) -> Transcribe:
    """Timed segments from ``mmagent.asr.Transcriber(config.asr).stream(path)`` (default: tiny.en)."""
    from mmagent.asr import Transcriber

    transcriber = Transcriber(config.asr)

    def transcribe(path: Path) -> Iterator[tuple[float, float, str]]:
        for segment in transcriber.stream(path, progress=False):
            yield segment.start, segment.end, segment.text

    return transcribe


def default_models(config: Config) -> tuple[DescribeImage | None, Transcribe | None, dict[str, str]]:
    """(describe_image, transcribe, reasons) — a kind whose model cannot be used gets None and a reason."""
    import importlib.util

    reasons: dict[str, str] = {}
    transcribe: Transcribe | None = None
    if importlib.util.find_spec("faster_whisper") is None:
        reasons["audio"] = "skipped: needs speech recognition; install it with pip install 'mmagent[asr]'"
    else:
        transcribe = default_transcriber(config)
    return ImageDescriber(config), transcribe, reasons


def ingest(
    paths: Iterable[str | Path],
    memory: Memory,
    *,
    describe_image: DescribeImage | None = None,
    transcribe: Transcribe | None = None,
    chunking: ChunkOptions | None = None,
    progress: bool | None = None,
    max_text_mb: float = MAX_TEXT_MB,
) -> IngestSummary:
    """Ingest files and folders into `memory`; see :class:`Ingestor` (`max_text_mb`: config limits.max_text_mb)."""
    if memory is None:
        raise MemoryStoreError("ingest needs a Memory; open one with mmagent.memory.open_memory(config).")
    ingestor = Ingestor(memory, describe_image, transcribe, chunking or ChunkOptions(), max_text_mb=max_text_mb)
    return ingestor.run(paths, progress)
