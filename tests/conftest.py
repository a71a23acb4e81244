"""Shared fixtures. The network is blocked for every test by pytest-socket (see pyproject addopts);
only loopback is allowed, for servers the tests start themselves."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip locally, fail in CI: a CI run must not hide a missing install step behind a skip."""
    if IN_CI:
        pytest.fail(f"CI is missing a prerequisite: {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        missing(f"the program '{name}' is not installed (apt-get install {name}); .ci/run installs it")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def jfk_flac() -> Path:
    """11 s of real speech shipped with the repository (tests/data/README.md: source and licence)."""
    return REPO / "tests" / "data" / "jfk.flac"


@pytest.fixture(scope="session")
def cat_photo() -> Path:
    return REPO / "mmagent" / "assets" / "cat.jpg"


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The user cache the embedded default models are assembled into (shared across the test session)."""
    from mmagent.config import PathsConfig

    return Path(os.environ.get("MMAGENT_PATHS_CACHE") or PathsConfig().cache)


# ---- models ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    from helpers.tiny import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    from helpers.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_adapters(tiny_llava_dir, tmp_path_factory) -> dict[str, Path]:
    from helpers.tiny import build_lora_adapter

    root = tmp_path_factory.mktemp("adapters")
    return {name: build_lora_adapter(tiny_llava_dir, root / name, seed) for name, seed in (("a", 1), ("b", 2))}


def tiny_config(model_dir: Path, **overrides):
    from mmagent.config import load_config

    values = {"model.id": str(model_dir), "model.max_new_tokens": 12, "model.repetition_penalty": 1.0}
    values.update(overrides)
    return load_config(overrides=values, env={})


SMALL_MODEL = "smollm2-135m"  # the smallest embedded model: the vision side's mechanics are tested on it


@pytest.fixture(scope="session")
def small_model_dir(cache_dir) -> Path:
    """The smallest embedded VLM (SmolLM2-135M + the shared vision side), assembled into the user cache if
    this machine has none yet (~30 s). Tests of the vision side, adapters and surfaces run on it; the default
    model's own answers are tested in test_default_choice.py."""
    from mmagent.model.default_vlm.build import ensure_model

    return ensure_model(SMALL_MODEL, cache_dir)


@pytest.fixture(scope="session")
def small_backend(small_model_dir, cache_dir):
    from mmagent.config import load_config
    from mmagent.model import load_backend

    return load_backend(load_config(overrides={"paths.cache": str(cache_dir), "model.id": f"embedded:{SMALL_MODEL}"},
                                    env={}))
