"""Every surface decodes images through mmagent.images.load_image."""

import io

import numpy as np
import pytest
from PIL import Image

from mmagent.errors import ImageError
from mmagent.images import load_image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_path_bytes_and_pil_give_the_same_pixels(cat_photo):
    from_path = load_image(cat_photo)
    from_bytes = load_image(cat_photo.read_bytes())
    from_pil = load_image(Image.open(cat_photo))
    assert from_path.mode == "RGB" and from_path.size == (451, 300)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_bytes))
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _png(img, format="JPEG", exif=exif.tobytes())
    assert load_image(data).size == (20, 40)


def test_rgba_is_composited_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(_png(img)).getpixel((0, 0)) == (255, 255, 255)


def test_palette_grayscale_and_16_bit():
    assert load_image(_png(Image.new("P", (4, 4), 3))).mode == "RGB"
    assert load_image(_png(Image.new("L", (4, 4), 128))).getpixel((0, 0)) == (128, 128, 128)
    ramp = Image.fromarray((np.arange(16, dtype=np.uint16) * 4000).reshape(4, 4))
    assert ramp.mode.startswith("I;16")
    out = load_image(_png(ramp))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((3, 3)) == (255, 255, 255)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert load_image(buf.getvalue()).getpixel((0, 0))[0] > 200


def test_pixel_limit_is_checked_before_decoding():
    big = _png(Image.new("L", (3000, 3000)))
    with pytest.raises(ImageError, match=r"3000×3000 px .* over the 4 Mpx limit; resize it or raise `limits.max_image_pixels`"):
        load_image(big, max_pixels=4_000_000)


def test_corrupt_and_non_images_get_clear_errors(tmp_path, cat_photo):
    truncated = tmp_path / "broken.jpg"
    truncated.write_bytes(cat_photo.read_bytes()[:2000])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(truncated)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="is not an image Pillow can read"):
        load_image(text)
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
