"""Ingest of real files (text, Markdown, HTML, PDF, audio through the real ASR, images), the CLI verbs and
the memory_search tool, on a real on-disk Chroma with the real embedder."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from helpers.memory import write_pdf

from mmagent.cli import main
from mmagent.config import Config, MemoryConfig, load_config
from mmagent.errors import ConfigError
from mmagent.memory import open_memory
from mmagent.memory.chunking import ChunkOptions
from mmagent.memory.ingest import Ingestor, default_transcriber, ingest

CAPTION = "A photo of a tabby cat resting on a blanket."  # stands in for the VLM at the edge of this test


def caption(path: Path) -> str:
    return CAPTION


@pytest.fixture(scope="module")
def transcribe():
    pytest.importorskip("faster_whisper")
    return default_transcriber(Config())


@pytest.fixture
def corpus(tmp_path, jfk_flac, cat_photo) -> Path:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("The spare key to the garden shed is under the blue flower pot.\n")
    (root / "sub" / "guide.md").write_text(
        "# Espresso\n\nGrind 18 grams of coffee finely and pull a 36 gram shot.\n"
    )
    (root / "page.html").write_text(
        "<html><head><title>Volcanoes</title><style>body{color:red}</style>"
        "<script>var secretToken = 'do-not-store';</script></head><body><h1>Mount Etna</h1>"
        "<p>Etna is an active volcano on the east coast of Sicily.</p></body></html>"
    )
    write_pdf(
        root / "report.pdf",
        [
            "Annual report 2025\nThe board met four times this year.",
            "Finances\nRevenue grew by 12 percent while costs stayed flat.",
        ],
    )
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (root / "data.xyz").write_text("unsupported")
    (root / ".hidden.txt").write_text("hidden files are left out")
    shutil.copy(jfk_flac, root / "speech.flac")
    shutil.copy(cat_photo, root / "cat.jpg")
    return root


def test_ingest_every_kind_and_search_it(corpus, tmp_path, transcribe):
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "docs")
    summary = ingest([corpus], memory, describe_image=caption, transcribe=transcribe, progress=False)

    assert summary.files == 8 and summary.ingested == 6
    assert [Path(n.path).name for n in summary.failed] == ["broken.pdf"]
    assert "could not be read" in summary.failed[0].reason
    assert [(Path(n.path).name, n.reason.split(";")[0]) for n in summary.skipped] == [
        ("data.xyz", "unsupported type '.xyz'")
    ]
    assert summary.chunks == memory.count() >= 7  # the PDF gives one chunk per page

    def top(query: str, **where):
        return memory.search(query, k=1, where=where or None)[0]

    assert Path(top("where is the key for the shed?").source).name == "notes.txt"
    assert Path(top("how much coffee for a shot").source).name == "guide.md"
    volcano = top("volcano in Italy")
    assert Path(volcano.source).name == "page.html" and "secretToken" not in volcano.text
    assert "body{color" not in volcano.text and volcano.text.startswith("Volcanoes")
    money = top("did revenue go up?")
    assert (Path(money.source).name, money.kind, money.page, money.location) == (
        "report.pdf",
        "pdf",
        2,
        "p. 2",
    )
    speech = top("ask what you can do for your country")
    assert speech.kind == "audio" and Path(speech.source).name == "speech.flac"
    assert speech.start is not None and 0 <= speech.start < speech.end <= 11.5
    assert "fellow americans" in speech.text.lower()

    # text-to-image retrieval is the same search: the caption is stored, the photo's path is the source
    photo = top("picture of a kitten", kind="image")
    assert Path(photo.source) == (corpus / "cat.jpg").resolve() and photo.text == CAPTION
    assert memory.search("picture of a kitten", k=1)[0].id == photo.id

    again = ingest([corpus], memory, describe_image=caption, transcribe=transcribe, progress=False)
    assert (again.ingested, again.chunks, memory.count()) == (0, 0, summary.chunks)
    assert sum("already stored" in n.reason for n in again.skipped) == 6


def test_long_text_is_chunked_with_overlap_and_moves_are_not_duplicates(tmp_path):
    text = " ".join(f"Paragraph {i} talks about subject number {i} in some detail." for i in range(200))
    first = tmp_path / "long.txt"
    first.write_text(text)
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "long")
    summary = ingest([first], memory, chunking=ChunkOptions(size=60, overlap=15), progress=False)
    hits = memory.search("subject number 137", k=3)
    assert summary.chunks == memory.count() > 20
    assert any("subject number 137 " in h.text for h in hits)
    chunks = sorted(
        memory.find({"source": str(first.resolve())}, limit=1000), key=lambda h: h.metadata["chunk"]
    )
    assert [h.metadata["chunk"] for h in chunks] == list(range(summary.chunks))
    assert all(a.text.split()[-1] in b.text for a, b in zip(chunks, chunks[1:]))

    first.write_text(text.replace("subject number 137 ", "topic one hundred thirty-seven "))
    edited = ingest([first], memory, chunking=ChunkOptions(size=60, overlap=15), progress=False)
    assert (edited.ingested, edited.updated) == (
        1,
        1,
    ) and memory.count() == edited.chunks  # old chunks replaced
    assert not any("subject number 137 " in h.text for h in memory.search("subject number 137", k=5))

    moved = tmp_path / "elsewhere" / "renamed.txt"
    moved.parent.mkdir()
    shutil.copy(first, moved)
    again = ingest([moved], memory, progress=False)
    assert again.chunks == 0 and f"same content as {first.resolve()}" in again.skipped[0].reason


def test_what_the_store_holds_is_asked_per_group_of_files_not_per_file(tmp_path, monkeypatch):
    """Each look-up scans the collection's metadata (11 ms at 82k chunks): one per file made ingest slow
    down as the collection grew. 70 files are 2 groups of LOOKUP_FILES: 2 queries each, and a delete only
    for the file that changed."""
    from mmagent.memory.ingest import LOOKUP_FILES

    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(70):
        (folder / f"note{i:02d}.txt").write_text(f"Note {i}: the locker code for room {i} is {1000 + i}.\n")
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "groups")
    ingest([folder / "note00.txt", folder / "note01.txt"], memory, progress=False)
    (folder / "note01.txt").write_text("Note 1: the locker code for room 1 changed to 4242.\n")
    calls = {"find": 0, "delete": 0}
    for name in calls:
        original = getattr(memory, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(memory, name, counted)
    summary = ingest([folder], memory, progress=False)
    assert LOOKUP_FILES == 64 and calls == {"find": 4, "delete": 1}
    assert (summary.ingested, summary.updated, len(summary.skipped)) == (69, 1, 1)
    assert "4242" in memory.search("locker code for room 1", k=1)[0].text
    assert memory.count() == 70


def test_images_and_audio_without_a_model_are_skipped_with_a_reason(corpus, tmp_path):
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "nomodels")
    summary = Ingestor(memory, missing_reasons={"audio": "skipped: needs mmagent[asr]"}).run(
        [corpus / "cat.jpg", corpus / "speech.flac", corpus / "notes.txt"], progress=False
    )
    reasons = {Path(n.path).name: n.reason for n in summary.skipped}
    assert reasons == {
        "cat.jpg": "skipped: needs an image describer (a vision-language model)",
        "speech.flac": "skipped: needs mmagent[asr]",
    }
    assert summary.ingested == 1 and not summary.failed


def test_chunks_longer_than_the_embedder_reads_are_refused(corpus, tmp_path):
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "big")
    summary = ingest(
        [corpus / "notes.txt"], memory, chunking=ChunkOptions(size=400, overlap=10), progress=False
    )
    assert "exceeds what the embedder reads (254" in summary.failed[0].reason
    with pytest.raises(ConfigError):
        ChunkOptions(size=10, overlap=9)


# ---- CLI --------------------------------------------------------------------------------------------
def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_ingest_search_show_delete_reset(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MMAGENT_MEMORY_PATH", str(tmp_path / "cli-store"))
    files = [str(corpus / "notes.txt"), str(corpus / "report.pdf"), str(corpus / "nope.txt")]
    code, out, _ = run_cli(capsys, "ingest", *files, "--collection", "cli", "--json")
    summary = json.loads(out)
    assert code == 1  # one path failed; the others were still ingested
    assert (summary["collection"], summary["files"], summary["ingested"], summary["chunks"]) == (
        "cli",
        3,
        2,
        3,
    )
    assert summary["failed"] == [{"path": files[2], "reason": "does not exist or is not a file or folder"}]

    code, out, _ = run_cli(capsys, "ingest", files[0], "-c", "cli")
    assert code == 0 and "0 ingested" in out and "already stored" in out

    code, out, _ = run_cli(
        capsys, "memory", "search", "revenue growth", "--collection", "cli", "--k", "2", "--json"
    )
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and hits[0]["page"] == 2 and hits[0]["score"] > hits[1]["score"]
    code, out, _ = run_cli(capsys, "memory", "search", "revenue growth", "-c", "cli", "--k", "1")
    assert out.startswith("1. [") and "report.pdf p. 2 (pdf)" in out and "Revenue grew by 12 percent" in out
    code, out, _ = run_cli(capsys, "memory", "search", "key", "-c", "cli", "--where", '{"page": 1}', "--json")
    assert {h["page"] for h in json.loads(out)} == {1}

    code, out, _ = run_cli(capsys, "memory", "list", "--json")
    [info] = json.loads(out)
    assert (info["name"], info["count"], info["embedder"]["dimension"]) == ("cli", 3, 384)
    code, out, _ = run_cli(capsys, "memory", "show", "cli", "--json")
    assert json.loads(out)["sources"] == {
        str((corpus / "notes.txt").resolve()): 1,
        str((corpus / "report.pdf").resolve()): 2,
    }

    code, out, _ = run_cli(capsys, "memory", "delete", "cli", "--source", str(corpus / "report.pdf"))
    assert code == 0 and "deleted 2 chunk(s)" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))  # the user answers "no"
    code, out, _ = run_cli(capsys, "memory", "reset")
    assert code == 1 and "Delete ALL collections" in out
    code, out, _ = run_cli(capsys, "memory", "list")
    assert out.startswith("cli\t1 chunk(s)")
    code, out, _ = run_cli(capsys, "memory", "reset", "--yes")
    assert code == 0 and "deleted 1 collection(s): cli" in out

    code, _, err = run_cli(capsys, "memory", "search", "anything", "-c", "cli")
    assert code == 2 and "collection 'cli' does not exist" in err and "Traceback" not in err


# ---- the memory_search tool -------------------------------------------------------------------------
def test_memory_search_tool(corpus, tmp_path):
    from mmagent.tools.base import ToolError
    from mmagent.tools.registry import load_tools

    config = load_config(
        overrides={"memory.path": str(tmp_path / "store"), "memory.collection": "toolc"}, env={}
    )
    ingest(
        [corpus / "notes.txt", corpus / "report.pdf", corpus / "cat.jpg"],
        open_memory(config.memory),
        describe_image=caption,
        progress=False,
    )
    tool = load_tools(config, ["memory_search"])["memory_search"]

    result = tool(query="where is the shed key?", k=2)
    assert len(result.sources) == 2 and Path(result.sources[0].uri).name == "notes.txt"
    assert (
        result.sources[0].excerpt.startswith("The spare key")
        and result.sources[0].score > result.sources[1].score
    )
    assert "quoted data from the user's files" in result.text and "notes.txt" in result.text.splitlines()[1]

    photos = tool(query="a cat", kind="image", collection="toolc")
    assert [Path(s.uri).name for s in photos.sources] == ["cat.jpg"] and photos.sources[0].metadata[
        "kind"
    ] == "image"
    page = tool(query="revenue", k=1).sources[0]
    assert (page.page, page.metadata["kind"]) == (2, "pdf")
    with pytest.raises(ToolError, match="`k`: 0 is less than the minimum of 1"):
        tool(query="x", k=0)
    with pytest.raises(ToolError, match="`kind`"):
        tool(query="x", kind="video")


@pytest.mark.slow
def test_cli_ingests_a_photo_with_the_default_vlm(
    tmp_path, cat_photo, capsys, monkeypatch, small_model_dir
):
    monkeypatch.setenv("MMAGENT_MEMORY_PATH", str(tmp_path / "store"))
    monkeypatch.setenv("MMAGENT_MODEL_ID", "embedded:smollm2-135m")
    code, out, _ = run_cli(capsys, "ingest", str(cat_photo), "--json")
    assert code == 0 and json.loads(out)["chunks"] == 1
    code, out, _ = run_cli(capsys, "memory", "search", "a cat", "--kind", "image", "--json")
    [hit] = json.loads(out)
    assert hit["source"] == str(cat_photo.resolve()) and "cat" in hit["text"].lower()
