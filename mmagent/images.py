"""Turning user-supplied images (paths, bytes, PIL images) into safe RGB PIL images.

Shared by the model backend, the vision tool, ingest and the UI so every surface refuses the same bad
input with the same message.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Union

from mmagent.errors import ImageError, shown

if TYPE_CHECKING:
    from PIL import Image as PILImage

ImageInput = Union[str, Path, bytes, "PILImage.Image"]
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own bomb threshold; configurable via limits.max_image_pixels

IMAGE_MIME_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff"}
)


def _describe(src: ImageInput) -> str:
    if isinstance(src, (str, Path)):
        return f"image '{shown(src)}'"
    if isinstance(src, (bytes, bytearray)):
        return f"image ({len(src)} bytes)"
    return "image"


def load_image(src: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> "PILImage.Image":
    """Open, check and normalise one image to 8-bit RGB.

    The pixel limit is checked from the header, before any pixel is decoded. EXIF orientation is
    applied; animated images give their first frame; RGBA/LA/P with transparency are composited on
    white; 16-bit and float images are rescaled to 8 bits.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = _describe(src)
    if isinstance(src, Image.Image):
        img = src
    else:
        if isinstance(src, (str, Path)):
            path = Path(src)
            if not path.is_file():
                raise ImageError(f"{name} does not exist or is not a file; check the path.")
            fp: object = path
        elif isinstance(src, (bytes, bytearray)):
            fp = io.BytesIO(bytes(src))
        else:
            raise ImageError(f"expected an image path, bytes or a PIL image; got {type(src).__name__}.")
        try:
            with _bomb_guard(max_pixels):
                img = Image.open(fp)  # reads the header only
        except UnidentifiedImageError as exc:
            raise ImageError(f"{name} is not an image Pillow can read (PNG, JPEG, WebP, GIF, BMP, TIFF).") from exc
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{name} is refused as a decompression bomb: {exc}") from exc
        except OSError as exc:
            raise ImageError(
                f"{name} could not be opened ({exc}); it is damaged or truncated: re-export it or try another file."
            ) from exc
    _check_pixels(img, name, max_pixels)
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img) or img
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is corrupt or truncated ({exc}); re-export it or try another file.") from exc
    return _to_rgb(img)


class _bomb_guard:
    """Let our own limit decide, so the error names `limits.max_image_pixels` rather than Pillow's."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels

    def __enter__(self) -> None:
        from PIL import Image

        self.saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None

    def __exit__(self, *exc: object) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = self.saved


def _check_pixels(img: "PILImage.Image", name: str, max_pixels: int) -> None:
    width, height = img.size
    pixels = width * height
    if pixels > max_pixels:
        size, limit = _pixel_counts(pixels, max_pixels)
        raise ImageError(
            f"{name} is {width}×{height} px ({size}), over the {limit} limit; "
            "resize it or raise `limits.max_image_pixels`."
        )


def _pixel_counts(pixels: int, limit: int) -> tuple[str, str]:
    """Image size and limit in one unit, never rounded so far that they read as equal (or as 0 Mpx).

    Megapixels when the limit is at least 1 Mpx (whole numbers from 10 Mpx up, one decimal below), plain
    pixel counts otherwise or when the rounded numbers would read the same.
    """
    def mpx(n: int) -> str:
        value = f"{n / 1e6:.0f}" if n >= 10_000_000 else f"{n / 1e6:.1f}".removesuffix(".0")
        return f"{value} Mpx"

    if limit >= 1_000_000 and mpx(pixels) != mpx(limit):
        return mpx(pixels), mpx(limit)
    return f"{pixels:,} px", f"{limit:,} px"


def _to_rgb(img: "PILImage.Image") -> "PILImage.Image":
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.astype("uint8"), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        background.alpha_composite(img.convert("RGBA"))
        img = background
    return img.convert("RGB")


def guess_mime(path: str | Path) -> str:
    """MIME type from a file name, for tools that declare what they accept."""
    import mimetypes

    mime, _ = mimetypes.guess_type(str(path))
    return mime or "application/octet-stream"
