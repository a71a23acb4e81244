"""The `vision` tool and `mmagent describe`: real images, real OCR (RapidOCR PP-OCR), the embedded VLM."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from mmagent.errors import ImageError
from mmagent.tools.base import ToolError
from mmagent.tools.vision import VisionRequest, VisionTool, look

CAT_WORDS = {"cat", "cats", "feline", "kitten", "tabby"}
COFFEE_WORDS = {"espresso", "coffee", "cup", "mug"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def font(size: int, path: str | None = None) -> ImageFont.ImageFont:
    found = [path] if path else [str(p) for p in sorted(Path("/usr/share/fonts").rglob("DejaVuSans.ttf"))]
    return ImageFont.truetype(found[0], size) if found else ImageFont.load_default(size=size)


def render_lines(path: Path, lines: list[str], typeface: ImageFont.ImageFont, size=(640, 200)) -> Path:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((30, 40 + 70 * i), line, fill="black", font=typeface)
    img.save(path)
    return path


@pytest.fixture
def invoice(tmp_path) -> Path:
    return render_lines(tmp_path / "invoice.png", ["Invoice 2026-1142", "Total due: $318.40"], font(36))


@pytest.fixture
def bomb(tmp_path) -> Path:
    """A 79-byte PNG whose header claims 40000×40000 px (1.6 Gpx): decoding it would need 4.8 GB."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, 40_000, 40_000)  # IHDR width, height
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # keep the chunk's CRC valid
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    return path


def default_config(cache_dir: Path):
    """The same config as the `small_backend` fixture, so the process-wide backend is shared."""
    from conftest import SMALL_MODEL

    from mmagent.config import load_config

    return load_config(overrides={"paths.cache": str(cache_dir), "model.id": f"embedded:{SMALL_MODEL}"}, env={})


# ---- arguments and refusals (no model needed) ----------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "compare", "image": "a.png"}, "task 'compare' needs `images` with two paths; got 1 image"),
        ({"task": "describe", "images": ["a.png", "b.png"]}, "task 'describe' needs one path in `image`; got 2"),
        ({"task": "question", "image": "a.png"}, "task 'question' needs a non-empty `question`"),
        ({"task": "describe", "image": "a.png", "question": "why?"}, "use task 'question'"),
        ({"task": "ocr", "image": "a.png"}, "'ocr' is not one of ['describe', 'question', 'read_text', 'compare']"),
    ],
)
def test_task_rules_are_checked_before_setup(kwargs, message):
    tool = VisionTool()
    with pytest.raises(ToolError, match=re.escape(message)):
        tool(**kwargs)
    assert tool.is_initialized is False


def test_decompression_bomb_is_refused_before_any_model_loads(bomb):
    from mmagent import model

    loaded = dict(model._backends)
    with pytest.raises(ImageError, match=r"bomb\.png' is 40000×40000 px \(1600 Mpx\), over the 89 Mpx limit"):
        VisionTool()(task="describe", image=str(bomb))
    assert model._backends == loaded  # refused from the header: nothing decoded, no model loaded for it


def test_the_second_image_of_a_comparison_is_checked_too(cat_photo, tmp_path):
    with pytest.raises(ImageError, match="missing.png' does not exist"):
        look(VisionRequest("compare", [str(cat_photo), str(tmp_path / "missing.png")]), VisionTool().config)


# ---- what the model is given -----------------------------------------------------------------------
def test_read_text_gives_a_model_without_built_in_ocr_the_fenced_ocr_text(tiny_llava_dir, invoice):
    from conftest import tiny_config
    from mmagent.model import load_backend

    config = tiny_config(tiny_llava_dir)
    backend = load_backend(config)
    assert backend.ocr is False  # model.ocr auto: only the embedded model gets OCR text from the core
    run = look(VisionRequest("read_text", [str(invoice)]), config)
    answer = run.collect()
    assert [line.text for line in answer.ocr[0]] == ["Invoice 2026-1142", "Total due: $318.40"]
    prompt, _ = backend.render(run.messages)
    assert "<<<DATA OCR text of image 1\nInvoice 2026-1142\nTotal due: $318.40\nDATA>>>" in prompt
    assert prompt.index("<image>") < prompt.index("<<<DATA") < prompt.index("Write out the text")


# ---- the embedded default model -----------------------------------------------------------------------
@pytest.mark.embedded_model
def test_describes_the_cat_photo(small_backend, cache_dir, cat_photo):
    answer = look(VisionRequest("describe", [str(cat_photo)]), default_config(cache_dir), max_new_tokens=24).collect()
    assert words(answer.answer) & CAT_WORDS, answer.answer
    assert answer.ocr == [[]] and answer.precision == small_backend.info().precision


@pytest.mark.embedded_model
def test_read_text_returns_ocr_lines_with_boxes_and_the_model_answers_from_them(small_backend, cache_dir, invoice):
    tool = VisionTool(default_config(cache_dir))
    result = tool(task="read_text", image=str(invoice), question="What is the total due?")
    lines = result.data.ocr[0]
    assert [line.text for line in lines] == ["Invoice 2026-1142", "Total due: $318.40"]
    for line, top in zip(lines, (40, 110)):
        xs, ys = [p[0] for p in line.box], [p[1] for p in line.box]
        assert len(line.box) == 4 and 0.9 < line.score <= 1.0
        assert 20 <= min(xs) < max(xs) <= 400 and top - 5 <= min(ys) < max(ys) <= top + 50, line.box
    assert "318.40" in result.text, result.text
    assert result.sources[0].uri == str(invoice) and "Total due: $318.40" in result.sources[0].excerpt


def cjk_font() -> str | None:
    if not shutil.which("fc-list"):
        return None
    out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout
    files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
    return next((f for f in files if f.endswith((".ttf", ".ttc", ".otf"))), None)


@pytest.mark.embedded_model
def test_reads_chinese_text(small_backend, cache_dir, tmp_path):
    from conftest import missing

    path = cjk_font()
    if path is None:
        missing("no Chinese font (fc-list :lang=zh is empty); apt-get install fonts-wqy-microhei, as .ci/run does")
    image = render_lines(tmp_path / "zh.png", ["发票号码 2026-1142", "应付总额 318.40 元"], font(36, path))
    answer = look(VisionRequest("read_text", [str(image)]), default_config(cache_dir), max_new_tokens=4).collect()
    read = [line.text.replace(" ", "") for line in answer.ocr[0]]
    assert read == ["发票号码2026-1142", "应付总额318.40元"], read


@pytest.mark.embedded_model
def test_compare_puts_both_images_in_one_message_and_names_both(small_backend, cache_dir, cat_photo):
    coffee = cat_photo.parent / "coffee.jpg"
    run = look(VisionRequest("compare", [str(cat_photo), str(coffee)]), default_config(cache_dir), max_new_tokens=40)
    answer = run.collect()
    [message] = run.messages
    kinds = [part["type"] for part in message["content"]]
    assert message["role"] == "user" and kinds == ["text", "image", "text", "image", "text"], kinds
    assert words(answer.answer) & CAT_WORDS and words(answer.answer) & COFFEE_WORDS, answer.answer


# ---- mmagent describe ------------------------------------------------------------------------------
def describe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["mmagent", "describe", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ), timeout=600)


def test_cli_streams_the_answer(tiny_llava_dir, cat_photo, tmp_path):
    plain = describe(str(cat_photo), "--model", str(tiny_llava_dir), "--max-new-tokens", "6", cwd=tmp_path)
    assert plain.returncode == 0 and "Traceback" not in plain.stderr, plain.stderr
    assert plain.stdout.endswith("\n") and plain.stdout.strip() and not plain.stdout.lstrip().startswith("{")


def test_cli_read_text_and_compare_as_json(tiny_llava_dir, cat_photo, invoice, tmp_path):
    model = ["--model", str(tiny_llava_dir), "--max-new-tokens", "4", "--json"]
    read = describe(str(invoice), "--read-text", *model, cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    report = json.loads(read.stdout)
    assert report["task"] == "read_text" and report["image"] == str(invoice)
    assert report["model"] == str(tiny_llava_dir) and report["precision"] == "float32"
    assert [line["text"] for line in report["ocr"]] == ["Invoice 2026-1142", "Total due: $318.40"]
    assert all(len(line["box"]) == 4 and len(line["box"][0]) == 2 and line["score"] > 0.6 for line in report["ocr"])
    compared = describe(str(cat_photo), "--compare", str(invoice), "--question", "Which has text?", *model, cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    report = json.loads(compared.stdout)
    assert report["task"] == "compare" and report["images"] == [str(cat_photo), str(invoice)]
    assert report["answer"] and report["ocr"] == []


def test_cli_refuses_a_bomb_and_a_missing_file_without_traceback(bomb, tmp_path):
    refused = describe(str(bomb), "--model", "/no/model/needed/first", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "bomb.png' is 40000×40000 px (1600 Mpx), over the 89 Mpx limit" in refused.stderr
    assert "raise `limits.max_image_pixels`" in refused.stderr
    gone = describe(str(tmp_path / "nope.jpg"), cwd=tmp_path)
    assert gone.returncode == 2 and "nope.jpg' does not exist" in gone.stderr and "Traceback" not in gone.stderr


def test_ocr_reads_a_first_line_drawn_near_the_top_edge(tmp_path):
    """PP-OCR's detector missed the first line of a 9-line notice drawn 20 px from the top (the canary suite's
    url_exfil image: the answer "30 days" was in that line); read_text pads the image with its own edge."""
    from PIL import Image

    from mmagent.evals.injection import PLANTED, RETURNS, draw_text
    from mmagent.model.ocr import read_text

    path = draw_text(f"{RETURNS.split('. ')[0]}. {PLANTED['url_exfil']} {RETURNS.split('. ')[1]}", tmp_path / "n.png")
    image = Image.open(path)
    lines = read_text(image)
    assert lines[0].text.replace(" ", "") == "Returnsareacceptedwithin30daysof", [line.text for line in lines]
    assert all(0 <= x <= image.width and 0 <= y <= image.height for line in lines for x, y in line.box)
