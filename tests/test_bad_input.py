"""Bad input on every surface that takes files (issue 16, "Bad input").

Every file here is made by the test (Pillow, pypdf, sox; see helpers/bad_files.py). Each case must end
in one of our own errors (:class:`mmagent.errors.MMAgentError`) whose message names the file and says
what to do — no traceback, no hang — and in a batch the good files go through while the summary lists
the bad ones. Surfaces: the Python API (images, text/PDF loaders, audio, ingest, config, recipes, eval
data) and the CLI (`ingest`, `transcribe`, `chat --image`, `--config`, `finetune run`, `eval score`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
import yaml
from helpers import bad_files as bad
from helpers.memory import write_pdf

from mmagent.cli import main
from mmagent.errors import AudioError, ConfigError, ImageError, MemoryStoreError, MMAgentError

FAST = 5.0  # seconds: every refusal here must come long before anything that looks like a hang
CONTROL = "evil\x1b[31m\nname"  # a file name that would recolour a terminal and fake an output line


def refused(error: type[Exception], call, *needles: str) -> str:
    """Run `call`; it must raise `error` (one of ours) quickly, with every needle in the message."""
    started = time.perf_counter()
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, MMAgentError)
    assert time.perf_counter() - started < FAST
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert "\x1b" not in message, message
    return message


# ---- images: mmagent.images.load_image (used by the backend, vision tool, ingest, UI) ----------------
IMAGE_CASES = {
    "truncated png": lambda d: bad.truncated_image(d, "PNG", ".png"),
    "truncated jpeg": lambda d: bad.truncated_image(d, "JPEG", ".jpg"),
    "truncated webp": lambda d: bad.truncated_image(d, "WEBP", ".webp"),
    "corrupt png": lambda d: bad.corrupt_image(d, "PNG", ".png"),
    "corrupt jpeg": lambda d: bad.corrupt_image(d, "JPEG", ".jpg"),
    "corrupt webp": lambda d: bad.corrupt_image(d, "WEBP", ".webp"),
    "decompression bomb": bad.png_bomb,
    "0-byte png": lambda d: bad.empty(d, "empty.png"),
    "text named .png": lambda d: bad.lying(d, "notes.png", b"just some text, not pixels\n"),
    "pdf named .jpg": lambda d: bad.lying(d, "scan.jpg", b"%PDF-1.4\n%%EOF\n"),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_bad_images_are_refused_naming_the_file(case, tmp_path):
    from mmagent.images import load_image

    path = IMAGE_CASES[case](tmp_path)
    message = refused(ImageError, lambda: load_image(path), f"'{path}'")
    assert any(hint in message for hint in ("re-export", "try another file", "Pillow can read", "resize it"))


def test_the_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(tmp_path):
    from mmagent.images import load_image

    path = bad.png_bomb(tmp_path)
    assert path.stat().st_size < 200  # 10 Gpx declared in a few bytes: decoding would need 30 GB
    refused(ImageError, lambda: load_image(path), "100000×100000 px", "limits.max_image_pixels")
    refused(ImageError, lambda: load_image(path.read_bytes()), "image (", "limits.max_image_pixels")


def test_an_image_whose_extension_lies_but_whose_bytes_are_an_image_loads(tmp_path):
    from mmagent.images import load_image

    path = bad.lying(tmp_path, "really-a-png.jpg", bad.image_bytes("PNG"))
    assert load_image(path).size == (64, 48)  # content decides, not the suffix


def test_control_characters_in_an_image_name_are_escaped(tmp_path):
    from mmagent.images import load_image

    path = bad.lying(tmp_path, f"{CONTROL}.png", b"not an image")
    refused(ImageError, lambda: load_image(path), "evil\\x1b[31m\\nname.png")


# ---- documents: mmagent.memory.loaders -------------------------------------------------------------
@pytest.fixture
def text_pdf(tmp_path) -> Path:
    return write_pdf(tmp_path / "good.pdf", ["Quarterly report\nSales rose by 4 percent.", "Page two"])


DOCUMENT_CASES = {
    "latin-1 text": (bad.latin1_text, "line 1", "iconv"),
    "mixed utf-8 and cp1252": (bad.mixed_encoding_text, "line 4", "iconv"),
    "png named .txt": (lambda d: bad.lying(d, "photo.txt", bad.image_bytes("PNG")), "not UTF-8", "convert"),
    "png named .html": (lambda d: bad.lying(d, "page.html", bad.image_bytes("PNG")), "not UTF-8", "convert"),
    "50 MB text": (bad.big_text, "over the 20 MB limit", "split it"),
    "pdf without text layer": (bad.scanned_pdf, "no text layer", "ocrmypdf"),
    "0-byte pdf": (lambda d: bad.empty(d, "empty.pdf"), "could not be read", "save it again"),
    "png named .pdf": (lambda d: bad.lying(d, "photo.pdf", bad.image_bytes("PNG")), "could not be read", "not a PDF"),
    "text named .pdf": (lambda d: bad.lying(d, "notes.pdf", b"hello\n" * 50), "could not be read", "not a PDF"),
}


@pytest.mark.parametrize("case", sorted(DOCUMENT_CASES))
def test_bad_documents_are_refused_naming_the_file(case, tmp_path):
    from mmagent.memory.loaders import LOADERS, kind_of

    make, *needles = DOCUMENT_CASES[case]
    path = make(tmp_path)
    refused(MemoryStoreError, lambda: LOADERS[kind_of(path)](path), f"'{path}'", *needles)


def test_encrypted_and_truncated_pdfs(tmp_path, text_pdf):
    from mmagent.memory.loaders import load_pdf

    assert [s.page for s in load_pdf(text_pdf)] == [1, 2]
    locked = bad.encrypted_pdf(tmp_path, text_pdf)
    refused(MemoryStoreError, lambda: load_pdf(locked), f"'{locked}'", "password-protected", "qpdf --decrypt")
    for keep in (0.3, 0.6, 0.9):
        cut = bad.truncated_file(text_pdf, tmp_path, f"cut{int(keep * 10)}.pdf", keep)
        refused(MemoryStoreError, lambda: load_pdf(cut), f"'{cut}'", "could not be read")


def test_the_text_limit_is_a_setting(tmp_path):
    from mmagent.config import load_config
    from mmagent.memory.loaders import load_text

    path = tmp_path / "two-mb.txt"
    path.write_text("word " * 400_000)
    assert load_text(path, max_mb=3)[0].text.startswith("word")
    refused(MemoryStoreError, lambda: load_text(path, max_mb=1), "2.0 MB, over the 1 MB limit")
    assert load_config(env={}).limits.max_text_mb == 20
    refused(ConfigError, lambda: load_config(overrides={"limits.max_text_mb": 0}, env={}), "limits.max_text_mb")


def test_control_characters_in_a_document_name_are_escaped(tmp_path):
    from mmagent.memory.loaders import load_text

    path = bad.lying(tmp_path, f"{CONTROL}.txt", b"caf\xe9")
    refused(MemoryStoreError, lambda: load_text(path), "evil\\x1b[31m\\nname.txt")


# ---- audio: mmagent.audio (speech recognition, ingest and the UI decode through it) -----------------
def _decode_all(path: Path) -> float:
    from mmagent.audio import iter_audio_blocks, probe_audio

    probe_audio(path)
    return sum(block.size for block in iter_audio_blocks(path)) / 16_000


AUDIO_CASES = {
    "flac cut after its header": (lambda d, jfk: bad.truncated_file(jfk, d, "header.flac", 0.001), "could not be decoded"),
    "flac with garbage frames": (lambda d, jfk: bad.lying(d, "garbage.flac", jfk.read_bytes()[:100] + bytes(range(256)) * 64),
                                 "could not be decoded"),
    "0-byte wav": (lambda d, jfk: bad.empty(d, "empty.wav"), "could not be decoded"),
    "png named .mp3": (lambda d, jfk: bad.lying(d, "song.mp3", bad.image_bytes("PNG")), "no audio stream"),
    "text named .ogg": (lambda d, jfk: bad.lying(d, "voice.ogg", b"hello there\n" * 40), "could not be decoded"),
    "aiff (unsupported format, made by sox)": (lambda d, jfk: bad.sox_audio(d, "tone.aiff"), "unsupported format '.aiff'"),
    "au (unsupported format, made by sox)": (lambda d, jfk: bad.sox_audio(d, "tone.au"), "unsupported format '.au'"),
    "missing file": (lambda d, jfk: d / "gone.wav", "does not exist"),
}


@pytest.fixture
def need_sox():
    from conftest import require_binary

    require_binary("sox")


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_bad_audio_is_refused_naming_the_file(case, tmp_path, jfk_flac, need_sox):
    pytest.importorskip("av")
    make, needle = AUDIO_CASES[case]
    path = make(tmp_path, jfk_flac)
    message = refused(AudioError, lambda: _decode_all(path), f"'{path}'", needle)
    assert any(hint in message for hint in ("ffmpeg", "check the path", "give a file", "re-export", "Check that"))


def test_truncated_flac_keeps_what_was_heard_and_says_so(tmp_path, jfk_flac, caplog):
    pytest.importorskip("av")
    cut = bad.truncated_file(jfk_flac, tmp_path, "cut.flac", 0.3)
    with caplog.at_level(logging.WARNING, logger="mmagent.audio"):
        seconds = _decode_all(cut)
    assert 1.0 < seconds < 6.0  # the first part of the 11 s speech
    [record] = [r for r in caplog.records if r.name == "mmagent.audio"]
    assert f"'{cut}'" in record.getMessage() and "of the 11.0 s its header declares" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmagent.audio"):
        assert _decode_all(jfk_flac) == pytest.approx(11.0, abs=0.1)
    assert not caplog.records  # a whole file says nothing


def test_a_codec_that_is_supported_inside_a_wav_decodes(tmp_path, need_sox):
    pytest.importorskip("av")
    gsm = bad.sox_audio(tmp_path, "gsm.wav", "-e", "gsm-full-rate")
    assert _decode_all(gsm) == pytest.approx(2.0, abs=0.05)  # the suffix is .wav, the codec GSM: FFmpeg reads it


# ---- ingest: a batch with good and bad files (Python API) ------------------------------------------
def _bad_corpus(root: Path, jfk: Path, text_pdf: Path) -> dict[str, str]:
    """Writes good and bad files under `root`; returns {bad file name: a word its reason must hold}."""
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("The spare key to the garden shed is under the blue flower pot.\n")
    shutil.copy(text_pdf, root / "sub" / "report.pdf")
    expected = {
        bad.truncated_image(root, "PNG", ".png").name: "truncated",
        bad.corrupt_image(root, "JPEG", ".jpg").name: "corrupt",
        bad.png_bomb(root).name: "max_image_pixels",
        bad.lying(root, "notes.png", b"text, not pixels").name: "Pillow can read",
        bad.latin1_text(root).name: "not UTF-8",
        bad.mixed_encoding_text(root).name: "not UTF-8",
        bad.big_text(root).name: "20 MB limit",
        bad.scanned_pdf(root).name: "no text layer",
        bad.encrypted_pdf(root, text_pdf).name: "password-protected",
        bad.truncated_file(text_pdf, root, "cut.pdf", 0.5).name: "could not be read",
        bad.empty(root, "empty.wav").name: "could not be decoded",
        bad.truncated_file(jfk, root, "header.flac", 0.001).name: "could not be decoded",
        bad.lying(root, f"{CONTROL}.txt", b"caf\xe9").name: "not UTF-8",
    }
    bad.empty(root, "empty.txt")  # no text: skipped, not failed
    return {shown_name(name): word for name, word in expected.items()}


def shown_name(name: str) -> str:
    from mmagent.errors import shown

    return shown(name)


def test_ingest_batch_keeps_the_good_files_and_lists_the_bad(tmp_path, jfk_flac, text_pdf, caplog):
    pytest.importorskip("chromadb")
    pytest.importorskip("av")
    from mmagent.config import MemoryConfig
    from mmagent.images import load_image
    from mmagent.memory import open_memory
    from mmagent.memory.ingest import ingest

    def describe(path: Path) -> str:  # the VLM's place; the file is checked exactly as ImageDescriber does
        load_image(path)
        return "a picture"

    def transcribe(path: Path):  # whisper's place; decoding is the real one
        return [(0.0, _decode_all(path), "some speech")]

    expected = _bad_corpus(tmp_path / "in", jfk_flac, text_pdf)
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "bad")
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        summary = ingest([tmp_path / "in"], memory, describe_image=describe, transcribe=transcribe, progress=False)
    assert time.perf_counter() - started < 120
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("pypdf")]  # our error says it all
    assert summary.ingested == 2 and summary.files == len(expected) + 3
    failed = {Path(n.path).name: n.reason for n in summary.failed}
    assert set(failed) == set(expected), failed
    for name, word in expected.items():
        assert word in failed[name], (name, failed[name])
    assert [(Path(n.path).name, n.reason) for n in summary.skipped] == [("empty.txt", "no text found in it")]
    assert not any("\x1b" in n.path or "\n" in n.path for n in summary.failed)
    assert {Path(h.source).name for h in memory.search("where is the shed key?", k=3)} <= {"notes.txt", "report.pdf"}


# ---- CLI ------------------------------------------------------------------------------------------
def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Traceback" not in out.out
    return code, out.out, out.err


def test_cli_ingest_folder_good_files_go_through_and_the_summary_lists_the_bad(
    tmp_path, jfk_flac, text_pdf, capsys, monkeypatch
):
    pytest.importorskip("chromadb")
    monkeypatch.setenv("MMAGENT_MEMORY_PATH", str(tmp_path / "store"))
    expected = _bad_corpus(tmp_path / "in", jfk_flac, text_pdf)
    code, out, _ = cli(capsys, "ingest", tmp_path / "in", "-c", "mixed", "--json")
    summary = json.loads(out)
    assert code == 1 and summary["ingested"] == 2
    failed = {Path(n["path"]).name: n["reason"] for n in summary["failed"]}
    assert set(failed) == set(expected)
    for name, word in expected.items():
        assert word in failed[name], (name, failed[name])

    code, out, _ = cli(capsys, "ingest", tmp_path / "in", "-c", "mixed")  # text: one line per bad file
    assert code == 1 and "0 ingested" in out and f"{len(expected)} failed" in out
    assert "\x1b" not in out and "evil\\x1b[31m\\nname.txt: " in out
    for name in expected:
        assert sum(line.strip().startswith(str(tmp_path / "in")) and name in line for line in out.splitlines()) == 1


TRANSCRIBE_CASES = ["header.flac", "garbage.flac", "empty.wav", "song.mp3", "tone.aiff", "gone.wav", f"{CONTROL}.wav"]


def test_cli_transcribe_refuses_each_bad_file_without_a_traceback(tmp_path, jfk_flac, capsys, need_sox):
    pytest.importorskip("faster_whisper")
    made = {
        "header.flac": bad.truncated_file(jfk_flac, tmp_path, "header.flac", 0.001),
        "garbage.flac": bad.lying(tmp_path, "garbage.flac", jfk_flac.read_bytes()[:100] + bytes(range(256)) * 64),
        "empty.wav": bad.empty(tmp_path, "empty.wav"),
        "song.mp3": bad.lying(tmp_path, "song.mp3", bad.image_bytes("PNG")),
        "tone.aiff": bad.sox_audio(tmp_path, "tone.aiff"),
        "gone.wav": tmp_path / "gone.wav",
        f"{CONTROL}.wav": bad.lying(tmp_path, f"{CONTROL}.wav", b"RIFF...."),
    }
    for name in TRANSCRIBE_CASES:
        started = time.perf_counter()
        code, out, err = cli(capsys, "transcribe", made[name])
        assert code == 2 and out == "" and time.perf_counter() - started < 30, (name, err)
        assert err.startswith("error: ") and shown_name(str(made[name])) in err and "\x1b" not in err, (name, err)


@pytest.mark.parametrize("case", ["truncated png", "decompression bomb", "text named .png"])
def test_cli_chat_image_refuses_a_bad_image_naming_it(case, tmp_path, tiny_llava_dir, capsys):
    path = IMAGE_CASES[case](tmp_path)
    code, out, err = cli(capsys, "chat", "--model", tiny_llava_dir, "--image", path, "What is this?")
    assert code == 2 and f"'{path}'" in err and "error: " in err, err


CONFIG_CASES = {
    "unknown key": ("model:\n  quantisation: 4bit\n", "unknown key(s) in section 'model': quantisation; valid keys"),
    "unknown section": ("modle:\n  id: default\n", "unknown config section(s) modle"),
    "wrong type": ("model:\n  max_new_tokens: lots\n", "model.max_new_tokens expects a whole number; got 'lots'"),
    "float for an int": ("model:\n  max_new_tokens: 1.5\n", "expects a whole number; got 1.5"),
    "bool for an int": ("asr:\n  beam_size: true\n", "asr.beam_size expects a whole number; got True"),
    "infinite": ("limits:\n  max_image_pixels: .inf\n", "limits.max_image_pixels expects a whole number"),
    "not a number": ("model:\n  temperature: .nan\n", "model.temperature expects a number; got nan"),
    "mapping for a string": ("model:\n  id: {name: x}\n", "model.id expects a string"),
    "list for a section": ("memory: [a, b]\n", "config section 'memory' must be a mapping"),
    "list for an adapter path": ("adapters:\n  a: [1, 2]\n", "adapters.a expects a string"),
    "bad choice": ("model:\n  quantization: 3bit\n", "model.quantization must be one of none, 8bit, 4bit"),
    "broken YAML": ("model: [\n", "is not valid YAML"),
    "a list, not a mapping": ("- model\n- asr\n", "must hold a mapping of sections"),
    "non-UTF-8": ("model:\n  id: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "binary": (bytes(range(256)) * 4, "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_files(case, tmp_path, capsys):
    from mmagent.config import load_config

    data, needle = CONFIG_CASES[case]
    path = tmp_path / "mmagent.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    refused(ConfigError, lambda: load_config(path, env={}), needle)
    code, out, err = cli(capsys, "memory", "list", "--config", path)  # the same message on the CLI
    assert code == 2 and needle in err


def test_config_path_that_is_a_folder_or_empty(tmp_path):
    from mmagent.config import load_config

    refused(ConfigError, lambda: load_config(tmp_path, env={}), "cannot be read", "give the path of a YAML file")
    (tmp_path / "empty.yaml").write_bytes(b"")
    assert load_config(tmp_path / "empty.yaml", env={}).model.id == "default"  # empty = all defaults


RECIPE_CASES = {
    "unknown top-level key": (lambda r: {**r, "epochz": 3}, "unknown field(s) epochz; valid:"),
    "unknown nested key": (lambda r: {**r, "train": {**r["train"], "learning_rate": 1}},
                           "unknown field(s) learning_rate"),
    "wrong type (string for a number)": (lambda r: {**r, "train": {**r["train"], "epochs": "three"}},
                                         "train: epochs must be int; got 'three'"),
    "wrong type (string for a float)": (lambda r: {**r, "train": {**r["train"], "lr": "fast"}},
                                        "train: lr must be a finite number; got 'fast'"),
    "wrong type (mapping for a section)": (lambda r: {**r, "train": 5}, "expected a mapping"),
    "unknown kind": (lambda r: {**r, "kind": "gan"}, "`kind` must be one of"),
}


@pytest.mark.parametrize("case", sorted(RECIPE_CASES))
def test_bad_recipes(case, tmp_path, capsys):
    from mmagent.finetune.recipe import load_recipe, shipped_recipes

    shipped = yaml.safe_load(shipped_recipes()["fusion-classifier"].read_text())
    edit, needle = RECIPE_CASES[case]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(edit(shipped)))
    refused(ConfigError, lambda: load_recipe(str(path)), needle)
    code, _, err = cli(capsys, "finetune", "run", path)
    assert code == 2 and needle in err


def test_unreadable_recipe_files(tmp_path):
    from mmagent.finetune.recipe import load_recipe

    for name, data, needle in (
        ("latin1.yaml", "kind: fusion-classifier\n# caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ("binary.yaml", bytes(range(256)), "not UTF-8 text"),
        ("broken.yaml", b"train: [\n", "not valid YAML"),
        ("empty.yaml", b"", "`kind` must be one of"),
    ):
        (tmp_path / name).write_bytes(data)
        refused(ConfigError, lambda: load_recipe(str(tmp_path / name)), name, needle)


# ---- eval data -------------------------------------------------------------------------------------
EVAL_DATA_CASES = {
    "broken line": (b'{"id": "a", "label": "x"}\n{"id": "b", "label": \n{"id": "c", "label": "y"}\n',
                    "line 2 is not valid JSON"),
    "non-UTF-8 line": (b'{"id": "a", "label": "x"}\n{"id": "b", "label": "caf\xe9"}\n', "line 2 is not UTF-8"),
    "a list on a line": (b'{"id": "a", "label": "x"}\n[1, 2]\n', "one JSON object per line (line 2)"),
    "no id": (b'{"label": "x"}\n', "expected an id field"),
    "deep nesting": (b'{"id": "a", "label": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "line 1 is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(EVAL_DATA_CASES))
def test_bad_eval_data(case, tmp_path, capsys):
    from mmagent.evals.dataset import load_examples
    from mmagent.evals.formats import EvalDataError
    from mmagent.evals.suite import load_suite

    data, needle = EVAL_DATA_CASES[case]
    (tmp_path / "data.jsonl").write_bytes(data)
    (tmp_path / "suite.yaml").write_text("name: bad\ntask: classification\ndata: data.jsonl\nlabels: [x, y]\n")
    suite = load_suite(tmp_path / "suite.yaml")
    refused(EvalDataError, lambda: load_examples(suite, tmp_path / "work"), f"'{tmp_path / 'data.jsonl'}'", needle)
    (tmp_path / "pred.jsonl").write_text('{"id": "a", "prediction": "x"}\n')
    code, _, err = cli(capsys, "eval", "score", "--task", "classification", "--predictions", tmp_path / "pred.jsonl",
                       "--references", tmp_path / "data.jsonl")
    assert code == 2 and needle in err


def test_a_set_flag_that_is_not_yaml(capsys):
    from mmagent.finetune.recipe import load_recipe

    refused(ConfigError, lambda: load_recipe("fusion-classifier", ["train.epochs=["]), "--set value '['", "quote it")
    code, _, err = cli(capsys, "finetune", "run", "fusion-classifier", "--set", "train.epochs=[")
    assert code == 2 and "--set value '['" in err


# ---- UI uploads: a file name chosen by the client never becomes a path outside the upload folder ------
UPLOAD_NAMES = ["../../outside.txt", "/etc/passwd.txt", "..\\..\\windows.txt", f"{CONTROL}.txt", ".hidden.txt",
                "a/b/../../c.md", "....txt", "%2e%2e%2fsecret.txt", "notes.png\x00.txt"]


@pytest.mark.parametrize("name", UPLOAD_NAMES)
def test_upload_names_stay_inside_the_upload_folder(name, tmp_path):
    pytest.importorskip("streamlit")
    from mmagent.ui.attachments import store_upload

    folder = tmp_path / "uploads"
    stored = store_upload(name, b"plain text\n", folder, max_mb=1, max_pixels=10_000)
    path = Path(stored.path)
    assert path.resolve().parent.parent == folder.resolve() and path.read_bytes() == b"plain text\n"
    assert path.name.isprintable() and not path.name.startswith(".") and "/" not in path.name
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path.parent / "outside.txt").exists()


@pytest.mark.parametrize("case", ["truncated png", "decompression bomb", "0-byte png", "text named .png"])
def test_bad_image_uploads_are_refused_naming_the_file(case, tmp_path):
    pytest.importorskip("streamlit")
    from mmagent.ui.attachments import UploadError, store_upload

    path = IMAGE_CASES[case](tmp_path)
    refused(UploadError, lambda: store_upload(path.name, path.read_bytes(), tmp_path / "up", max_mb=5,
                                              max_pixels=89_478_485), f"'{path.name}'")
    assert not (tmp_path / "up").exists() or not any((tmp_path / "up").rglob("*.*"))


def test_an_empty_eval_data_file_is_an_error_not_an_empty_score(tmp_path):
    from mmagent.evals.dataset import load_examples
    from mmagent.evals.formats import EvalDataError
    from mmagent.evals.suite import load_suite

    for content in (b"", b"\n\n  \n"):
        (tmp_path / "data.jsonl").write_bytes(content)
        (tmp_path / "suite.yaml").write_text("name: empty\ntask: classification\ndata: data.jsonl\nlabels: [x, y]\n")
        refused(EvalDataError, lambda: load_examples(load_suite(tmp_path / "suite.yaml"), tmp_path / "work"),
                "data.jsonl' of suite 'empty' holds no examples")
