"""Tiny random-weight models built from a config, saved like real checkpoints.

They run the real transformers/peft/bitsandbytes code paths in well under a second per call. The
tokenizer is a byte-level BPE trained here on a few sentences, so nothing comes from a hub.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "What is in this picture? A cat sits on a mat. The answer is yes. No, it is a red circle.",
    "Describe the image. A blue square and a green triangle. The capital of France is Paris.",
    "hello world, tell me about the photo, shape, colour, order 1234, ticket, refund, policy.",
]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]


def tiny_tokenizer(special: list[str] = SPECIAL):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from mmagent.model.default_vlm.build import chat_template

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>", bos_token=None,
        unk_token="<|endoftext|>", additional_special_tokens=[t for t in special[1:] if t != "<|im_end|>"],
    )
    fast.chat_template = chat_template()
    return fast


def text_config(vocab_size: int, seed_hidden: int = 64):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=seed_hidden, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
    )


def build_tiny_llava(path: Path, seed: int = 0, extra_tokens: tuple[str, ...] = ()) -> Path:
    """A LLaVA checkpoint (tiny CLIP tower + tiny Llama) with processor and chat template, at `path`
    (`extra_tokens` added to the tokenizer and the vocabulary: a model that spells text otherwise)."""
    import torch
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    tok.add_tokens(list(extra_tokens))
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=text_config(len(tok)),
                         image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                         vision_feature_select_strategy="default", image_seq_length=16)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.save_pretrained(path)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                               vision_feature_select_strategy="default", chat_template=tok.chat_template,
                               num_additional_image_tokens=1)
    processor.save_pretrained(path)
    return path


def build_tiny_causal_lm(path: Path, seed: int = 0, tokenizer=None) -> Path:
    """A text-only Llama checkpoint with the same tokenizer (or `tokenizer`, e.g. one with tool tokens)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    model = LlamaForCausalLM(text_config(len(tok))).eval()
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_lora_adapter(model_dir: Path, out: Path, seed: int, r: int = 4) -> Path:
    """A random (non-zero) LoRA adapter on the language tower's attention, saved in peft format."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    base = AutoModelForImageTextToText.from_pretrained(model_dir)
    config = LoraConfig(r=r, lora_alpha=16, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                        init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    with torch.no_grad():  # make the adapter's effect large enough to change greedy tokens
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.mul_(8.0)
    peft_model.save_pretrained(out)
    return out


IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:{% if m['content'] is string %} {{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>{% elif p['type'] == 'text' %} "
    "{{ p['text'] }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tiny_idefics3(path: Path, seed: int = 0) -> Path:
    """A SmolVLM-class (Idefics3) checkpoint with its own processor and template, at `path`."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    tok.add_tokens(["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"], special_tokens=True)
    tok.chat_template = IDEFICS3_TEMPLATE
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    config = Idefics3Config(text_config=text_config(len(tok)).to_dict(), vision_config=vision,
                            image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<end_of_utterance>")
    model.save_pretrained(path)
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32},
                                                do_image_splitting=False)
    Idefics3Processor(image_processor=image_processor, tokenizer=tok, chat_template=IDEFICS3_TEMPLATE,
                      image_seq_len=4).save_pretrained(path)
    return path


def tiny_qwen2_lm(tied: bool, seed: int = 0):
    """A random-weight Qwen2 causal LM and a ChatML tokenizer *without* `<image>`, shaped like Qwen2.5's:
    the embedding table is padded past the tokenizer, and biases on q/k/v. For the embedded-model
    composition code (`compose_checkpoint`), which must add `<image>` and handle tied or untied heads."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    tok = tiny_tokenizer(special=[t for t in SPECIAL if t != "<image>"])
    tok.pad_token = "<|endoftext|>"
    config = Qwen2Config(
        vocab_size=len(tok) + 8, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=tied,
    )
    return Qwen2ForCausalLM(config).eval(), tok


def tiny_mobilenet_weights(path: Path, seed: int = 0) -> Path:
    """Random MobileNetV2 weights saved like the packaged ImageNet file (a torchvision-named state dict)."""
    import torch

    from mmagent.model.mobilenet import MobileNetV2

    torch.manual_seed(seed)
    torch.save(MobileNetV2().state_dict(), path)
    return path
