"""Faults in the vector memory (issue 16): `mmagent ingest` killed with SIGKILL part-way, a full disk and a
read-only store. Real Chroma on disk, a tiny random embedder, the real CLI in a real subprocess.

Searchability is checked with each chunk's own text as the query: identical text gives cosine 1.0 under
any embedder, so a random one proves the vector is there."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mmagent.cli import main
from mmagent.config import MemoryConfig
from mmagent.memory import open_memory

FILES = 40
KILL_AFTER = 4  # files the progress bar must report done before the kill
MMAGENT = str(Path(sys.executable).parent / "mmagent")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> Path:
    from helpers.memory import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("embedder"), seed=0)


def write_corpus(root: Path, files: int = FILES) -> list[Path]:
    """`files` text files, every third one long enough for several chunks; sorted as ingest reads them."""
    root.mkdir(parents=True)
    paths = []
    for i in range(files):
        words = " ".join(f"fact{i}w{j}" for j in range(400 if i % 3 == 0 else 30))
        path = root / f"doc{i:03d}.txt"
        path.write_text(f"Document {i} says: {words}.\n")
        paths.append(path)
    return paths


def store_args(store: Path, embedder: Path) -> list[str]:
    """Where to store, with what; chunks fit the tiny embedder's 64 tokens."""
    return ["--chunk-size", "48", "--chunk-overlap", "8", "--set", f"memory.path={store}",
            "--set", f"memory.embedder={embedder}"]


def kill_after_reported(cmd: list[str], done: int, timeout: float = 120.0) -> tuple[int, str]:
    """Run `cmd`, SIGKILL it once its progress bar (stderr) reports `done` files; (files reported, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    seen, reported = b"", 0
    deadline = time.monotonic() + timeout
    try:
        while reported < done:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk or time.monotonic() > deadline:
                break
            seen += chunk
            counts = re.findall(rb"\| *(\d+)/%d \[" % FILES, seen)
            reported = int(counts[-1]) if counts else 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    text = seen.decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"ingest ended before the kill (status {proc.returncode}): {text[-800:]}"
    return reported, text


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def stored_chunks(memory, path: Path) -> list:
    return memory.find({"source": str(path.resolve())}, limit=10_000)


def test_ingest_killed_midway_keeps_what_it_reported_and_a_rerun_completes(tmp_path, embedder, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    store = tmp_path / "store"
    cmd = [MMAGENT, "ingest", str(tmp_path / "corpus"), "-c", "kbase", "--progress", *store_args(store, embedder)]
    reported, err = kill_after_reported(cmd, KILL_AFTER)
    assert reported >= KILL_AFTER, f"no progress reported before the kill: {err[-800:]}"

    memory = open_memory(MemoryConfig(path=str(store), embedder=str(embedder)), "kbase")  # the store opens
    for path in corpus[:reported]:  # every file reported done is complete and searchable
        chunks = stored_chunks(memory, path)
        assert chunks and len(chunks) == chunks[0].metadata["chunks"], path.name
        probe = chunks[-1].text
        assert memory.search(probe, k=1)[0].text == probe

    code = main(["ingest", str(tmp_path / "corpus"), "-c", "kbase", "--json", *store_args(store, embedder)])
    rerun = json.loads(capsys.readouterr().out)
    assert code == 0 and not rerun["failed"]
    assert rerun["ingested"] >= FILES - reported > 0  # the kill came before the end: the rerun had work
    assert len(rerun["skipped"]) + rerun["ingested"] == FILES

    memory = open_memory(MemoryConfig(path=str(store), embedder=str(embedder)), "kbase")
    keys = [(h.source, h.metadata["chunk"]) for path in corpus for h in stored_chunks(memory, path)]
    assert len(keys) == len(set(keys)) == memory.count()  # no chunk twice
    for path in corpus:
        chunks = stored_chunks(memory, path)
        assert len(chunks) == chunks[0].metadata["chunks"], path.name


def test_a_file_stored_only_in_part_is_stored_again(tmp_path, embedder):
    """What a kill between two writes of one long file leaves (Chroma writes at most a batch at a time)."""
    from mmagent.memory.chunking import ChunkOptions
    from mmagent.memory.ingest import ingest

    [path] = write_corpus(tmp_path / "corpus", files=1)
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store"), embedder=str(embedder)), "part")
    first = ingest([path], memory, chunking=ChunkOptions(48, 8), progress=False)
    chunks = sorted(stored_chunks(memory, path), key=lambda h: h.metadata["chunk"])
    assert first.chunks == len(chunks) > 3
    memory.delete(ids=[h.id for h in chunks[2:]])  # as if killed after the first write

    again = ingest([path], memory, chunking=ChunkOptions(48, 8), progress=False)
    assert (again.ingested, again.skipped) == (1, [])
    assert sorted(h.id for h in stored_chunks(memory, path)) == sorted(h.id for h in chunks)
