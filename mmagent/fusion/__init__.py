"""Text+image fusion classifiers: packaged MiniLM + MobileNetV2 encoders, early/late/attention fusion.

Train with ``mmagent finetune run fusion-classifier``; use with
``FusionClassifier.load(path).predict(text, image) -> Prediction``; compare runs with
``mmagent eval fusion``. Names load lazily so ``import mmagent.fusion`` does not import torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FusionClassifier", "Prediction"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mmagent.fusion import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'mmagent.fusion' has no attribute {name!r}")
