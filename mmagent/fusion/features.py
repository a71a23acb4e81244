"""Frozen encoder outputs, computed once per distinct text/image and cached on disk.

Training on easy-vqa sees 38,575 questions but only 107 distinct question texts and 4,000 images, so
each is encoded once; the result is saved as safetensors under ``<paths.cache>/fusion-features/``,
keyed by a hash of the encoder settings and of the inputs (text strings; image file *contents*), so
another run, another fusion mode or a resumed run loads it in a second instead of re-extracting.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mmagent.fusion.data import Example
from mmagent.fusion.encoders import ImageEncoder, TextEncoder, TextFeatures, weights_fingerprint

log = logging.getLogger(__name__)
TEXT_BATCH, IMAGE_BATCH = 64, 32


@dataclass
class EncodedData:
    """Cached encoder outputs for a list of examples; rows of the tables are shared between examples.

    ``text_tokens`` (Nt, L, Dt) and ``text_mask`` (Nt, L) per distinct text; ``image_maps`` (Ni, C, H, W)
    per distinct image (float16 on disk and in memory); ``text_idx``/``image_idx``/``labels`` (N,) per
    example (label -1 when the example's label is not in the label set).
    """

    text_tokens: torch.Tensor
    text_mask: torch.Tensor
    image_maps: torch.Tensor
    text_idx: torch.Tensor
    image_idx: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, rows: torch.Tensor) -> tuple[TextFeatures, torch.Tensor, torch.Tensor]:
        """(text features, image maps, labels) for example rows, as float32."""
        t, i = self.text_idx[rows], self.image_idx[rows]
        mask = self.text_mask[t]
        width = int(mask.sum(1).max())  # drop padding columns no row in this batch uses
        return (TextFeatures(self.text_tokens[t, :width].float(), mask[:, :width]),
                self.image_maps[i].float(), self.labels[rows])


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:20]


def file_digest(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _weights(enc: TextEncoder | ImageEncoder) -> str:
    if not hasattr(enc, "_weights_fingerprint"):  # hashing MiniLM's 90 MB takes ~0.2 s: once per encoder
        enc._weights_fingerprint = weights_fingerprint(enc.model)
    return enc._weights_fingerprint


def text_fingerprint(enc: TextEncoder) -> list[str]:
    return ["text", enc.name, str(enc.train_last), str(enc.max_length), str(enc.dim), _weights(enc)]


def image_fingerprint(enc: ImageEncoder) -> list[str]:
    return ["image", enc.name, str(enc.size), str(enc.train_last), str(enc.dim), _weights(enc)]


def _cached(kind: str, fingerprint: list[str], items: list[str], cache_dir: Path | None,
            compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Load the tensors for (fingerprint, items) from the cache, or compute and store them."""
    from safetensors.torch import load_file, save_file

    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / "fusion-features" / f"{kind}-{_digest(fingerprint + items)}.safetensors"
    if path.is_file():
        log.info("feature cache hit: %s", path)
        return load_file(str(path))
    tensors = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial),
              metadata={"fingerprint": json.dumps(fingerprint), "count": str(len(items))})
    partial.replace(path)
    return tensors


def encode_texts(enc: TextEncoder, texts: list[str], progress: bool = True) -> dict[str, torch.Tensor]:
    from tqdm.auto import tqdm

    chunks = []
    for start in tqdm(range(0, len(texts), TEXT_BATCH), desc="encoding texts", unit="batch", disable=not progress):
        chunks.append(enc.encode_frozen(texts[start:start + TEXT_BATCH]))
    width = max(c.tokens.shape[1] for c in chunks)
    tokens = torch.cat([torch.nn.functional.pad(c.tokens, (0, 0, 0, width - c.tokens.shape[1])) for c in chunks])
    mask = torch.cat([torch.nn.functional.pad(c.mask, (0, width - c.mask.shape[1])) for c in chunks])
    return {"tokens": tokens.half(), "mask": mask}


def encode_images(enc: ImageEncoder, paths: list[str], progress: bool = True) -> dict[str, torch.Tensor]:
    from tqdm.auto import tqdm

    from mmagent.images import load_image

    chunks = []
    for start in tqdm(range(0, len(paths), IMAGE_BATCH), desc="encoding images", unit="batch", disable=not progress):
        images = [load_image(p) for p in paths[start:start + IMAGE_BATCH]]
        chunks.append(enc.encode_frozen(images).half())
    return {"maps": torch.cat(chunks)}


def encode_examples(examples: Sequence[Example], text_enc: TextEncoder, image_enc: ImageEncoder,
                    labels: Sequence[str], cache_dir: str | Path | None, progress: bool = True) -> EncodedData:
    """Encode (or load from the cache) every distinct text and image of `examples`."""
    texts = sorted({e.text for e in examples})
    paths = sorted({e.image for e in examples})
    digests = [file_digest(p) for p in paths]
    cache = Path(cache_dir) if cache_dir else None
    t = _cached("text", text_fingerprint(text_enc), texts, cache, lambda: encode_texts(text_enc, texts, progress))
    i = _cached("image", image_fingerprint(image_enc), digests, cache,
                lambda: encode_images(image_enc, paths, progress))
    t_pos = {x: n for n, x in enumerate(texts)}
    i_pos = {x: n for n, x in enumerate(paths)}
    l_pos = {x: n for n, x in enumerate(labels)}
    return EncodedData(
        text_tokens=t["tokens"], text_mask=t["mask"].bool(), image_maps=i["maps"],
        text_idx=torch.tensor([t_pos[e.text] for e in examples], dtype=torch.long),
        image_idx=torch.tensor([i_pos[e.image] for e in examples], dtype=torch.long),
        labels=torch.tensor([l_pos.get(e.label, -1) for e in examples], dtype=torch.long),
    )
