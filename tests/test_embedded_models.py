"""The embedded models' names, and their composition: tiny random Qwen2 models go through the same
`compose_checkpoint` code as the real Qwen2.5-Coder and SmolLM2 builds, then load through the backend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from mmagent.config import DEFAULT_EMBEDDED, EMBEDDED_MODELS, load_config
from mmagent.errors import ConfigError

QWEN = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory) -> Path:
    from helpers.tiny import tiny_mobilenet_weights

    return tiny_mobilenet_weights(tmp_path_factory.mktemp("mobilenet") / "mobilenet.pth")


def compose_tiny_qwen2(root: Path, mobilenet: Path, tied: bool) -> tuple[Path, object]:
    from helpers.tiny import tiny_qwen2_lm

    from mmagent.model.default_vlm import models
    from mmagent.model.default_vlm.build import compose_checkpoint

    lm, tok = tiny_qwen2_lm(tied=tied)
    target = root / f"qwen2-{'tied' if tied else 'untied'}"
    compose_checkpoint(models.get(QWEN), lm, tok, mobilenet, target)
    return target, lm


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def composed(request, tmp_path_factory, mobilenet_weights):
    root = tmp_path_factory.mktemp("composed")
    path, lm = compose_tiny_qwen2(root, mobilenet_weights, tied=request.param)
    return path, lm, request.param


def backend_for(path: Path, tmp_path: Path, **overrides):
    from mmagent.model.backend import HFVisionBackend

    settings = {"model.id": str(path), "paths.cache": str(tmp_path), "model.ocr": "off", **overrides}
    return HFVisionBackend(load_config(overrides=settings, env={}))


# ---- names --------------------------------------------------------------------------------------------
def test_default_is_one_embedded_model_and_every_name_has_a_recipe():
    from mmagent.config import embedded_name
    from mmagent.model.default_vlm import models

    assert embedded_name("default") == DEFAULT_EMBEDDED == models.get("default").name
    assert tuple(models.EMBEDDED) == EMBEDDED_MODELS
    assert embedded_name("embedded:qwen2.5-coder-1.5b") == "qwen2.5-coder-1.5b"
    assert embedded_name("HuggingFaceTB/SmolVLM-256M-Instruct") is None
    folders = {m.model_dir("/c").name for m in models.EMBEDDED.values()}
    assert len(folders) == 3 and "mmagent-default-vlm-v2" in folders  # SmolLM2 keeps its earlier folder


def test_an_unknown_embedded_model_lists_the_valid_names():
    with pytest.raises(ConfigError) as err:
        load_config(overrides={"model.id": "embedded:qwen9"}, env={})
    for name in EMBEDDED_MODELS:
        assert f"embedded:{name}" in str(err.value)


def test_setup_refuses_an_unknown_model_and_names_the_valid_ones(tmp_path):
    from typer.testing import CliRunner

    import mmagent.cli.setup  # noqa: F401  registers the verb, as the console script does
    from mmagent.cli import app

    result = CliRunner().invoke(app, ["setup", "--model", "qwen9", "--set", f"paths.cache={tmp_path}"])
    assert result.exit_code != 0
    text = re.sub(r"\s+", " ", result.output)
    assert "unknown embedded model" in text and all(name in text for name in EMBEDDED_MODELS), text
    assert not (tmp_path / "models").exists()


def test_doctor_names_every_embedded_models_source_and_licence(tmp_path):
    from mmagent.doctor import diagnose

    report = diagnose(load_config(overrides={"paths.cache": str(tmp_path)}, env={}))
    rows = {a.name: a for a in report.artifacts}
    upstream = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0)",
                "qwen2.5-coder-0.5b": "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (Apache-2.0)",
                "qwen2.5-coder-1.5b": "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (Apache-2.0)"}
    assert set(upstream) == set(EMBEDDED_MODELS)
    default = rows["model: embedded default VLM"]
    assert f"embedded:{DEFAULT_EMBEDDED}: " in default.detail and upstream[DEFAULT_EMBEDDED] in default.detail
    for name in set(EMBEDDED_MODELS) - {DEFAULT_EMBEDDED}:
        row = rows[f"available: embedded:{name}"]
        assert upstream[name] in row.detail
        assert row.status == "not assembled" and f"mmagent setup --model {name}" in row.detail


# ---- composition ----------------------------------------------------------------------------------------
def test_composed_qwen2_is_a_plain_llava_checkpoint_with_qwens_tokens(composed):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import mmagent.model.default_vlm.vision  # noqa: F401  registration, as any mmagent load does

    path, lm, tied = composed
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert config["text_config"]["model_type"] == "qwen2"
    processor = AutoProcessor.from_pretrained(path)
    tok = processor.tokenizer
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<image>")
    assert model.generation_config.eos_token_id == [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    assert model.generation_config.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    vocab = lm.config.vocab_size  # padded past the tokenizer, as Qwen's is: <image> fits without growing
    assert model.get_input_embeddings().weight.shape[0] == vocab
    expected_head = lm.get_output_embeddings().weight.to(torch.bfloat16).float()  # stored as bf16
    assert torch.equal(model.lm_head.weight[:vocab], expected_head)
    shared = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert shared == tied
    manifest = json.loads((path / "mmagent_build.json").read_text())
    assert manifest["dtype"] == "bfloat16" and manifest["name"] == f"embedded:{QWEN}"


def test_composed_qwen2_renders_images_and_qwens_tool_calls(composed, tmp_path):
    backend = backend_for(composed[0], tmp_path)
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Find an order.",
                                                "parameters": {"type": "object", "properties": {}}}}]
    text, images = backend.render([{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (40, 30))},
                                                                {"type": "text", "text": "What is this?"}]}], tools=tools)
    assert len(images) == 1
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert '<tools>\n{"type": "function", "function": {"name": "lookup"' in text
    assert "<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n" in text
    call = [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "lookup", "arguments": '{"id": 7}'}}]}]
    rendered = backend.apply_template(call, add_generation_prompt=False)
    assert rendered.endswith('<tool_call>\n{"name": "lookup", "arguments": {"id": 7}}\n</tool_call><|im_end|>\n')


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_composed_qwen2_loads_through_the_backend_and_generates(composed, tmp_path, dtype):
    backend = backend_for(composed[0], tmp_path, **{"model.dtype": dtype})
    assert backend.info().precision == dtype and backend.vision
    assert backend.model.model.language_model.__class__.__name__ == "Qwen2Model"
    ids = backend.generate_ids([{"role": "user", "content": "hello"}], images=[Image.new("RGB", (64, 64), "red")],
                               max_new_tokens=4, repetition_penalty=1.0)
    assert 1 <= len(ids) <= 4
    assert isinstance(backend.complete([{"role": "user", "content": "hello"}], max_new_tokens=3), str)


@pytest.mark.parametrize("recipe", ["vlm-easy-vqa", "vlm-classify"])
def test_shipped_lora_targets_hit_qwen2s_projections_inside_llava(composed, recipe):
    """The recipes' regexes name Llama's module names; Qwen2 uses the same ones: every attention (and, where
    asked, MLP) projection of the language model gets LoRA, nothing in the vision tower or projector."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from mmagent.finetune.recipe import load_recipe

    model = AutoModelForImageTextToText.from_pretrained(composed[0])
    targets = load_recipe(recipe).lora.target_modules
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=targets))
    wrapped = {name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    attention = {"q_proj", "k_proj", "v_proj", "o_proj"}
    expected = attention | ({"gate_proj", "up_proj", "down_proj"} if "gate_proj" in targets else set())
    layers = model.config.text_config.num_hidden_layers
    assert {name.rsplit(".", 1)[1] for name in wrapped} == expected
    assert len(wrapped) == layers * len(expected)
    assert all(".language_model.layers." in name for name in wrapped)


# ---- the real Qwen2.5-Coder builds (slow: downloads 0.5 / 1.1 GB once, builds for minutes) ---------------
QWEN_NAMES = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


@pytest.fixture(scope="module", params=QWEN_NAMES)
def qwen_backend(request, cache_dir):
    from mmagent.model import load_backend
    from mmagent.model.default_vlm.build import ensure_model

    ensure_model(request.param, cache_dir)
    overrides = {"model.id": f"embedded:{request.param}", "paths.cache": str(cache_dir), "model.dtype": "bfloat16"}
    return load_backend(load_config(overrides=overrides, env={}))


@pytest.mark.slow
def test_real_qwen_build_records_its_pinned_sources(qwen_backend):
    from mmagent.model.default_vlm import models

    spec = models.get(qwen_backend.model_config.id)
    manifest = json.loads((Path(qwen_backend.path) / "mmagent_build.json").read_text())
    lm = manifest["sources"][0]
    assert (lm["package"], lm["sha256"], lm["licence"]) == (spec.language_model.source, spec.language_model.sha256, "Apache-2.0")
    assert lm["upstream"] == spec.language_model.upstream and manifest["dtype"] == "bfloat16"
    assert qwen_backend.model.model.language_model.__class__.__name__ == "Qwen2Model"


@pytest.mark.slow
def test_real_qwen_answers_a_factual_question(qwen_backend):
    answer = qwen_backend.complete([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=24)
    assert "Paris" in answer, answer


@pytest.mark.slow
def test_real_qwen_names_the_cat_in_a_photo(qwen_backend, cat_photo):
    answer = qwen_backend.complete([{"role": "user", "content": "What animal is this? Answer briefly."}],
                                   images=[cat_photo], max_new_tokens=24)
    assert set(re.findall(r"[a-z]+", answer.lower())) & {"cat", "cats", "feline", "kitten", "tabby"}, answer


@pytest.mark.slow
def test_real_qwen_template_renders_text_exactly_as_qwens_own(qwen_backend, cache_dir):
    """Our template only adds image parts: for text and tool conversations it must equal the GGUF's own, except
    that the 1.5B release's template writes the tool-call example with doubled braces (`{{"name": ...}}`, an
    upstream slip the 0.5B and Qwen2.5-Instruct templates do not have); we ship the single-brace form."""
    from transformers import AutoTokenizer

    from mmagent.model import weights
    from mmagent.model.default_vlm import models

    gguf = weights.locate(models.get(qwen_backend.model_config.id).language_model, cache_dir)
    own = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tools = [{"type": "function", "function": {"name": "order_status", "description": "Look up an order.",
                                                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}]
    conversation = [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is order 7?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "order_status", "arguments": {"id": "7"}}}]},
        {"role": "tool", "content": "shipped"},
    ]
    example = '{"name": <function-name>, "arguments": <args-json-object>}'
    for kwargs in ({}, {"tools": tools}):
        ours = qwen_backend.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True, **kwargs)
        theirs = own.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True, **kwargs)
        assert ours == theirs.replace("{" + example + "}", example)
