"""What a training result depends on beyond the recipe, recorded in the adapter manifest.

The same recipe and seed give the same weights bit for bit only where the floating-point work is done in
the same order: same library versions, same kernels (oneDNN and MKL pick them per CPU instruction set at
run time), same thread count (reductions are split per thread). Recording these next to the weights' hash
lets a rerun elsewhere tell "different machine" from "different result".
"""

from __future__ import annotations

import hashlib
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "numpy")
# CPU features that change which kernels run (AVX2 vs AVX-512 FMA blocking, native bf16 and AMX matmuls).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
# Environment variables that override thread counts or kernel choice.
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
            "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu() -> tuple[str, list[str]]:
    """The CPU's model name and which of CPU_FLAGS it has ('' and [] where /proc/cpuinfo is missing)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor(), []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return name, [flag for flag in CPU_FLAGS if flag in flags]


def pin_threads(threads: int) -> None:
    """Use exactly `threads` torch CPU threads (0 leaves torch's default: one per core)."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def training_environment(device: str) -> dict[str, Any]:
    """Versions, device, CPU model and instruction sets, kernel level, thread count, determinism setting."""
    import torch

    cpu, flags = _cpu()
    return {
        "packages": {name: v for name in PACKAGES if (v := _version(name))},
        "python": platform.python_version(),
        "device": device,
        "cpu": cpu,
        "cpu_flags": flags,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
    }


def weights_hash(folder: Path) -> str:
    """sha256 of the adapter's tensors (first 16 hex digits): equal hashes mean bit-identical weights.

    Hashes the tensors, not the file, so safetensors metadata cannot make equal weights look different."""
    import torch
    from safetensors import safe_open

    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as tensors:
            for name in sorted(tensors.keys()):
                tensor = tensors.get_tensor(name).contiguous()
                digest.update(name.encode())
                digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
