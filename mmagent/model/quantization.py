"""Choosing how weights are held: full precision, or bitsandbytes int8 / nf4.

bitsandbytes 0.50 has CPU kernels for both, so CPU is a supported device; where a device or build
cannot (Apple MPS, a bitsandbytes that fails to import), we say so in one warning and load the full
precision weights instead. The language model is quantized; the vision tower, the projector and the
output head stay in the compute dtype (they are small, and quantizing them hurts most).
"""

from __future__ import annotations

from pathlib import Path

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


def quiet_bitsandbytes_import() -> None:
    """bitsandbytes 0.50 looks for an optional faster CPU 4-bit kernel from the Hugging Face hub (the `kernels`
    package) when it is imported, and logs a WARNING on every import when it is absent. Its built-in CPU
    kernels work, and fetching code from a hub at run time is what an offline install must not do: noise.
    (transformers imports bitsandbytes on its own, e.g. for sentence-transformers, so the CLI calls this early.)"""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


quiet_bitsandbytes_import()

# transformers matches these as regexes from the start of a module's full name (or as suffixes).
SKIP_MODULES = [
    r".*vision_tower", r".*vision_model", r".*visual", r".*multi_modal_projector", r".*mm_projector", r".*connector",
    "lm_head",
]


@dataclass(frozen=True)
class QuantizationPlan:
    requested: str
    active: str  # what will really be used: none | 8bit | 4bit
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None

    def precision(self, dtype_name: str) -> str:
        if self.active == "8bit":
            return f"int8 (bitsandbytes LLM.int8; vision tower, projector, lm_head in {dtype_name})"
        if self.active == "4bit":
            return f"nf4 (bitsandbytes, compute {dtype_name}; vision tower, projector, lm_head in {dtype_name})"
        return dtype_name


class _OnceFilter(logging.Filter):
    """bitsandbytes logs its int8 input cast on every matmul; keep the first one only."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "inputs will be cast" not in record.getMessage():
            return True
        first, _OnceFilter.seen = not _OnceFilter.seen, True
        return first


def pin_4bit_weights(model) -> int:
    """Keep bitsandbytes from repacking 4-bit weights for its AVX512-BF16 CPU kernel.

    bitsandbytes 0.50 repacks each Linear4bit on its first CPU inference call, and unpacks it again
    whenever `state_dict()` runs (peft does when loading an adapter); the round trip changes the
    quantization constants (measured: logits move by up to 0.05 on a tiny model), so the base model
    would drift each time an adapter is loaded. Returns how many layers were pinned.
    """
    import bitsandbytes as bnb

    pinned = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            pinned += 1
    return pinned


def resolve_device(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), where bf16 matmuls run natively."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(requested: str, device: str, embedded: bool = False):
    """The compute dtype for `requested` ("auto" or a torch dtype name).

    "auto" is bfloat16 on a GPU that supports it, and on a CPU with bfloat16 instructions for the embedded
    models, where it was measured fastest at every size (benchmarks/model_select.py: Qwen2.5-Coder-0.5B first
    token 1.12 s vs 2.70 s in float32, decode 8.9 vs 5.8 tok/s). Other models keep float32 on a CPU: their
    bf16 speed and quality are unmeasured here, and float32 is what the hub checkpoints were checked in."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device == "cpu" and embedded and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def bitsandbytes_status(device: str) -> tuple[bool, str]:
    """Whether bitsandbytes can quantize on this device, and a one-line reason."""
    if device == "mps":
        return False, "bitsandbytes has no Apple MPS backend"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # broken builds raise more than ImportError
        return False, f"bitsandbytes is unavailable ({type(exc).__name__}: {exc})"
    return True, f"bitsandbytes {bitsandbytes.__version__} supports {device}"


def plan_quantization(requested: str, device: str, dtype) -> QuantizationPlan:
    if requested == "none":
        return QuantizationPlan(requested, "none")
    ok, reason = bitsandbytes_status(device)
    if not ok:
        warning = f"quantization {requested} is not possible here: {reason}; loading {str(dtype).removeprefix('torch.')} instead"
        return QuantizationPlan(requested, "none", warning=warning)
    from transformers import BitsAndBytesConfig

    logging.getLogger("bitsandbytes.autograd._functions").addFilter(_OnceFilter())
    if requested == "8bit":
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=SKIP_MODULES)
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=False,
            llm_int8_skip_modules=SKIP_MODULES,
        )
    return QuantizationPlan(requested, requested, {"quantization_config": config, "device_map": device})
