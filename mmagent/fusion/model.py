"""The trainable part of a fusion classifier (encoder tails + fusion head) and its saved form.

A saved classifier is a folder: ``model.safetensors`` (the trainable weights only — the frozen
encoders are the packaged ones, named in the manifest) and ``manifest.json`` (encoders, labels, mode,
the recipe, the training data's hash and the metrics), so it loads without pickles.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmagent.errors import ModelLoadError
from mmagent.fusion.encoders import ImageEncoder, ImageTail, TextEncoder, TextFeatures, TextTail
from mmagent.fusion.modes import FusionHead, FusionInputs, build_head

MANIFEST, WEIGHTS = "manifest.json", "model.safetensors"
FORMAT = "mmagent-fusion-classifier/1"


class FusionModel(nn.Module):
    """Cached encoder outputs → logits: the encoders' trainable tails, then the fusion head."""

    def __init__(self, text_tail: TextTail, image_tail: ImageTail, head: FusionHead) -> None:
        super().__init__()
        self.text_tail, self.image_tail, self.head = text_tail, image_tail, head

    def forward(self, text: TextFeatures, image_maps: torch.Tensor) -> torch.Tensor:
        text = self.text_tail(text)
        return self.head(FusionInputs(text.tokens, text.mask, self.image_tail(image_maps)))

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.text_tail.parameters()) + list(self.image_tail.parameters())


@dataclass
class Manifest:
    """What a saved classifier is: enough to rebuild it and to say where its numbers come from."""

    labels: list[str]
    mode: str
    encoders: dict[str, Any]
    head: dict[str, Any]
    recipe: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise ModelLoadError(
                f"'{folder}' is not a fusion classifier (no {MANIFEST}); train one with "
                "`mmagent finetune run fusion-classifier` and pass its output_dir."
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ModelLoadError(f"{path} has format {data.get('format')!r}; this mmagent reads {FORMAT!r}.")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def write(self, folder: str | Path) -> None:
        Path(folder, MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def build_encoders(spec: dict[str, Any]) -> tuple[TextEncoder, ImageEncoder]:
    """The encoders a recipe's `encoders` section (as a dict) names; loads their pretrained weights
    (MobileNetV2's from the user cache, `paths.cache`, where `mmagent setup` puts them)."""
    text = TextEncoder(spec["text"], train_last=spec.get("text_train_last", 0),
                       max_length=spec.get("text_max_length", 64))
    image = ImageEncoder(spec["image"], size=spec["image_size"], train_last=spec.get("image_train_last", 0))
    return text, image


def build_model(text_enc: TextEncoder, image_enc: ImageEncoder, mode: str, num_classes: int,
                head_options: dict[str, Any]) -> FusionModel:
    head = build_head(mode, text_enc.dim, image_enc.dim, num_classes, max_cells=(image_enc.size // 32) ** 2,
                      **head_options)
    return FusionModel(text_enc.tail, image_enc.tail, head)


def save_classifier(folder: str | Path, model: FusionModel, manifest: Manifest) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    manifest.write(folder)
    return folder


def load_weights(folder: str | Path, model: FusionModel) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))
