"""The run manifest: everything that decides a run's numbers (model, adapter, template, processor,
quantization, decoding, data, libraries, seed), so two runs can be compared field by field."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from mmagent.evals.suite import Suite, sha256_file, sha256_tree

LIBRARIES = ("mmagent", "torch", "transformers", "peft", "bitsandbytes", "faster-whisper", "chromadb",
             "sentence-transformers", "jiwer", "rouge-score")
MODEL_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
               "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json")


def library_versions() -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> Optional[str]:
    """The checkout's commit (with '+dirty' when it has local changes), or None outside git."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def model_section(backend: Any, adapter: Optional[str]) -> dict[str, Any]:
    """Model id/path/precision/template hash, hashes of its config and processor files, and the adapter."""
    info = backend.info()
    path = Path(info.path) if info.path else None
    files = {}
    if path is not None and path.is_dir():
        files = {name: sha256_file(path / name) for name in MODEL_FILES if (path / name).is_file()}
    out: dict[str, Any] = {
        "model_id": info.model_id,
        "model_path": info.path,
        "architecture": info.architecture,
        "parameters": info.parameters,
        "precision": info.precision,
        "quantization": info.quantization,
        "device": info.device,
        "chat_template_hash": info.chat_template_hash,
        "model_files_sha256": files,
        "adapter": adapter,
        "adapter_path": None,
        "adapter_sha256": None,
    }
    if adapter is not None:
        adapter_info = backend.adapters.info(adapter)
        out["adapter_path"] = adapter_info.path
        local = Path(adapter_info.path)
        out["adapter_sha256"] = sha256_tree(local) if local.exists() else None  # a remote model's adapter: its server's
    return out


def asr_section(config: Any) -> dict[str, Any]:
    asr = config.asr
    return {"asr_model": asr.model, "asr_compute_type": asr.compute_type, "asr_beam_size": asr.beam_size}


def build_manifest(suite: Suite, *, model: Optional[dict[str, Any]], config: Any, seed: int,
                   limit: Optional[int], settings_hash: str, media_sha256: Optional[str]) -> dict[str, Any]:
    """The manifest dict written to ``manifest.json``."""
    return {
        "suite": suite.name,
        "suite_file": str(suite.path),
        "suite_sha256": sha256_file(suite.path),
        "task": suite.task,
        "call": suite.call,
        "metric": suite.metric,
        "decoding": dict(suite.decoding),
        "prompt": {"system": suite.prompt.system, "user": suite.prompt.user},
        "data_files": {str(p): sha256_tree(Path(p)) for p in suite.data_files()},
        "media_sha256": media_sha256,
        **(model or {"model_id": None, "adapter": None}),
        **(asr_section(config) if suite.call in ("asr", "flow:qa") else {}),
        "embedder": config.memory.embedder if suite.call in ("memory", "flow:qa") else None,
        "seed": seed,
        "limit": limit,
        "settings_hash": settings_hash,
        "libraries": library_versions(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }
