"""What both LoRA tasks (`lora.py`'s answer recipes, `classify.py`'s label recipes) share when they score
an adapter on held-out data: a fresh backend on the recipe's model, per-category hits, paired differences.

It sits below both modules so neither imports the other for it (`lora.py` dispatches to `classify.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mmagent.finetune.data import Example
from mmagent.finetune.lora_recipe import LoraRecipe


def recipe_backend(recipe: LoraRecipe) -> Any:
    """A backend on the recipe's model, quantization and OCR setting, with no configured adapters.

    Training computes in float32 whatever `model.dtype: auto` picks for serving (bfloat16 on some CPUs):
    the recipes' measured results, and LoRA's small updates, were checked in float32."""
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    overrides = {"model.id": recipe.model.id, "model.quantization": recipe.model.quantization, "model.ocr": recipe.model.ocr,
                 "model.dtype": "float32"}
    config = load_config(overrides=overrides)
    config.adapters = {}
    return HFVisionBackend(config)


def hits_by_category(correct: Iterable[bool], examples: list[Example]) -> dict[str, list[int]]:
    """1/0 per example (in the order of `examples`), overall and per category."""
    hits: dict[str, list[int]] = {"all": []}
    for right, example in zip(correct, examples):
        hit = int(right)
        hits["all"].append(hit)
        hits.setdefault(example.category or "uncategorised", []).append(hit)
    return hits


def paired_difference(a: dict[str, list[int]], b: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """Per category: a − b in accuracy points with a paired-bootstrap 95% interval and p-value."""
    from mmagent.evals.metrics.bootstrap import paired_bootstrap_means

    result = {}
    for category, a_hits in a.items():
        paired = paired_bootstrap_means(a_hits, b[category], n_resamples=2000)
        result[category] = {"points": round(100 * paired.delta, 2), "low": round(100 * paired.low, 2),
                            "high": round(100 * paired.high, 2), "p_value": round(paired.p_value, 4),
                            "significant": paired.significant}
    return result
