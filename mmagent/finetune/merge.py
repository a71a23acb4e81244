"""Merging an adapter into its base safely: merge in full precision, optionally requantize, and refuse
to write a merged model that no longer behaves like base + adapter.

The base is always reloaded from its unquantized checkpoint (a 4-bit base is never merged in place);
the check compares the candidate with the unmerged base + adapter on a probe set: greedy token
agreement and the mean KL divergence of next-token distributions along the reference answers.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmagent.errors import MMAgentError

PROBES = [
    ("What is in this picture?", "cat.jpg"),
    ("Describe the colours in this image.", "coffee.jpg"),
    ("Write one sentence about the weather.", None),
    ("What is the capital of France?", None),
]


@dataclass(frozen=True)
class MergeCheck:
    token_agreement: float  # share of reference answer tokens the candidate reproduces greedily
    mean_kl: float  # mean KL(reference || candidate) over the reference answers' positions
    probes: int
    passed: bool


def _probe_inputs(backend: Any) -> list[Any]:
    from importlib.resources import files

    assets = files("mmagent.assets")
    inputs = []
    for question, image in PROBES:
        if image and not backend.vision:
            continue
        content: list[dict] = [{"type": "image", "image": str(assets.joinpath(image))}] if image else []
        content.append({"type": "text", "text": question})
        inputs.append(backend.prepare([{"role": "user", "content": content}]))
    return inputs


def check_merge(reference: Any, candidate: Any, probe_inputs: list[Any], max_new_tokens: int = 16,
                min_agreement: float = 0.9, max_kl: float = 0.05) -> MergeCheck:
    """Compare `candidate` with `reference` (both callable models) on the probes."""
    import torch

    agree, total, kls = 0, 0, []
    with torch.no_grad():
        for inputs in probe_inputs:
            prompt_len = inputs["input_ids"].shape[1]
            ref = reference.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            cand = candidate.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            ref_new, cand_new = ref[0, prompt_len:], cand[0, prompt_len:]
            n = min(len(ref_new), len(cand_new))
            agree += int((ref_new[:n] == cand_new[:n]).sum())
            total += len(ref_new)
            teacher = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
            mask = torch.ones_like(ref)
            p = reference(input_ids=ref, attention_mask=mask, **teacher).logits[0, prompt_len - 1:-1].float().log_softmax(-1)
            q = candidate(input_ids=ref, attention_mask=mask, **teacher).logits[0, prompt_len - 1:-1].float().log_softmax(-1)
            kls.append(float((p.exp() * (p - q)).sum(-1).mean()))
    agreement = agree / max(total, 1)
    mean_kl = sum(kls) / max(len(kls), 1)
    return MergeCheck(round(agreement, 4), round(mean_kl, 6), len(probe_inputs),
                      agreement >= min_agreement and mean_kl <= max_kl)


def merge_adapter(backend: Any, adapter_dir: str | Path, out_dir: str | Path, requantize: str = "none",
                  force: bool = False, min_agreement: float = 0.9, max_kl: float = 0.05) -> MergeCheck:
    """Write base+adapter merged (and optionally requantized) to `out_dir`, if it passes the check."""
    import copy

    from peft import PeftModel

    from mmagent.model.backend import HFVisionBackend
    from mmagent.model.default_vlm import vision  # noqa: F401  registers the embedded tower

    full_precision = HFVisionBackend(backend.config, model_config=_unquantized(backend.model_config))
    probes = _probe_inputs(full_precision)
    reference = PeftModel.from_pretrained(copy.deepcopy(full_precision.model), str(adapter_dir)).eval()
    merged = PeftModel.from_pretrained(full_precision.model, str(adapter_dir)).merge_and_unload().eval()
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    full_precision.processor.save_pretrained(tmp)
    candidate = merged
    if requantize != "none":
        candidate = HFVisionBackend(backend.config, model_config=_with(backend.model_config, id=str(tmp),
                                                                        quantization=requantize)).model
    result = check_merge(reference, candidate, probes, min_agreement=min_agreement, max_kl=max_kl)
    if not result.passed and not force:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MMAgentError(
            f"the merged model departs from base + adapter (token agreement {result.token_agreement:.1%}, "
            f"mean KL {result.mean_kl:.4f}; limits {min_agreement:.0%} and {max_kl}); nothing was written. "
            "Serve the adapter unmerged, try without requantization, or pass --force."
        )
    manifest = {"merged_from": {"base": backend.model_config.id, "adapter": str(adapter_dir)},
                "requantize": requantize, "check": asdict(result)}
    adapter_manifest = Path(adapter_dir) / "mmagent_adapter.json"
    if adapter_manifest.is_file():
        manifest["adapter_manifest"] = json.loads(adapter_manifest.read_text())
    (tmp / "mmagent_merge.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return result


def _with(model_config: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(model_config, **changes)


def _unquantized(model_config: Any) -> Any:
    return _with(model_config, quantization="none")
