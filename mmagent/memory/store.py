"""Persistent vector memory over Chroma: an on-disk store, or a Chroma server through the same interface.

``memory.path`` opens a ``PersistentClient``; ``memory.url`` (e.g. ``http://127.0.0.1:8000``) an
``HttpClient`` to a ``chroma run`` server. Telemetry is off. Collections use cosine distance and the
embedding function is always passed explicitly (Chroma's default one downloads a model at run time).

Each collection is pinned to the embedder that wrote it (name, dimension, weights hash in the
collection metadata); adding to or searching it with another embedder raises EmbedderMismatchError.

A store that cannot be written — its disk is full, its folder read-only — raises StoreUnwritableError
(one sentence naming the folder and the fix) from the write that hit it. Chroma writes each add in one
SQLite transaction, so what was stored before stays searchable; measured in tests/test_faults_memory.py.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mmagent.config import MemoryConfig
from mmagent.errors import EmbedderMismatchError, MemoryStoreError, require
from mmagent.memory.bm25 import BM25Index, reciprocal_rank_fusion
from mmagent.memory.embedder import Embedder, EmbedderPin, get_embedder

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

# HNSW candidates examined per query. At 100k chunks (benchmarks/memory_bench.py's corpus, MiniLM bf16,
# recall@10 against exact search, 2026-12-02): Chroma 1.5's default 100 gave 0.908, 200 gave 0.956 (HNSW query
# p95 4.4 ms), 400 0.987 (7.0 ms), 800 0.995 (10.1 ms), 1600 0.998 (15.8 ms). New collections are made with
# it; an older one is raised to it when opened (Chroma reads it when the index loads: the next process).
SEARCH_EF = 800
log = logging.getLogger(__name__)

Scalar = str | int | float | bool
PIN_KEYS = ("mmagent_embedder", "mmagent_dimension", "mmagent_weights_sha256")
SEARCH_MODES = ("dense", "hybrid")
HYBRID_POOL = 20  # candidates each ranking contributes to the fusion
# A hit keywords vouch for must be BM25's best and hold this share of the query's idf mass. Measured on
# short documents: a question sharing one key noun of three content words covers 0.33 ("Which train goes
# to the airport?", cosine 0.26); BM25's second hit sharing one common word ("day") covered 0.37.
KEYWORD_TOP = 1
KEYWORD_FLOOR = 0.3
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


@dataclass
class Document:
    """One chunk to store. `metadata` values must be str, int, float or bool (Chroma's rule).

    Conventional keys: `source` (file path), `kind` (text | pdf | image | audio), `page` (1-based),
    `start`/`end` (seconds), `sha256` (of the source file). Without an `id`, one is derived from the
    text and metadata, so adding the same document twice stores it once.
    """

    text: str
    metadata: dict[str, Scalar] = field(default_factory=dict)
    id: str | None = None

    def content_id(self) -> str:
        if self.id:
            return self.id
        key = json.dumps([self.text, self.metadata], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class Hit:
    """One search result. `score` is cosine similarity in [-1, 1], higher is closer."""

    id: str
    text: str
    score: float
    source: str | None = None
    kind: str | None = None
    page: int | None = None
    start: float | None = None
    end: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # hybrid search only (None after a dense search): BM25 score and rank, the idf share of the query's
    # words the chunk holds, and the reciprocal-rank-fusion score the results are ordered by
    keyword: float | None = None
    keyword_rank: int | None = None
    coverage: float | None = None
    fused: float | None = None

    def relevant(self, min_score: float, keyword_floor: float = KEYWORD_FLOOR) -> bool:
        """Whether this hit may answer a question, decided on both rankings of a hybrid search.

        Relevant when its cosine similarity reaches `min_score`, or when keywords vouch for it: it is in
        BM25's top :data:`KEYWORD_TOP`, holds at least `keyword_floor` of the query's idf mass, and its
        cosine is still positive (a chunk pointing away from the question is never pulled in by a
        shared word alone). A dense-only hit (no keyword fields) is judged on cosine alone."""
        if self.score >= min_score:
            return True
        return (self.keyword_rank is not None and self.keyword_rank <= KEYWORD_TOP
                and (self.coverage or 0.0) >= keyword_floor and self.score > 0.0)

    @property
    def location(self) -> str:
        """'p. 3', '0:12–0:25' or '' — where in the source the text is."""
        if self.page is not None:
            return f"p. {self.page}"
        if self.start is not None:
            return f"{_clock(self.start)}–{_clock(self.end if self.end is not None else self.start)}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        keys = ("id", "score", "keyword", "keyword_rank", "coverage", "fused", "source", "kind", "page", "start",
                "end", "text")
        return {k: getattr(self, k) for k in keys} | {"metadata": self.metadata}


@dataclass(frozen=True)
class CollectionInfo:
    """What `mmagent memory list/show` prints about a collection."""

    name: str
    count: int
    embedder: EmbedderPin | None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class StoreUnwritableError(MemoryStoreError):
    """The store's disk is full or its folder is read-only: no write can succeed until that is fixed."""


_FULL = ("database or disk is full", "no space left on device", "disk quota exceeded")
_READ_ONLY = ("readonly database", "read-only file system", "permission denied")


def _unwritable(exc: BaseException, where: str) -> StoreUnwritableError | None:
    """The StoreUnwritableError `exc` means (Chroma reports SQLite's codes 13 and 8 as text), or None."""
    code, text = getattr(exc, "errno", None), str(exc).lower()
    if code in (errno.ENOSPC, errno.EDQUOT) or any(t in text for t in _FULL):
        return StoreUnwritableError(
            f"the memory store at {where} is out of disk space ({exc}); this write was not stored, what "
            "was stored before is intact. Free space on that disk (or set memory.path to a folder on "
            "another one) and run the command again: files already stored are skipped."
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or any(t in text for t in _READ_ONLY):
        return StoreUnwritableError(
            f"the memory store at {where} cannot be written: its folder is read-only ({exc}). Chroma "
            "opens its database for writing even to search, so make the folder writable for this user "
            "or set memory.path (MMAGENT_MEMORY_PATH) to a writable folder."
        )
    return None


@contextlib.contextmanager
def _writing(where: str) -> Iterator[None]:
    """Turn a full disk or a read-only folder met inside the block into StoreUnwritableError."""
    try:
        yield
    except MemoryStoreError:
        raise
    except Exception as exc:
        error = _unwritable(exc, where)
        if error is None:
            raise
        raise error from exc


def _location(client: ClientAPI) -> str:
    """The folder (or server) a client stores into, for messages."""
    settings = client.get_settings()
    if settings.is_persistent and settings.persist_directory:
        return str(settings.persist_directory)
    return f"{settings.chroma_server_host}:{settings.chroma_server_http_port}"


def check_collection_name(name: str) -> str:
    if not _NAME.match(name or "") or ".." in name:
        raise MemoryStoreError(
            f"collection name {name!r} is not allowed: use 3-512 letters, digits, '.', '_' or '-', starting "
            "and ending with a letter or digit (e.g. 'notes' or 'project-docs')."
        )
    return name


def make_client(config: MemoryConfig) -> ClientAPI:
    """A Chroma client for `config`: HTTP when `url` is set, else on-disk at `path` (created if needed)."""
    chromadb = require("chromadb", "memory")
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if config.url:
        url = urlparse(config.url if "://" in config.url else f"http://{config.url}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise MemoryStoreError(f"memory.url must look like http://HOST:PORT; got {config.url!r}.")
        port = url.port or (443 if url.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(
                host=url.hostname, port=port, ssl=url.scheme == "https", settings=settings
            )
            client.heartbeat()
        except Exception as exc:
            raise MemoryStoreError(
                f"cannot reach the Chroma server at {config.url} ({type(exc).__name__}: {exc}); start it with "
                "`chroma run --path DIR --port PORT`, or unset memory.url to use the on-disk store."
            ) from exc
        return client
    from pathlib import Path

    path = Path(config.path).expanduser()
    with _writing(str(path)):
        path.mkdir(parents=True, exist_ok=True)
        try:
            return chromadb.PersistentClient(path=str(path), settings=settings)
        except Exception:
            _forget_system(str(path))
            raise


def _forget_system(path: str) -> None:
    """Drop Chroma's cached system for `path` after a failed open: Chroma keeps the half-started one and
    hands it to the next client for the same folder, which then fails with an unrelated AttributeError."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(path, None)


def _pin_of(metadata: dict[str, Any] | None) -> EmbedderPin | None:
    metadata = metadata or {}
    if not all(k in metadata for k in PIN_KEYS):
        return None
    name, dim, sha = (metadata[k] for k in PIN_KEYS)
    return EmbedderPin(str(name), int(dim), str(sha))


def _pin_metadata(pin: EmbedderPin) -> dict[str, Scalar]:
    return dict(zip(PIN_KEYS, (pin.name, pin.dimension, pin.weights_sha256)))


class Memory:
    """One collection: add documents, search them, delete them.

    Build with :func:`open_memory`. The embedder (and its model) loads on the first add or search.
    """

    def __init__(self, client: ClientAPI, name: str, embedder: Embedder) -> None:
        self.client = client
        self.name = check_collection_name(name)
        self.location = _location(client)
        self.embedder = embedder
        self._collection: Collection | None = None
        self._keyword_indexes: dict[str, tuple[int, BM25Index]] = {}  # filter → (count when built, index)

    # ---- the collection and its pin -------------------------------------------------------------
    def _existing(self) -> Collection | None:
        names = {c.name for c in self.client.list_collections()}
        if self.name not in names:
            return None
        return self.client.get_collection(self.name, embedding_function=self.embedder.function)

    def _open(self, create: bool) -> Collection:
        if self._collection is not None:
            return self._collection
        collection = self._existing()
        pin = self.embedder.pin
        if collection is None:
            if not create:
                existing = ", ".join(list_names(self.client)) or "none"
                raise MemoryStoreError(
                    f"collection {self.name!r} does not exist (collections: {existing}); "
                    "add documents first with `mmagent ingest PATH --collection NAME`."
                )
            metadata = {"hnsw:space": "cosine", "hnsw:search_ef": SEARCH_EF, **_pin_metadata(pin)}
            with _writing(self.location):
                collection = self.client.get_or_create_collection(
                    self.name, embedding_function=self.embedder.function, metadata=metadata
                )
        with _writing(self.location):
            self._check_pin(collection, pin)
        self._search_wide(collection)
        self._collection = collection
        return collection

    def _search_wide(self, collection: Collection) -> None:
        """Raise the HNSW search breadth of a collection made before SEARCH_EF (or outside mmagent) to it; on a
        store that cannot be written, search as it is (a read-only store must stay searchable)."""
        hnsw = (collection.configuration_json or {}).get("hnsw") or {}  # no "hnsw": another index (Chroma Cloud)
        if hnsw.get("ef_search", SEARCH_EF) >= SEARCH_EF:
            return
        try:
            collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})
        except Exception as exc:  # a better recall is not worth failing a search for
            log.warning("collection %s: could not raise its HNSW search breadth from %s to %d (%s); searching "
                        "with %s candidates per query", self.name, hnsw["ef_search"], SEARCH_EF, exc, hnsw["ef_search"])
            return
        log.info("collection %s: HNSW search breadth raised from %s to %d candidates per query (from the next "
                 "time the index loads)", self.name, hnsw["ef_search"], SEARCH_EF)

    def _check_pin(self, collection: Collection, pin: EmbedderPin) -> None:
        stored = _pin_of(collection.metadata)
        if stored is None:
            if collection.count():
                raise EmbedderMismatchError(
                    f"collection {self.name!r} holds {collection.count()} vectors but records no embedder, so "
                    "mmagent cannot tell whether they match; re-ingest into a new collection."
                )
            # an empty collection made outside mmagent: pin it now (index settings cannot be modified)
            kept = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
            collection.modify(metadata={**kept, **_pin_metadata(pin)})
            return
        if not stored.same_model(pin):
            raise EmbedderMismatchError(
                f"collection {self.name!r} was built with embedder {stored.name!r} "
                f"({stored.dimension} dimensions, "
                f"weights sha256 {stored.weights_sha256[:12]}…) but the configured embedder is {pin.name!r} "
                f"({pin.dimension} dimensions, weights {pin.weights_sha256[:12]}…); "
                "its vectors are not comparable. "
                f"Set memory.embedder back to the model that built it, or ingest into another collection."
            )

    def open_collection(self, create: bool = True) -> Collection:
        """The Chroma collection after its pin check (created and pinned when missing and `create`).

        For adapters that talk to Chroma directly (the LangChain vector store in mmagent.orchestration):
        they get the collection only once it is known to hold this embedder's vectors.
        """
        return self._open(create=create)

    @property
    def pin(self) -> EmbedderPin | None:
        """The embedder recorded in the collection (None when it does not exist yet)."""
        collection = self._existing_light()
        return _pin_of(collection.metadata) if collection is not None else None

    def _existing_light(self) -> Collection | None:
        """The collection without loading the embedder (for counts, gets and deletes)."""
        if self._collection is not None:
            return self._collection
        if self.name not in list_names(self.client):
            return None
        return self.client.get_collection(self.name, embedding_function=None)

    # ---- the interface --------------------------------------------------------------------------
    def add(self, docs: Iterable[Document]) -> list[str]:
        """Store `docs`; returns their ids in order. Ids already stored are not embedded again."""
        docs = list(docs)
        ids = [d.content_id() for d in docs]
        if not docs:
            return ids
        collection = self._open(create=True)
        known = set(collection.get(ids=list(dict.fromkeys(ids)), include=[])["ids"])
        fresh: dict[str, Document] = {}
        for doc_id, doc in zip(ids, docs):
            if doc_id not in known and doc_id not in fresh and doc.text.strip():
                fresh[doc_id] = doc
        batch = max(1, self.client.get_max_batch_size())
        items = list(fresh.items())
        for i in range(0, len(items), batch):
            part = items[i : i + batch]
            with _writing(self.location):
                collection.add(
                    ids=[k for k, _ in part],
                    documents=[d.text for _, d in part],
                    metadatas=[dict(d.metadata) or None for _, d in part],
                )
        log.debug("collection %s: %d new of %d documents", self.name, len(fresh), len(docs))
        self._keyword_indexes.clear()
        return ids

    def search(self, query: str, k: int = 5, where: dict[str, Any] | None = None, mode: str = "dense") -> list[Hit]:
        """The `k` stored chunks best matching `query`, best first; `where` filters on metadata (Chroma syntax,
        e.g. ``{"kind": "image"}`` or ``{"$and": [{"kind": "pdf"}, {"page": {"$lte": 3}}]}``).

        `mode="dense"` ranks by cosine similarity of embeddings. `mode="hybrid"` also ranks the chunks by
        BM25 and orders the union by reciprocal rank fusion (:mod:`mmagent.memory.bm25`); every hit still
        carries its cosine `score`, plus its keyword evidence, so a caller can decide relevance on both."""
        if k < 1:
            raise MemoryStoreError(f"k must be at least 1; got {k}.")
        if mode not in SEARCH_MODES:
            raise MemoryStoreError(f"search mode must be one of {', '.join(SEARCH_MODES)}; got {mode!r}.")
        collection = self._open(create=False)
        if mode == "dense":
            return self._dense(collection, query, k, where)
        return self._hybrid(collection, query, k, where)

    def _dense(self, collection: Collection, query: str, k: int, where: dict[str, Any] | None,
               vector: Any = None) -> list[Hit]:
        """`vector`: the query's embedding when the caller has it (hybrid reuses it); else Chroma embeds
        `query`."""
        asked = {"query_texts": [query]} if vector is None else {"query_embeddings": [vector]}
        try:
            result = collection.query(
                **asked,
                n_results=k,
                where=where or None,
                include=["documents", "metadatas", "distances"],
            )
        except ValueError as exc:  # chroma reports a malformed `where` as ValueError
            raise MemoryStoreError(f"search filter {where!r} was refused by Chroma: {exc}") from exc
        return [
            _hit(i, d, m, dist)
            for i, d, m, dist in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0]
            )
        ]

    def _hybrid(self, collection: Collection, query: str, k: int, where: dict[str, Any] | None) -> list[Hit]:
        """Dense and BM25 rankings of a pool of candidates each, fused by reciprocal rank."""
        pool = max(k, HYBRID_POOL)
        # once per search: at 100k chunks Chroma's count costs ~10 ms and embedding the query ~13 ms
        count = collection.count()
        vector = self.embedder.function([query])[0]
        dense = self._dense(collection, query, min(pool, max(1, count)), where, vector)
        keyword = {h.id: h for h in self._keyword_index(collection, where, count).search(query, pool)}
        fused = reciprocal_rank_fusion([[h.id for h in dense], list(keyword)])
        hits = {h.id: h for h in dense}
        hits.update(self._scored(collection, vector, [i for i in keyword if i not in hits]))
        order = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        out = []
        for doc_id in order:
            kw = keyword.get(doc_id)
            out.append(replace(hits[doc_id], keyword=kw.score if kw else None, keyword_rank=kw.rank if kw else None,
                               coverage=kw.coverage if kw else 0.0, fused=round(fused[doc_id], 6)))
        return out

    def _scored(self, collection: Collection, query_vector: Any, ids: list[str]) -> dict[str, Hit]:
        """Hits for chunks BM25 found beyond the dense pool, with their cosine similarity to the query."""
        if not ids:
            return {}
        import numpy as np

        got = collection.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        q = np.asarray(query_vector, dtype=float)
        out = {}
        for doc_id, text, metadata, vector in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            v = np.asarray(vector, dtype=float)
            cosine = float(q @ v / ((np.linalg.norm(q) * np.linalg.norm(v)) or 1.0))
            out[doc_id] = _hit(doc_id, text, metadata, 1.0 - cosine)
        return out

    def _keyword_index(self, collection: Collection, where: dict[str, Any] | None, count: int) -> BM25Index:
        """The BM25 index of the chunks matching `where`, built from the stored documents on first use and
        rebuilt when the collection's count changed (another process added or deleted) or after this
        object's own add/delete. Chroma has no version counter, so an edit that keeps the count in another
        process goes unseen until this Memory is reopened."""
        key = json.dumps(where or {}, sort_keys=True)
        cached = self._keyword_indexes.get(key)
        if cached is None or cached[0] != count:
            got = collection.get(where=where or None, include=["documents"])
            cached = (count, BM25Index({i: d or "" for i, d in zip(got["ids"], got["documents"])}))
            self._keyword_indexes[key] = cached
        return cached[1]

    def delete(self, ids: Sequence[str] | None = None, where: dict[str, Any] | None = None) -> int:
        """Remove documents by id and/or metadata filter; returns how many were removed."""
        if not ids and not where:
            raise MemoryStoreError(
                "delete needs ids or a `where` filter; to drop a whole collection use delete_collection()."
            )
        collection = self._existing_light()
        if collection is None:
            return 0
        # the matching ids first: one indexed look-up, and no write at all when nothing matches (ingest asks
        # this for every new file), where counting the collection before and after cost two full counts
        found = collection.get(ids=list(ids) if ids else None, where=where or None, include=[])["ids"]
        if not found:
            return 0
        with _writing(self.location):
            collection.delete(ids=found)
        self._keyword_indexes.clear()
        return len(found)

    def count(self) -> int:
        collection = self._existing_light()
        return collection.count() if collection is not None else 0

    def find(self, where: dict[str, Any], limit: int | None = 1) -> list[Hit]:
        """Stored chunks matching a metadata filter (no embedding involved; score 0); `limit` None: all."""
        collection = self._existing_light()
        if collection is None:
            return []
        got = collection.get(where=where, limit=limit, include=["documents", "metadatas"])
        return [_hit(i, d, m, 1.0) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])]

    def sources(self, page_size: int = 5000) -> dict[str, int]:
        """Chunk count per source path (what `mmagent memory show` lists); reads metadata only."""
        collection = self._existing_light()
        counts: dict[str, int] = {}
        offset = 0
        while collection is not None:
            got = collection.get(include=["metadatas"], limit=page_size, offset=offset)
            for metadata in got["metadatas"]:
                source = str((metadata or {}).get("source", "(no source)"))
                counts[source] = counts.get(source, 0) + 1
            if len(got["ids"]) < page_size:
                break
            offset += page_size
        return dict(sorted(counts.items()))


def _hit(doc_id: str, text: str | None, metadata: dict[str, Any] | None, distance: float) -> Hit:
    metadata = dict(metadata or {})
    page = metadata.get("page")
    start, end = metadata.get("start"), metadata.get("end")
    return Hit(
        id=doc_id,
        text=text or "",
        score=round(1.0 - float(distance), 6),
        source=metadata.get("source"),
        kind=metadata.get("kind"),
        page=int(page) if page is not None else None,
        start=float(start) if start is not None else None,
        end=float(end) if end is not None else None,
        metadata=metadata,
    )


def list_names(client: ClientAPI) -> list[str]:
    return sorted(c.name for c in client.list_collections())


def open_memory(config: MemoryConfig | None = None, collection: str | None = None) -> Memory:
    """The collection `collection` (default ``memory.collection``) in the configured store."""
    config = config or MemoryConfig()
    return Memory(make_client(config), collection or config.collection, get_embedder(config.embedder))


def list_collections(config: MemoryConfig) -> list[CollectionInfo]:
    """Every collection in the store with its size and recorded embedder (no model loads)."""
    client = make_client(config)
    return [
        CollectionInfo(c.name, c.count(), _pin_of(c.metadata))
        for c in sorted(client.list_collections(), key=lambda c: c.name)
    ]


def delete_collection(config: MemoryConfig, name: str) -> None:
    client = make_client(config)
    if name not in list_names(client):
        raise MemoryStoreError(
            f"collection {name!r} does not exist (collections: {', '.join(list_names(client)) or 'none'})."
        )
    with _writing(_location(client)):
        client.delete_collection(name)


def reset_memory(config: MemoryConfig) -> list[str]:
    """Delete every collection in the store; returns their names."""
    client = make_client(config)
    names = list_names(client)
    with _writing(_location(client)):
        for name in names:
            client.delete_collection(name)
    return names
