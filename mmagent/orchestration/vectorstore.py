"""mmagent memory as a LangChain `VectorStore`: `langchain_chroma.Chroma` over our client and collection.

The store is the same Chroma collection `mmagent ingest` and `Memory` use (on disk or a `chroma run`
server), with the same pinned embedder, so documents added on either side are found on the other and
scores agree (cosine similarity).

The pin is checked before LangChain touches the collection: the store is built only with
:class:`MemoryEmbeddings` (our sentence-transformers embedder, which carries name, dimension and a
weights hash) and only over a collection pinned to that embedder; a collection created here
(``create=True``) is pinned to it.
Any other LangChain `Embeddings` is refused with `EmbedderMismatchError`, because nothing tells us
whether its vectors are comparable with the stored ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from mmagent.config import MemoryConfig
from mmagent.errors import EmbedderMismatchError, require
from mmagent.memory.embedder import Embedder, get_embedder
from mmagent.memory.store import Memory, open_memory

if TYPE_CHECKING:
    from langchain_chroma import Chroma


class MemoryEmbeddings(Embeddings):
    """LangChain `Embeddings` over mmagent's pinned embedder (unit-length vectors, cosine = dot product)."""

    def __init__(self, embedder: Embedder | str = "default") -> None:
        self.embedder = get_embedder(embedder) if isinstance(embedder, str) else embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0]

    def __repr__(self) -> str:
        return f"MemoryEmbeddings({self.embedder!r})"


def as_vectorstore(memory: Memory, embeddings: Embeddings | None = None, *, create: bool = False) -> Chroma:
    """A `langchain_chroma.Chroma` over `memory`'s client and collection, embedding with its pinned model.

    `embeddings` defaults to the memory's embedder; another :class:`MemoryEmbeddings` is accepted only
    when the collection is pinned to the same weights (or does not exist yet: it is then pinned to them).
    Raises EmbedderMismatchError for a mismatched or an unpinnable (non-mmagent) embeddings object, and
    MemoryStoreError for a missing collection unless `create` (then it is created and pinned, for writing).
    """
    langchain_chroma = require("langchain_chroma", "flows")
    embeddings = MemoryEmbeddings(memory.embedder) if embeddings is None else embeddings
    if not isinstance(embeddings, MemoryEmbeddings):
        raise EmbedderMismatchError(
            f"collection {memory.name!r} is pinned to an mmagent embedder, but got LangChain embeddings "
            f"{type(embeddings).__name__}, which record no weights hash, so nothing shows their vectors are "
            "comparable with the stored ones. Pass MemoryEmbeddings(name or path) for the embedder the "
            "collection was built with (memory.embedder), or none to use the memory's own."
        )
    # the pin check (and pinning of a new collection) is Memory's; LangChain only sees a checked collection
    collection = Memory(memory.client, memory.name, embeddings.embedder).open_collection(create=create)
    return langchain_chroma.Chroma(
        client=memory.client,
        collection_name=memory.name,
        embedding_function=embeddings,
        # used when LangChain re-creates the collection (reset_collection): same space, same pin
        collection_metadata={"hnsw:space": "cosine", **(collection.metadata or {})},
    )


def open_vectorstore(config: MemoryConfig | None = None, collection: str | None = None, *,
                     create: bool = False) -> Chroma:
    """The configured memory collection (default ``memory.collection``) as a LangChain vector store.

    A missing collection is refused with the error `mmagent memory search` gives (a typo would otherwise
    search a new, empty collection and find nothing); pass ``create=True`` to make it, e.g. to add texts.
    """
    return as_vectorstore(open_memory(config, collection), create=create)
