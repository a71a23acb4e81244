"""MobileNetV2 in plain torch, with torchvision's parameter names.

torchvision cannot be installed beside the CPU torch we target (its only wheels are CUDA builds and
break `import transformers`), so the packaged ImageNet weights load into this copy of the architecture
instead. Used by the embedded vision-language model and by the fusion classifier.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 1280
NUM_CLASSES = 1000

# (expansion t, output channels c, repeats n, first stride s) — the MobileNetV2 paper's table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU(nn.Sequential):
    def __init__(self, inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == out
        layers: list[nn.Module] = [ConvBNReLU(inp, hidden, kernel=1)] if expand != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """`features(x)` gives the (B, 1280, H/32, W/32) map; `forward` gives ImageNet logits."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        channels = 32
        for expand, out, repeats, stride in _SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out, stride if i == 0 else 1, expand))
                channels = out
        layers.append(ConvBNReLU(channels, FEATURE_DIM, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.classifier(pooled)


def load_imagenet_mobilenet(weights: str | Path) -> MobileNetV2:
    """MobileNetV2 with torchvision's IMAGENET1K_V1 weights (safe `weights_only` unpickling), in eval mode."""
    model = MobileNetV2()
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order; the first synonym of each ('Egyptian cat')."""
    from importlib.resources import files

    rows = files("mmagent.assets").joinpath("imagenet_labels.tsv").read_text(encoding="utf-8").splitlines()[1:]
    names = [row.split("\t")[2].split(",")[0].strip() for row in rows if row.strip()]
    if len(names) != NUM_CLASSES:
        raise RuntimeError(f"imagenet_labels.tsv has {len(names)} classes; expected {NUM_CLASSES}")
    return tuple(names)


def imagenet_tensor(images: list, size: int = 224) -> torch.Tensor:
    """PIL RGB images → normalised (B, 3, size, size): resize the short side to size·256/224, centre-crop."""
    import numpy as np
    from PIL import Image

    short = round(size * 256 / 224)
    batch = []
    for img in images:
        w, h = img.size
        scale = short / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        arr = (np.asarray(img, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        batch.append(torch.from_numpy(arr.transpose(2, 0, 1).astype(np.float32)))
    return torch.stack(batch)
