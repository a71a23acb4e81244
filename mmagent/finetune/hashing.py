"""Content hashes for manifests: which base weights an adapter was trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path


def model_hash(path: str | Path) -> str:
    """sha256 over a model directory's config and weight files (first 16 hex digits); a hub id hashes as text."""
    folder = Path(path)
    digest = hashlib.sha256()
    if not folder.is_dir():
        digest.update(str(path).encode())
        return digest.hexdigest()[:16]
    for file in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("config.json")):
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
