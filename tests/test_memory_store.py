"""The Memory contract on a real on-disk Chroma and on a real `chroma run` server, with the real embedder;
the embedder pin; token-sized chunking."""

from __future__ import annotations

import re
import shutil

import pytest
from helpers.memory import build_tiny_embedder, chroma_server

from mmagent.config import MemoryConfig
from mmagent.errors import ConfigError, EmbedderMismatchError, MemoryStoreError
from mmagent.memory import Document, delete_collection, list_collections, open_memory, reset_memory
from mmagent.memory.chunking import ChunkOptions, chunk_segments, chunk_text
from mmagent.memory.embedder import get_embedder

DOCS = [
    Document("The cat curled up on the warm windowsill and purred.", {"source": "pets.txt", "kind": "text"}),
    Document(
        "Quarterly revenue rose 12 percent on strong cloud sales.",
        {"source": "report.pdf", "kind": "pdf", "page": 3},
    ),
    Document(
        "Preheat the oven to 200 degrees and bake the bread for 30 minutes.",
        {"source": "recipe.md", "kind": "text"},
    ),
    Document(
        "The rocket lifted off from the launch pad at dawn.",
        {"source": "launch.flac", "kind": "audio", "start": 12.5, "end": 19.0},
    ),
    Document(
        "Operating costs fell because the company closed two offices.",
        {"source": "report.pdf", "kind": "pdf", "page": 4},
    ),
]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma-server")
    with chroma_server(root / "data", root / "server.log") as url:
        yield url


@pytest.fixture(params=["persistent", "http"])
def memory_config(request, tmp_path) -> MemoryConfig:
    if request.param == "persistent":
        return MemoryConfig(path=str(tmp_path / "store"))
    config = MemoryConfig(path=str(tmp_path / "unused"), url=request.getfixturevalue("server_url"))
    reset_memory(config)  # one server per module: start every test from an empty store
    return config


def test_memory_contract(memory_config):
    memory = open_memory(memory_config, "contract")
    with pytest.raises(MemoryStoreError, match="collection 'contract' does not exist.*mmagent ingest"):
        memory.search("anything")

    ids = memory.add(DOCS)
    assert len(set(ids)) == len(DOCS) and ids == [d.content_id() for d in DOCS]
    assert memory.count() == len(DOCS)
    assert memory.add(DOCS[:2]) == ids[:2] and memory.count() == len(DOCS)  # same content: stored once

    hits = memory.search("a kitten sleeping by the window", k=3)
    assert [h.source for h in hits][0] == "pets.txt"
    assert len(hits) == 3 and all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    assert 0.3 < hits[0].score <= 1.0 and hits[0].score - hits[1].score > 0.1
    query_vec, doc_vec = get_embedder("default").embed(["a kitten sleeping by the window", hits[0].text])
    assert abs(hits[0].score - sum(a * b for a, b in zip(query_vec, doc_vec))) < 1e-3  # cosine space

    money = memory.search("how did the company's finances change?", k=2, where={"kind": "pdf"})
    assert {h.source for h in money} == {"report.pdf"} and {h.page for h in money} == {3, 4}
    assert money[0].location in ("p. 3", "p. 4")
    audio = memory.search("spaceflight", k=1)[0]
    assert (audio.kind, audio.start, audio.end, audio.location) == ("audio", 12.5, 19.0, "0:12–0:19")
    with pytest.raises(MemoryStoreError, match="search filter"):
        memory.search("x", where={"page": {"$nosuch": 1}})

    reopened = open_memory(memory_config, "contract")  # a new client sees the same data and pin
    assert reopened.pin == get_embedder("default").pin and reopened.pin.dimension == 384
    [info] = list_collections(memory_config)
    assert (info.name, info.count, info.embedder) == ("contract", len(DOCS), reopened.pin)
    assert reopened.sources() == {"launch.flac": 1, "pets.txt": 1, "recipe.md": 1, "report.pdf": 2}

    assert reopened.delete(ids=[ids[0]]) == 1
    assert "pets.txt" not in {h.source for h in reopened.search("a kitten sleeping by the window", k=5)}
    assert reopened.delete(where={"source": "report.pdf"}) == 2 and reopened.count() == 2

    delete_collection(memory_config, "contract")
    assert list_collections(memory_config) == []
    with pytest.raises(MemoryStoreError, match="does not exist"):
        delete_collection(memory_config, "contract")


def test_collection_names_and_k_are_checked(tmp_path):
    with pytest.raises(MemoryStoreError, match="collection name 'a b' is not allowed"):
        open_memory(MemoryConfig(path=str(tmp_path)), "a b")
    memory = open_memory(MemoryConfig(path=str(tmp_path)), "fine")
    memory.add(DOCS[:1])
    with pytest.raises(MemoryStoreError, match="k must be at least 1"):
        memory.search("x", k=0)


def test_a_collection_made_outside_mmagent_is_pinned_or_refused(tmp_path):
    from mmagent.memory.store import make_client

    config = MemoryConfig(path=str(tmp_path))
    client = make_client(config)
    client.create_collection("outside", embedding_function=None)
    filled = client.create_collection("filled", embedding_function=None)
    filled.add(ids=["x"], embeddings=[[0.1] * 384], documents=["made elsewhere"])

    memory = open_memory(config, "outside")
    memory.add(DOCS[:2])
    assert memory.pin == get_embedder("default").pin and len(memory.search("cat", k=1)) == 1
    with pytest.raises(EmbedderMismatchError, match="holds 1 vectors but records no embedder"):
        open_memory(config, "filled").search("cat")


def test_an_older_collection_is_opened_with_the_wider_hnsw_search(tmp_path):
    from mmagent.memory.store import SEARCH_EF, make_client

    config = MemoryConfig(path=str(tmp_path))
    make_client(config).create_collection("older", metadata={"hnsw:search_ef": 50}, embedding_function=None)
    open_memory(config, "older").add(DOCS)
    reopened = make_client(config).get_collection("older", embedding_function=None)
    assert reopened.configuration_json["hnsw"]["ef_search"] == SEARCH_EF
    assert [h.metadata["source"] for h in open_memory(config, "older").search("baking bread", k=1)] == ["recipe.md"]


def test_unreachable_server_is_reported(tmp_path):
    from helpers.memory import free_port

    with pytest.raises(MemoryStoreError, match="cannot reach the Chroma server.*chroma run"):
        open_memory(MemoryConfig(path=str(tmp_path), url=f"http://127.0.0.1:{free_port()}"))


@pytest.fixture(scope="module")
def tiny_embedders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("embedders")
    a = build_tiny_embedder(root / "a", seed=1)
    b = build_tiny_embedder(root / "b", seed=2)
    moved = root / "a-moved" / "renamed"
    shutil.copytree(a, moved)
    return {"a": str(a), "b": str(b), "a_moved": str(moved)}


def test_collection_refuses_another_embedder(tmp_path, tiny_embedders):
    store = str(tmp_path / "store")
    pinned = open_memory(MemoryConfig(path=store, embedder=tiny_embedders["a"]), "pinned")
    pinned.add(DOCS)
    assert pinned.pin.dimension == 32

    default = open_memory(MemoryConfig(path=store), "pinned")
    for call in (lambda: default.search("cat"), lambda: default.add([Document("new text")])):
        with pytest.raises(EmbedderMismatchError) as err:
            call()
        message = str(err.value)
        assert "built with embedder 'st' (32 dimensions" in message
        assert "configured embedder is 'all-MiniLM-L6-v2' (384 dimensions" in message
        assert "Set memory.embedder back" in message

    same_size = open_memory(MemoryConfig(path=store, embedder=tiny_embedders["b"]), "pinned")
    with pytest.raises(EmbedderMismatchError, match=r"\(32 dimensions, weights sha256 [0-9a-f]{12}…\) but"):
        same_size.search("cat")
    assert default.count() == len(DOCS)  # refused calls changed nothing

    # the same weights in another folder under another name are the same embedder
    moved = open_memory(MemoryConfig(path=store, embedder=tiny_embedders["a_moved"]), "pinned")
    assert len(moved.search("cat", k=2)) == 2


def test_unknown_embedder_name_says_what_to_do():
    with pytest.raises(ConfigError, match="memory.embedder 'no/such-model-anywhere' is neither 'default'"):
        get_embedder("no/such-model-anywhere")


# ---- chunking --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    return get_embedder("default").tokenizer


def _words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def test_chunks_fit_overlap_and_never_split_words(tokenizer):
    words = [f"word{i}" if i % 7 else f"unbelievably{i}." for i in range(900)]
    text = " ".join(words)
    options = ChunkOptions(size=64, overlap=16)
    chunks = chunk_text(text, tokenizer, options)
    assert len(chunks) > 10
    for chunk in chunks:
        assert len(tokenizer(chunk, add_special_tokens=False)["input_ids"]) <= 64
        assert set(_words(chunk)) <= set(words)  # sliced at word borders from the original text
    for left, right in zip(chunks, chunks[1:]):
        assert _words(left)[-1] in _words(right)  # neighbours share their border words
    covered = [w for c in chunks for w in _words(c)]
    assert (
        set(covered) == set(words)
        and _words(chunks[0])[0] == words[0]
        and _words(chunks[-1])[-1] == words[-1]
    )
    assert chunk_text("  \n ", tokenizer, options) == []
    assert chunk_text("Short Text, kept AS IS.", tokenizer, options) == ["Short Text, kept AS IS."]


def test_transcript_chunks_keep_times(tokenizer):
    segments = [(i * 2.0, i * 2.0 + 1.5, f"sentence number {i} about topic {i % 5}") for i in range(60)]
    chunks = chunk_segments(segments, tokenizer, ChunkOptions(size=40, overlap=10))
    assert len(chunks) > 5
    assert chunks[0].start == 0.0 and chunks[-1].end == segments[-1][1]
    for chunk in chunks:
        assert len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 40
        assert chunk.start < chunk.end
    assert all(b.start <= a.end for a, b in zip(chunks, chunks[1:]))  # overlapping segments
    assert all(f"sentence number {i} " in " ".join(c.text for c in chunks) + " " for i in range(60))


@pytest.mark.parametrize("size, overlap, message", [(4, 0, "at least 8"), (64, 40, "between 0 and half")])
def test_chunk_options_are_validated(size, overlap, message):
    with pytest.raises(ConfigError, match=message):
        ChunkOptions(size, overlap)
    with pytest.raises(ConfigError, match="exceeds what the embedder reads"):
        ChunkOptions(300, 10).check_fits(256)
