"""Reading visible text with RapidOCR's packaged PP-OCR models (Chinese + English, ONNX, offline).

The embedded model's vision tower only knows ImageNet classes; text in an image reaches the language
model as plain text under a heading, which shared/MODELS.md measured to be repeated faithfully. That text
is whatever the photographed page says, so it is fenced as data (`mmagent.prompting.fence`) like a
retrieved passage: a notice reading "ignore your instructions" is quoted, not obeyed.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmagent.errors import require
from mmagent.prompting import fence

if TYPE_CHECKING:
    from PIL import Image as PILImage

MIN_SCORE = 0.6
# A margin added around the image before detection: PP-OCR's detector missed a first line drawn 25 px from the
# top edge (a 9-line notice in the canary suite; found with a 16 px margin, its spaces right with 32 px).
PAD = 32
HEADING = "Text in the image:"
_lock = threading.Lock()


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: tuple[tuple[float, float], ...]  # four corner points, clockwise from top-left, in pixels
    score: float


@functools.lru_cache(maxsize=1)
def _engine():
    rapidocr = require("rapidocr_onnxruntime", "all")
    return rapidocr.RapidOCR()


def read_text(image: "PILImage.Image", min_score: float = MIN_SCORE) -> list[OcrLine]:
    """Lines of text in reading order (top to bottom as the detector returns them), confident ones only."""
    import numpy as np
    from PIL import Image

    # the margin repeats the edge pixels: a flat border of another colour drew a hard edge the detector read
    # as text on a photo ("CO" on the coffee cup of image_claims)
    padded = Image.fromarray(np.pad(np.asarray(image.convert("RGB")), ((PAD, PAD), (PAD, PAD), (0, 0)), mode="edge"))
    with _lock:  # the ONNX sessions are shared; one image at a time
        result, _ = _engine()(padded)
    lines = []
    for box, text, score in result or []:
        text = str(text).strip()
        if text and float(score) >= min_score and len(text) >= 2:
            lines.append(OcrLine(text, tuple((float(x) - PAD, float(y) - PAD) for x, y in box), float(score)))
    return lines


def as_prompt_text(lines: list[OcrLine]) -> str:
    """The text block the language model gets next to the image (empty when nothing was read)."""
    if not lines:
        return ""
    return HEADING + "\n" + fence("\n".join(line.text for line in lines), "text read from the image")
