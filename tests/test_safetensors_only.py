"""Safetensors only by default: a model or adapter saved only as a pickled .bin (which runs code when it is
loaded) is refused with a sentence naming the opt-in, and loads when the user opts in."""

from __future__ import annotations

import shutil

import pytest
from conftest import tiny_config

from mmagent.errors import MMAgentError


def _pickled_copy(src, dst):
    """`src` re-saved with torch.save weights only (what an old or hostile checkpoint looks like)."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(src, dst)
    for st in dst.glob("*.safetensors"):
        name = "pytorch_model.bin" if st.name == "model.safetensors" else st.name.replace(".safetensors", ".bin")
        torch.save(load_file(st), dst / name)
        st.unlink()
    return dst


def test_a_pickled_model_is_refused_unless_allowed(tiny_llava_dir, tmp_path):
    from mmagent.model.backend import HFVisionBackend

    pickled = _pickled_copy(tiny_llava_dir, tmp_path / "pickled")
    with pytest.raises(MMAgentError, match="safetensors weights only .* model.allow_pickle: true"):
        HFVisionBackend(tiny_config(pickled))
    backend = HFVisionBackend(tiny_config(pickled, **{"model.allow_pickle": True}))
    assert isinstance(backend.complete([{"role": "user", "content": "hi"}], max_new_tokens=2), str)


def test_a_pickled_adapter_is_refused_unless_allowed(tiny_llava_dir, tiny_adapters, tmp_path):
    from mmagent.model.adapters import AdapterError
    from mmagent.model.backend import HFVisionBackend

    pickled = _pickled_copy(tiny_adapters["a"], tmp_path / "a-pickled")
    assert (pickled / "adapter_model.bin").is_file() and not (pickled / "adapter_model.safetensors").exists()
    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    with pytest.raises(AdapterError, match="no adapter_model.safetensors .* model.allow_pickle: true"):
        backend.adapters.load("a", pickled)
    trusting = HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.allow_pickle": True}))
    assert trusting.adapters.load("a", pickled).name == "a"
