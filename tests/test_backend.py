"""HFVisionBackend on tiny random-weight checkpoints: loading, templating, streaming, images, errors."""

import logging

import pytest
from conftest import tiny_config
from PIL import Image

from mmagent.errors import ImageError, MMAgentError, ModelLoadError
from mmagent.model.backend import HFVisionBackend
from mmagent.model.base import ModelBackend
from mmagent.model.quantization import plan_quantization

QUESTION = [{"role": "user", "content": "What is in this picture?"}]


@pytest.fixture(scope="module")
def backend(tiny_llava_dir):
    return HFVisionBackend(tiny_config(tiny_llava_dir))


def test_satisfies_the_interface_and_reports_itself(backend):
    assert isinstance(backend, ModelBackend)
    info = backend.info()
    assert info.architecture == "LlavaForConditionalGeneration"
    assert info.precision == "float32" and info.device == "cpu"
    assert len(info.chat_template_hash) == 16
    assert "image/jpeg" in backend.accepts


def test_streams_several_pieces_and_is_deterministic(backend, cat_photo):
    pieces = list(backend.generate(QUESTION, images=[cat_photo], max_new_tokens=10))
    assert len(pieces) >= 2 and all(pieces)
    assert "".join(pieces) == backend.complete(QUESTION, images=[cat_photo], max_new_tokens=10)


def test_image_as_path_bytes_or_pil_is_the_same_input(backend, cat_photo):
    answers = {
        backend.complete(QUESTION, images=[source], max_new_tokens=8)
        for source in (cat_photo, str(cat_photo), cat_photo.read_bytes(), Image.open(cat_photo))
    }
    assert len(answers) == 1


def test_the_image_reaches_the_model(backend, cat_photo):
    other = Image.new("RGB", (64, 64), "blue")
    with_cat = backend.prepare([{"role": "user", "content": [{"type": "image", "image": cat_photo}]}])
    with_blue = backend.prepare([{"role": "user", "content": [{"type": "image", "image": other}]}])
    assert (with_cat["input_ids"] == backend.model.config.image_token_id).sum() == 16
    assert not (with_cat["pixel_values"] == with_blue["pixel_values"]).all()


def test_text_only_request_on_a_vision_model(backend):
    inputs = backend.prepare(QUESTION)
    assert "pixel_values" not in inputs
    assert backend.complete(QUESTION, max_new_tokens=4)


def test_chat_template_renders_images_and_history(backend, cat_photo):
    text, images = backend.render(
        [
            {"role": "user", "content": [{"type": "image", "image": cat_photo}, {"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "And now?"},
        ]
    )
    assert len(images) == 1
    assert text.count("<image>") == 1 and text.endswith("<|im_start|>assistant\n")


def test_template_hash_is_stable_across_loads(backend, tiny_llava_dir):
    again = HFVisionBackend(tiny_config(tiny_llava_dir))
    assert again.chat_template_hash == backend.chat_template_hash


def test_text_only_model_refuses_images(tiny_lm_dir, cat_photo):
    lm = HFVisionBackend(tiny_config(tiny_lm_dir))
    assert lm.accepts == frozenset()
    assert lm.complete(QUESTION, max_new_tokens=4)
    with pytest.raises(ImageError, match="is text-only and cannot take images"):
        lm.complete(QUESTION, images=[cat_photo])


def test_bad_inputs_get_clear_errors(backend, tmp_path, tiny_llava_dir):
    corrupt = tmp_path / "x.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ImageError, match="x.jpg"):
        backend.complete(QUESTION, images=[corrupt])
    with pytest.raises(ModelLoadError, match="is not a model directory"):
        HFVisionBackend(tiny_config(tmp_path / "nope"))
    with pytest.raises(MMAgentError, match="unknown generation option"):
        backend.complete(QUESTION, max_tokens=3)


@pytest.mark.parametrize("mode, precision", [("8bit", "int8 (bitsandbytes"), ("4bit", "nf4 (bitsandbytes")])
def test_quantized_loads_generate_and_report_precision(tiny_llava_dir, cat_photo, mode, precision):
    import bitsandbytes as bnb

    q = HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.quantization": mode}))
    assert q.info().precision.startswith(precision)
    layer = q.model.model.language_model.layers[0].self_attn.q_proj
    assert isinstance(layer, (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit))
    assert not isinstance(q.model.model.multi_modal_projector.linear_1, (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit))
    assert q.complete(QUESTION, images=[cat_photo], max_new_tokens=4)


def test_quantization_falls_back_with_one_warning_where_unsupported(caplog):
    import torch

    plan = plan_quantization("4bit", "mps", torch.float32)
    assert plan.active == "none" and plan.load_kwargs == {}
    assert "no Apple MPS backend" in plan.warning and "loading float32 instead" in plan.warning
    assert plan_quantization("none", "cpu", torch.float32).warning is None


def test_a_smolvlm_class_checkpoint_uses_its_own_processor_and_template(tmp_path, cat_photo):
    from helpers.tiny import build_tiny_idefics3

    backend = HFVisionBackend(tiny_config(build_tiny_idefics3(tmp_path / "idefics3")))
    assert backend.info().architecture == "Idefics3ForConditionalGeneration"
    text, images = backend.render([{"role": "user", "content": [{"type": "image", "image": cat_photo}, {"type": "text", "text": "Hi"}]}])
    assert text.startswith("<|im_start|>User:<image> Hi<end_of_utterance>") and len(images) == 1
    assert backend.complete(QUESTION, images=[cat_photo], max_new_tokens=4)


def test_banned_fragments_never_appear_in_the_output(backend):
    """The flows ban their fence markers: no token that spells part of one can be generated, however split."""
    from mmagent.model.backend import _tokens_containing

    tok = backend.tokenizer
    banned = set(_tokens_containing(tok, ("<<", ">>")))
    assert all("<<" in tok.decode([i]) or ">>" in tok.decode([i]) for i in banned)
    free = backend.complete(QUESTION, max_new_tokens=12)
    fenced = backend.complete(QUESTION, max_new_tokens=12, banned=("<<", ">>"))
    assert "<<" not in fenced and ">>" not in fenced
    assert isinstance(free, str)
