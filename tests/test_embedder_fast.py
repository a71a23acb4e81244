"""The bfloat16 embedder (`default@bf16`) and ingest's combined writes, on a real on-disk Chroma with the real
packaged MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from mmagent.config import MemoryConfig
from mmagent.errors import ConfigError, EmbedderMismatchError
from mmagent.memory import Document, open_memory
from mmagent.memory.chunking import ChunkOptions
from mmagent.memory.embedder import get_embedder
from mmagent.memory.ingest import Ingestor
from mmagent.memory.store import Memory, make_client

TEXTS = [
    "The spare key to the garden shed is under the blue flower pot.",
    "Revenue grew by 12 percent while costs stayed flat.",
    "Hold the reset button for ten seconds until the router's light blinks orange.",
    "Etna is an active volcano on the east coast of Sicily.",
]


def test_bf16_vectors_match_float32_and_are_unit_length():
    base, fast = get_embedder("default"), get_embedder("default@bf16")
    a, b = np.asarray(base.embed(TEXTS)), np.asarray(fast.embed(TEXTS))
    assert fast.name == "all-MiniLM-L6-v2@bf16" and fast.path == base.path
    assert str(next(fast.model.parameters()).dtype) == "torch.bfloat16"
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() >= 0.99, cosine
    assert not np.allclose(a, b, atol=1e-6)  # really another computation, not the float32 model again
    # the ranking a search gives is the same: each text is its own nearest neighbour in the other space
    assert list(np.argmax(a @ b.T, axis=1)) == list(range(len(TEXTS)))


def test_bf16_is_another_pin_and_the_two_never_share_a_collection(tmp_path):
    base, fast = get_embedder("default"), get_embedder("default@bf16")
    assert not base.pin.same_model(fast.pin) and base.pin.dimension == fast.pin.dimension == 384
    config = MemoryConfig(path=str(tmp_path / "store"))
    client = make_client(config)
    Memory(client, "f32", base).add([Document(TEXTS[0])])
    Memory(client, "b16", fast).add([Document(TEXTS[1])])
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2@bf16"):
        Memory(client, "f32", fast).search("key")
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2"):
        Memory(client, "b16", base).add([Document(TEXTS[2])])
    hits = open_memory(MemoryConfig(path=config.path, embedder="default@bf16"), "b16").search("revenue", k=1)
    assert hits[0].text == TEXTS[1] and hits[0].score > 0.4


def test_unknown_precision_names_the_known_ones():
    with pytest.raises(ConfigError, match="@bf16"):
        get_embedder("default@int3")


def _files(folder, n):
    folder.mkdir()
    paths = []
    for i in range(n):
        path = folder / f"f{i}.txt"
        path.write_text(" ".join(f"Paragraph {j} of file {i} is about item {i * 7 + j}." for j in range(12)))
        paths.append(path)
    return paths


def test_combined_writes_store_what_file_by_file_writes_store(tmp_path):
    paths = _files(tmp_path / "docs", 6)
    (tmp_path / "docs" / "copy.txt").write_text(paths[0].read_text())  # same content: skipped, not doubled
    stored = {}
    for batch in (1, 10_000):
        memory = open_memory(MemoryConfig(path=str(tmp_path / f"store{batch}")), "docs")
        summary = Ingestor(memory, chunking=ChunkOptions(32, 8), batch_chunks=batch).run([tmp_path / "docs"])
        assert (summary.files, summary.ingested, summary.chunks) == (7, 6, memory.count())
        copy = (tmp_path / "docs" / "copy.txt").resolve()  # read first (sorted names): f0.txt is the copy
        assert [(n.path, n.reason) for n in summary.skipped] == [(str(paths[0]), f"already stored (same content as {copy})")]
        got = memory.open_collection().get(include=["metadatas"])
        stored[batch] = sorted(zip(got["ids"], [m["chunk"] for m in got["metadatas"]]))
    assert stored[1] == stored[10_000] and len(stored[1]) > 6


def test_a_failed_combined_write_is_reported_against_its_file(tmp_path):
    paths = _files(tmp_path / "docs", 4)

    class Refusing(Memory):  # the store refuses one file's chunks (the edge of this test)
        def add(self, docs):
            docs = list(docs)
            if any(d.metadata["name"] == "f2.txt" for d in docs):
                raise ValueError("refused")
            return super().add(docs)

    base = open_memory(MemoryConfig(path=str(tmp_path / "store")), "docs")
    memory = Refusing(base.client, "docs", base.embedder)
    summary = Ingestor(memory, chunking=ChunkOptions(32, 8)).run(paths)
    assert summary.ingested == 3 and [n.path for n in summary.failed] == [str(paths[2])]
    assert "refused" in summary.failed[0].reason and summary.chunks == memory.count() > 3
    assert {h.metadata["name"] for h in memory.find({"kind": "text"}, limit=1000)} == {"f0.txt", "f1.txt", "f3.txt"}
