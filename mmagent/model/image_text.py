"""The text a model is given about an image besides its pixels: what a grounding check may compare with.

The embedded vision tower spells class names into the image tokens (" A photo of: Egyptian cat, tabby");
the backend adds an OCR block after each image when `model.ocr` is on. A hub VLM sees only pixels, so
nothing it says about them is checkable text.
"""

from __future__ import annotations

from typing import Any


def tower_names(model: Any, processor: Any, image: Any) -> str:
    """The class-name line the embedded tower writes for `image`, decoded from its name tokens ('' for a
    model without that tower)."""
    import torch

    from mmagent.model.default_vlm.build import NAME_PREFIX
    from mmagent.model.default_vlm.vision import MobileNetTower
    from mmagent.model.mobilenet import imagenet_class_names

    tower = next((m for m in model.modules() if isinstance(m, MobileNetTower)), None)
    if tower is None:
        return ""
    pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probs = tower(pixels.to(tower.device)).pooler_output[0]
    sequence = tower.name_sequence(probs)
    pad, separator = int(tower.pad_token[0]), int(tower.separator_token[0])
    body = [t for t in sequence if t != pad][tower.config.prefix_length:]
    by_tokens = {tuple(int(t) for t in row if t >= 0): name
                 for row, name in zip(tower.class_tokens.tolist(), imagenet_class_names())}
    pieces, current = [], []
    for token in body + [separator]:
        if token == separator:
            pieces.append(by_tokens.get(tuple(current), "")) if current else None
            current = []
        else:
            current.append(token)
    return f"{NAME_PREFIX.strip()} {', '.join(p for p in pieces if p)}"
