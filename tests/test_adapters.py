"""Adapter contract: switching adapters on one resident base equals fresh loads, token for token."""

import pytest
from conftest import tiny_config

from mmagent.errors import AdapterError
from mmagent.model.backend import HFVisionBackend

PROMPT = [{"role": "user", "content": "What is in this picture? Describe the image."}]


def tokens(backend, cat_photo, **kw):
    return backend.generate_ids(PROMPT, images=[cat_photo], max_new_tokens=12, **kw)


@pytest.fixture(scope="module")
def fresh(tiny_llava_dir, tiny_adapters, cat_photo):
    """Answers of separate fresh loads: base alone, base+A, base+B."""
    out = {"base": tokens(HFVisionBackend(tiny_config(tiny_llava_dir)), cat_photo)}
    for name, path in tiny_adapters.items():
        cfg = tiny_config(tiny_llava_dir)
        cfg.adapters[name] = str(path)
        out[name] = tokens(HFVisionBackend(cfg), cat_photo, adapter=name)
    return out


def test_switching_equals_fresh_loads(tiny_llava_dir, tiny_adapters, cat_photo, fresh):
    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    assert tokens(backend, cat_photo) == fresh["base"]
    base_parameters = backend.info().parameters
    for name, path in tiny_adapters.items():
        backend.adapters.load(name, path)
    assert backend.info().parameters > base_parameters  # the count is cached per set of adapters, not stale
    assert len({tuple(fresh[k]) for k in ("a", "b", "base")}) == 3  # the adapters really change the model
    for order in (["a", "b", None, "a"], [None, "b", "a", None]):
        for name in order:
            assert tokens(backend, cat_photo, adapter=name) == fresh[name or "base"], name
    assert tokens(backend, cat_photo, adapter="b") == fresh["b"]
    assert tokens(backend, cat_photo) == fresh["base"]  # no adapter= is the base, whatever ran before
    backend.adapters.unload("b")
    assert tokens(backend, cat_photo) == fresh["base"]
    backend.adapters.unload("a")
    assert backend.adapters.names == () and backend.info().parameters == base_parameters
    assert tokens(backend, cat_photo) == fresh["base"]  # unloading never merged anything


def test_unknown_adapter_and_bad_directory(tiny_llava_dir, tmp_path, cat_photo):
    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    with pytest.raises(AdapterError, match="unknown adapter 'nope'; loaded adapters: none"):
        backend.generate(PROMPT, adapter="nope")
    with pytest.raises(AdapterError, match="not a peft adapter directory"):
        backend.adapters.load("x", tmp_path)


def test_adapters_on_a_4bit_base_never_merge(tiny_llava_dir, tiny_adapters, cat_photo):
    import bitsandbytes as bnb

    backend = HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.quantization": "4bit"}))
    base_answer = tokens(backend, cat_photo)
    q_proj = backend.model.model.language_model.layers[0].self_attn.q_proj
    packed = q_proj.weight.data.clone()
    backend.adapters.load("a", tiny_adapters["a"])
    assert tokens(backend, cat_photo, adapter="a") != base_answer
    wrapped = backend.adapters.model.base_model.model.model.language_model.layers[0].self_attn.q_proj
    assert isinstance(wrapped.base_layer, bnb.nn.Linear4bit)
    assert (wrapped.base_layer.weight.data == packed).all()  # the 4-bit weights are untouched
    assert tokens(backend, cat_photo, adapter=None) == base_answer


def test_template_mismatch_warns_loudly(tiny_llava_dir, tiny_adapters, caplog, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(tiny_adapters["a"], copy)
    (copy / "mmagent_adapter.json").write_text(json.dumps({"template_hash": "0000000000000000"}))
    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    backend.adapters.load("old", copy)
    assert "WAS TRAINED WITH CHAT TEMPLATE 0000000000000000" in caplog.text
