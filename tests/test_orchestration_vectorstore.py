"""Memory as a LangChain VectorStore: LangChain's standard vector-store suite on a real Chroma (on disk in
tmp_path, and a `chroma run` server) with the real packaged embedder, plus the pin and the round trip
with `Memory`.

The suite's `get_embeddings()` returns `DeterministicFakeEmbedding` (6 dimensions, no weights), which a
pinned collection refuses by design (`test_fake_embeddings_are_refused`); the suite documents
`get_embeddings` as the hook for the embeddings a store should be tested with, so it returns our
pinned MiniLM here. The suite's answers still hold with real embeddings: every query it checks
either matches one stored text exactly (cosine 1) or leaves a single candidate.
"""

from __future__ import annotations

import chromadb
import pytest
from chromadb.config import Settings
from helpers.memory import build_tiny_embedder, chroma_server
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from mmagent.config import MemoryConfig
from mmagent.errors import EmbedderMismatchError, MemoryStoreError
from mmagent.memory import Document, list_collections, open_memory
from mmagent.memory.embedder import get_embedder
from mmagent.memory.store import Memory, make_client
from mmagent.orchestration.vectorstore import MemoryEmbeddings, as_vectorstore, open_vectorstore


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma-server")
    with chroma_server(root / "data", root / "server.log") as url:
        yield url


class PinnedSuite(VectorStoreIntegrationTests):
    """What the store supports: everything the suite checks (async runs LangChain's executor default)."""

    has_sync = property(lambda self: True)
    has_async = property(lambda self: True)
    has_get_by_ids = property(lambda self: True)

    @staticmethod
    def get_embeddings() -> MemoryEmbeddings:
        return MemoryEmbeddings("default")

    def client(self, request, tmp_path) -> chromadb.ClientAPI:
        raise NotImplementedError

    @pytest.fixture
    def vectorstore(self, request, tmp_path):
        memory = Memory(self.client(request, tmp_path), "suite", get_embedder("default"))
        store = as_vectorstore(memory, self.get_embeddings(), create=True)
        try:
            yield store
        finally:
            store.delete_collection()


class TestOnDisk(PinnedSuite):
    def client(self, request, tmp_path):
        return chromadb.PersistentClient(
            path=str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False)
        )


class TestOnServer(PinnedSuite):
    def client(self, request, tmp_path):
        return make_client(MemoryConfig(url=request.getfixturevalue("server_url")))


DOCS = [
    Document("The cat curled up on the warm windowsill and purred.", {"source": "pets.txt", "kind": "text"}),
    Document("Quarterly revenue rose 12 percent on strong cloud sales.", {"source": "report.pdf", "page": 3}),
    Document("Preheat the oven to 200 degrees and bake the bread for 30 minutes.", {"source": "recipe.md"}),
]


def test_memory_and_vectorstore_share_collection_and_scores(tmp_path):
    config = MemoryConfig(path=str(tmp_path / "store"))
    memory = open_memory(config, "notes")
    memory.add(DOCS)
    store = open_vectorstore(config, "notes")

    found = store.similarity_search_with_relevance_scores("how long does the bread bake?", k=3)
    hits = memory.search("how long does the bread bake?", k=3)
    assert [d.id for d, _ in found] == [h.id for h in hits]
    assert [s for _, s in found] == pytest.approx([h.score for h in hits], abs=1e-5)
    assert found[0][0].metadata["source"] == "recipe.md"
    assert (
        store.as_retriever(search_kwargs={"k": 1}).invoke("a pet asleep in the sun")[0].page_content
        == DOCS[0].text
    )

    added = store.add_documents([LCDocument("The invoice is due on 3 May.", metadata={"source": "mail.txt"})])
    hit = memory.search("when must the invoice be paid?", k=1)[0]
    assert (hit.id, hit.source) == (added[0], "mail.txt")
    assert store.similarity_search("revenue growth", k=1, filter={"page": 3})[0].page_content == DOCS[1].text


def test_new_collection_is_pinned_and_reset_keeps_the_pin(tmp_path):
    config = MemoryConfig(path=str(tmp_path / "store"))
    store = open_vectorstore(config, "fresh", create=True)
    pin = get_embedder("default").pin
    assert open_memory(config, "fresh").pin == pin
    store.add_texts(["one", "two"])
    store.reset_collection()
    memory = open_memory(config, "fresh")
    assert (memory.pin, memory.count()) == (pin, 0)
    store.add_texts(["the cat purred"])
    assert memory.search("a purring cat", k=1)[0].score == pytest.approx(
        store.similarity_search_with_relevance_scores("a purring cat", k=1)[0][1], abs=1e-5
    )


def test_a_missing_collection_is_refused_unless_created(tmp_path):
    """Issue 17: the README's `open_vectorstore(load_config().memory, "handbook")` made an empty collection and
    found nothing, where `mmagent memory search` says the collection does not exist."""
    config = MemoryConfig(path=str(tmp_path / "store"))
    open_memory(config, "notes").add(DOCS[:1])
    with pytest.raises(MemoryStoreError, match=r"collection 'handbook' does not exist \(collections: notes\); add documents"):
        open_vectorstore(config, "handbook")
    with pytest.raises(MemoryStoreError, match="collection 'handbook' does not exist"):
        as_vectorstore(open_memory(config, "handbook"))
    assert [c.name for c in list_collections(config)] == ["notes"]  # nothing was created by the refusals
    open_vectorstore(config, "handbook", create=True).add_texts(["the office cat sleeps on the printer"])
    assert open_vectorstore(config, "handbook").similarity_search("office cat", k=1)[0].page_content.startswith("the office cat")


def test_fake_embeddings_are_refused(tmp_path):
    """The suite's own DeterministicFakeEmbedding: no weights hash, so neither a new nor a filled collection."""
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "notes")
    for _ in range(2):
        with pytest.raises(
            EmbedderMismatchError, match="DeterministicFakeEmbedding, which record no weights hash"
        ):
            as_vectorstore(memory, VectorStoreIntegrationTests.get_embeddings())
        memory.add(DOCS)
    assert memory.count() == len(DOCS)
    assert isinstance(VectorStoreIntegrationTests.get_embeddings(), DeterministicFakeEmbedding)


def test_another_embedder_is_refused_both_ways(tmp_path):
    store_path = str(tmp_path / "store")
    tiny = str(build_tiny_embedder(tmp_path / "tiny", seed=1))
    default = open_memory(MemoryConfig(path=store_path), "minilm")
    default.add(DOCS)
    with pytest.raises(
        EmbedderMismatchError, match=r"built with embedder 'all-MiniLM-L6-v2' \(384 dimensions"
    ):
        as_vectorstore(default, MemoryEmbeddings(tiny))
    with pytest.raises(
        EmbedderMismatchError, match=r"built with embedder 'all-MiniLM-L6-v2'.*configured embedder is"
    ):
        open_vectorstore(MemoryConfig(path=store_path, embedder=tiny), "minilm")

    open_vectorstore(MemoryConfig(path=store_path, embedder=tiny), "tiny", create=True).add_texts(["small vectors"])
    with pytest.raises(
        EmbedderMismatchError,
        match=r"built with embedder '\w+' \(32 dimensions.*configured embedder is 'all-MiniLM",
    ):
        as_vectorstore(open_memory(MemoryConfig(path=store_path), "tiny"))
    assert default.count() == len(DOCS)  # refused calls changed nothing
