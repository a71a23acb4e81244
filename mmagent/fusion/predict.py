"""Use a trained fusion classifier: `FusionClassifier.load(path).predict(text, image)`.

This is what the `classify` flow (``classifier=PATH``), the `classify` tool and evals call. Inputs go
through the same encoders as training (frozen part, then the trained tails and head); batches of
examples from a data source go through the on-disk feature cache instead, which is how evals score
thousands of examples in seconds.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmagent.fusion.data import Example
from mmagent.fusion.encoders import ImageEncoder, TextEncoder, TextFeatures
from mmagent.fusion.features import encode_examples
from mmagent.fusion.model import (
    MANIFEST,
    WEIGHTS,
    FusionModel,
    Manifest,
    build_encoders,
    build_model,
    load_weights,
)

PREDICT_BATCH = 64
TEXT_CACHE = 4096  # distinct texts kept encoded per classifier (~15 kB each for MiniLM)


@dataclass
class Prediction:
    """The most probable label, its probability, and every label's probability (sums to 1)."""

    label: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)


class FusionClassifier:
    """A trained classifier folder loaded for prediction (CPU, eval mode)."""

    def __init__(self, path: Path, manifest: Manifest, model: FusionModel, text_enc: TextEncoder,
                 image_enc: ImageEncoder) -> None:
        self.path, self.manifest, self.model = path, manifest, model.eval()
        self.text_enc, self.image_enc = text_enc, image_enc
        self.labels: list[str] = list(manifest.labels)
        self._texts: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, encoders: tuple[TextEncoder, ImageEncoder] | None = None) -> FusionClassifier:
        """Read `path` (a training run's output_dir); `encoders` replaces the packaged ones (tests).

        Loading the packaged encoders takes seconds, so a folder loaded before (and unchanged since)
        returns the same instance: the UI, the tool and the flow can call this per request.
        """
        path = Path(path).expanduser().resolve()
        if encoders is not None:
            return cls._build(path, encoders)
        Manifest.read(path)  # a clear error for a folder that is not a classifier
        stamp = tuple((path / name).stat().st_mtime_ns for name in (MANIFEST, WEIGHTS) if (path / name).is_file())
        return _load_cached(str(path), stamp)

    @classmethod
    def _build(cls, path: Path, encoders: tuple[TextEncoder, ImageEncoder] | None) -> FusionClassifier:
        manifest = Manifest.read(path)
        text_enc, image_enc = encoders or build_encoders(manifest.encoders)
        model = build_model(text_enc, image_enc, manifest.mode, len(manifest.labels), manifest.head)
        load_weights(path, model)
        return cls(path, manifest, model, text_enc, image_enc)

    @property
    def mode(self) -> str:
        return self.manifest.mode

    def predict(self, text: str, image: Any) -> Prediction:
        """One example: `image` is a path, bytes or PIL image (read with mmagent.images.load_image)."""
        return self.predict_batch([text], [image])[0]

    @torch.inference_mode()
    def predict_batch(self, texts: Sequence[str], images: Sequence[Any]) -> list[Prediction]:
        """Encode and classify a batch from raw inputs; texts and images pair up by position."""
        from mmagent.images import load_image

        if len(texts) != len(images):
            raise ValueError(f"got {len(texts)} texts and {len(images)} images; they pair up one to one")
        out: list[Prediction] = []
        for start in range(0, len(texts), PREDICT_BATCH):
            text = self._encode_texts(list(texts[start:start + PREDICT_BATCH]))
            maps = self.image_enc.encode_frozen([load_image(x) for x in images[start:start + PREDICT_BATCH]])
            out += self._predictions(self.model(text, maps))
        return out

    def _encode_texts(self, texts: list[str]) -> TextFeatures:
        """Frozen text states, each distinct text encoded once per classifier: questions repeat (easy-vqa has
        107 distinct ones; a UI asks the same question of many images), images rarely do."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if todo:
            fresh = self.text_enc.encode_frozen(todo)
            with self._lock:
                for i, t in enumerate(todo):
                    n = int(fresh.mask[i].sum())
                    self._texts[t] = (fresh.tokens[i, :n].clone(), fresh.mask[i, :n].clone())
                while len(self._texts) > TEXT_CACHE:
                    self._texts.popitem(last=False)
        with self._lock:
            rows = [self._texts.get(t) for t in texts]
        if any(r is None for r in rows):  # evicted between the two steps by another thread: encode directly
            return self.text_enc.encode_frozen(texts)
        tokens = torch.nn.utils.rnn.pad_sequence([r[0] for r in rows], batch_first=True)
        mask = torch.nn.utils.rnn.pad_sequence([r[1] for r in rows], batch_first=True, padding_value=False)
        return TextFeatures(tokens, mask)

    def predict_examples(self, examples: Sequence[Example], cache_dir: str | None = None,
                         progress: bool = True) -> list[Prediction]:
        """Classify many examples through the feature cache (each distinct text/image encoded once)."""
        from mmagent.fusion.train import predict_logits

        data = encode_examples(examples, self.text_enc, self.image_enc, self.labels, cache_dir, progress)
        return self._predictions(predict_logits(self.model, data))

    def _predictions(self, logits: torch.Tensor) -> list[Prediction]:
        probs = torch.softmax(logits.float(), dim=-1)
        best = probs.argmax(-1)
        return [Prediction(self.labels[int(b)], round(float(p[b]), 6),
                           {label: round(float(v), 6) for label, v in zip(self.labels, p)})
                for b, p in zip(best, probs)]


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, stamp: tuple[int, ...]) -> FusionClassifier:
    """`stamp` (the files' modification times) makes a retrained folder load afresh."""
    return FusionClassifier._build(Path(path), None)
