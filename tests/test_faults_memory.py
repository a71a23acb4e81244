"""Faults in the vector memory (issue 16): `mmagent ingest` killed with SIGKILL part-way, a full disk and a
read-only store. Real Chroma on disk, a tiny random embedder, the real CLI in a real subprocess.

Searchability is checked with each chunk's own text as the query: identical text gives cosine 1.0 under
any embedder, so a random one proves the vector is there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.kill import kill_after_progress

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
    """`files` text files (their text names the folder), every third one long enough for several chunks;
    sorted as ingest reads them."""
    root.mkdir(parents=True)
    paths = []
    for i in range(files):
        words = " ".join(f"{root.name}{i}w{j}" for j in range(400 if i % 3 == 0 else 30))
        path = root / f"doc{i:03d}.txt"
        path.write_text(f"Document {i} says: {words}.\n")
        paths.append(path)
    return paths


CHUNKS = ["--chunk-size", "48", "--chunk-overlap", "8"]  # chunks that fit the tiny embedder's 64 tokens


def store_args(store: Path, embedder: Path) -> list[str]:
    return ["--set", f"memory.path={store}", "--set", f"memory.embedder={embedder}"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def stored_chunks(memory, path: Path) -> list:
    return memory.find({"source": str(path.resolve())}, limit=10_000)


def test_ingest_killed_midway_keeps_what_it_reported_and_a_rerun_completes(tmp_path, embedder, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    store = tmp_path / "store"
    cmd = [MMAGENT, "ingest", str(tmp_path / "corpus"), "-c", "kbase", "--progress", *CHUNKS,
           *store_args(store, embedder)]
    reported, _ = kill_after_progress(cmd, KILL_AFTER, FILES)

    memory = open_memory(MemoryConfig(path=str(store), embedder=str(embedder)), "kbase")  # the store opens
    for path in corpus[:reported]:  # every file reported done is complete and searchable
        chunks = stored_chunks(memory, path)
        assert chunks and len(chunks) == chunks[0].metadata["chunks"], path.name
        probe = chunks[-1].text
        assert memory.search(probe, k=1)[0].text == probe

    code = main(["ingest", str(tmp_path / "corpus"), "-c", "kbase", "--json", *CHUNKS, *store_args(store, embedder)])
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


def test_cli_ingest_applies_limits_max_text_mb(tmp_path, embedder, capsys):
    """The size limit in config reaches the loaders (it used to stop at the library default of 20 MB)."""
    big = tmp_path / "big.txt"
    big.write_text("word " * 300_000)  # 1.5 MB
    code = main(["ingest", str(big), "-c", "limits", "--json", *CHUNKS, *store_args(tmp_path / "store", embedder),
                 "--set", "limits.max_text_mb=1"])
    [failed] = json.loads(capsys.readouterr().out)["failed"]
    assert code == 1 and "is 1.5 MB, over the 1 MB limit" in failed["reason"] and "limits.max_text_mb" in failed["reason"]


# ---- a full disk and a read-only store: a real small file system -----------------------------------
# The store lives on a 4 MB tmpfs mounted in a private mount namespace (`unshare -rm`: no root needed
# where user namespaces are allowed, nothing visible outside). The steps run in one process inside it
# (this file run as a script, `inner`), which prints what it saw as JSON; the test judges it.
TMPFS_MB = 4


def small_filesystem_available(folder: Path) -> str:
    """'' when `unshare -rm` can mount a tmpfs here, else why not."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "the `unshare` program (util-linux) is not installed"
    folder.mkdir(exist_ok=True)
    probe = subprocess.run([unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs '{folder}'"],
                           capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}"


def test_full_disk_and_read_only_store_give_a_clear_error_and_keep_the_collection(tmp_path, embedder):
    mount = tmp_path / "small"
    why = small_filesystem_available(mount)
    if why:
        pytest.skip(f"no size-limited file system for this test: {why}")
    for name, count in (("first", 3), ("second", 3), ("third", 1)):
        write_corpus(tmp_path / name, files=count)
    script = (f"mount -t tmpfs -o size={TMPFS_MB}m tmpfs '{mount}' && "
              f"exec '{sys.executable}' '{__file__}' inner '{mount}' '{tmp_path}' '{embedder}'")
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=_env(),
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    full = seen["full"]
    assert full["code"] == 2 and "Traceback" not in full["err"]
    assert f"the memory store at {mount}/store is out of disk space" in full["err"]
    assert "Free space on that disk" in full["err"] and full["count_after"] == seen["first"]["chunks"]
    assert seen["after_space_freed"]["code"] == 0 and seen["after_space_freed"]["ingested"] == 3

    read_only = seen["read_only"]
    for verb in ("ingest", "list"):
        assert read_only[verb]["code"] == 2 and "Traceback" not in read_only[verb]["err"]
        assert f"the memory store at {tmp_path}/read-only/store cannot be written: its folder is read-only" in read_only[verb]["err"]
        assert "set memory.path" in read_only[verb]["err"]

    # the store copied out after all that opens in a fresh process with every file complete and searchable
    memory = open_memory(MemoryConfig(path=str(tmp_path / "copy"), embedder=str(embedder)), "kbase")
    stored = [*sorted((tmp_path / "first").iterdir()), *sorted((tmp_path / "second").iterdir())]
    assert memory.count() == seen["final_count"] == sum(len(stored_chunks(memory, p)) for p in stored)
    for path in stored:
        chunks = stored_chunks(memory, path)
        assert len(chunks) == chunks[0].metadata["chunks"]
        assert memory.search(chunks[0].text, k=1)[0].text == chunks[0].text


def _inner(mount: Path, work: Path, embedder: Path) -> None:
    """The steps inside the namespace: fill the store's disk, make it read-only, record what the CLI says."""
    import contextlib
    import io

    def cli(*args: str) -> dict:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, *store_args(mount / "store", embedder)])
        result = {"code": code, "err": err.getvalue()}
        return result | (json.loads(out.getvalue()) if args[0] == "ingest" and code != 2 else {})

    def ingest(name: str) -> dict:
        return cli("ingest", str(work / name), "-c", "kbase", "--json", *CHUNKS)

    def count() -> int:
        return open_memory(MemoryConfig(path=str(mount / "store"), embedder=str(embedder)), "kbase").count()

    seen: dict = {"first": ingest("first")}
    with open(mount / "filler", "wb", buffering=0) as filler:  # take every free block
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 512)
    seen["full"] = ingest("second") | {"count_after": count()}
    (mount / "filler").unlink()
    seen["after_space_freed"] = ingest("second")
    seen["final_count"] = count()
    shutil.copytree(mount / "store", work / "copy")
    # the same store seen through a read-only bind mount (the tmpfs itself is busy: Chroma holds it open)
    view = mount.parent / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(mount), str(view)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    mount = view
    seen["read_only"] = {"ingest": ingest("third"), "list": cli("memory", "list")}
    print(json.dumps(seen))


if __name__ == "__main__" and sys.argv[1:2] == ["inner"]:
    _inner(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
