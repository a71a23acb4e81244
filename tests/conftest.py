"""Shared fixtures. The network is blocked for every test by pytest-socket (see pyproject addopts);
only loopback is allowed, for servers the tests start themselves."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
def shared_data() -> Path:
    """../shared/data beside the repository (CI clones it there), or $MMAGENT_SHARED_DATA."""
    path = Path(os.environ.get("MMAGENT_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        missing(f"shared test data not found at {path}; set MMAGENT_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def jfk_flac(shared_data: Path) -> Path:
    return shared_data / "audio" / "jfk.flac"


@pytest.fixture(scope="session")
def cat_photo() -> Path:
    return REPO / "mmagent" / "assets" / "cat.jpg"


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The user cache the embedded default models are assembled into (shared across the test session)."""
    from mmagent.config import PathsConfig

    return Path(os.environ.get("MMAGENT_PATHS_CACHE") or PathsConfig().cache)
