"""`limits.max_image_pixels` as a caller sets it: enforced per configuration on the shared backend, and
reported with numbers a person can compare (issue 17, bug 2)."""

import io

import pytest
from conftest import tiny_config
from PIL import Image

from mmagent.errors import ImageError
from mmagent.images import load_image


def _png(width, height):
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "size, limit, expected",
    [
        ((512, 512), 10_000, "512×512 px (262,144 px), over the 10,000 px limit"),  # was "(0 Mpx), over the 0 Mpx"
        ((1600, 1000), 1_500_000, "(1.6 Mpx), over the 1.5 Mpx limit"),
        ((1010, 1000), 1_000_000, "(1,010,000 px), over the 1,000,000 px limit"),  # "1 Mpx over the 1 Mpx limit" reads as no excess
        ((4000, 4000), 15_000_000, "(16 Mpx), over the 15 Mpx limit"),
    ],
)
def test_the_limit_message_keeps_the_numbers_apart(size, limit, expected):
    with pytest.raises(ImageError) as info:
        load_image(_png(*size), max_pixels=limit)
    assert expected in str(info.value)


def test_a_second_configuration_gets_its_own_limit_on_the_same_model(tiny_llava_dir, cat_photo):
    from mmagent.model import load_backend

    roomy = load_backend(tiny_config(tiny_llava_dir))
    strict = load_backend(tiny_config(tiny_llava_dir, **{"limits.max_image_pixels": "10000"}))
    assert strict.model is roomy.model and strict.adapters is roomy.adapters  # nothing loaded twice
    assert load_backend(tiny_config(tiny_llava_dir, **{"limits.max_image_pixels": "10000"})) is strict
    message = [{"role": "user", "content": [{"type": "image", "image": str(cat_photo)}, {"type": "text", "text": "?"}]}]
    with pytest.raises(ImageError, match=r"cat\.jpg' is \d+×\d+ px \([\d,]+ px\), over the 10,000 px limit"):
        strict.expand(message)
    assert len(roomy.expand(message)[1]) == 1  # the first caller's limit is untouched
    assert load_backend(tiny_config(tiny_llava_dir)) is roomy
