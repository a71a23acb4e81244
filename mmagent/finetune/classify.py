"""LoRA recipes with `data.task: classify`: text+image classification with the VLM, as the classify flow serves it.

The data is the fusion classifier's ({text, image, label} JSONL, or `easy-vqa:SPLIT` read as question →
answer, 13 classes), so the two routes train and score on the same examples. Each example becomes the
conversation the `classify` flow builds (its system prompt listing the labels, the fenced text, the
image) with the bare label as the assistant's reply, and held-out scoring runs the flow itself
(label log-likelihoods with contextual calibration) with and without the adapter, scored by the eval
suite's classification metrics (accuracy, macro precision / recall / F1).

`data.scoring: flow` scores exactly as served, but the flow runs one row per label twice (calibration),
so on a CPU it costs about 26 prompt-length forward passes per example; `generate` (the default) reads
the label from a greedy answer to the same prompt, one batched prefill per 16 examples.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mmagent.errors import ConfigError
from mmagent.finetune.data import Example
from mmagent.finetune.lora_recipe import LoraRecipe

log = logging.getLogger(__name__)


def _flow() -> Any:
    from mmagent.config import load_config
    from mmagent.flows.classify import ClassifyFlow

    return ClassifyFlow(load_config(env={}))  # the backend is only loaded when the flow runs


def label_set(recipe: LoraRecipe) -> list[str]:
    """The recipe's labels; else easy-vqa's 13 answers, or the labels seen in the training file."""
    from mmagent.fusion.data import easy_vqa_labels, load_source

    if recipe.data.labels:
        return list(recipe.data.labels)
    if recipe.data.train.startswith("easy-vqa"):
        return easy_vqa_labels()
    return sorted({e.label for e in load_source(recipe.data.train)})


def classification_examples(source: str, labels: list[str], limit: int, seed: int,
                            balance: bool = False) -> list[Example]:
    """{text, image, label} rows as classify-flow conversations answered by the label; `balance` draws the
    rows evenly across question types (see `balance_categories`)."""
    import random

    from mmagent.finetune.data import balance_categories
    from mmagent.flows.classify import ClassifyRequest
    from mmagent.fusion.data import load_source
    from mmagent.model.base import attach_images

    rows = load_source(source, 0 if balance else limit, seed)
    if balance:
        random.Random(seed).shuffle(rows)
        rows = balance_categories(rows, limit, key=lambda row: row.qtype)
    unknown = sorted({r.label for r in rows} - set(labels))
    if unknown:
        raise ConfigError(f"{source} has labels {unknown} outside data.labels {labels}; add them or drop those rows.")
    flow, out = _flow(), []
    for number, row in enumerate(rows, start=1):
        state = flow.start(ClassifyRequest(list(labels), row.text, row.image))
        messages = attach_images(flow.messages(state), [row.image] if row.image else [])
        messages.append({"role": "assistant", "content": row.label})
        out.append(Example(messages, number, row.qtype, {"text": row.text, "image": row.image, "label": row.label}))
    return out


def evaluate_classifier(recipe: LoraRecipe, adapter_dir: Path, train: list[Example], held_out: list[Example],
                        labels: list[str], progress: bool = True) -> dict[str, Any]:
    """Classification metrics (0-1) of the classify flow with the adapter, without it, and the blind baseline."""
    from tqdm.auto import tqdm

    from mmagent.evals.metrics.classification import score_classification
    from mmagent.finetune.heldout import paired_difference, recipe_backend
    from mmagent.flows.classify import ClassifyFlow, ClassifyRequest

    backend = recipe_backend(recipe)
    backend.adapters.load("trained", adapter_dir)
    flow = ClassifyFlow(backend=backend)
    flow.config.flows.classifier = None  # score with the VLM even if the config names a fusion classifier
    references = {str(i): e.meta["label"] for i, e in enumerate(held_out)}
    arms = [("adapter", "trained")] + ([("base", None)] if recipe.data.compare_base else [])
    scores: dict[str, Any] = {"scoring": recipe.data.scoring}
    arm_predictions: dict[str, dict[str, str]] = {}
    for arm, adapter in arms:
        if recipe.data.scoring == "flow":
            predictions = {}
            for i, e in enumerate(tqdm(held_out, desc=f"scoring {arm}", disable=not progress, unit="ex")):
                request = ClassifyRequest(list(labels), e.meta["text"], e.meta["image"], adapter=adapter)
                predictions[str(i)] = flow.predict(request).label
        else:
            predictions = dict(zip(references, _generated_labels(backend, held_out, labels, adapter, progress)))
        scores[arm] = _summary(score_classification(references, predictions), held_out, predictions)
        arm_predictions[arm] = predictions
    if recipe.data.compare_base:
        blind = dict(zip(references, blind_predictions(train, held_out)))
        scores["blind_baseline"] = _summary(score_classification(references, blind), held_out, blind)
        arm_predictions["blind_baseline"] = blind
        hits = {arm: _hits(held_out, p) for arm, p in arm_predictions.items()}
        for other in ("base", "blind_baseline"):
            scores[f"adapter_vs_{other}"] = paired_difference(hits["adapter"], hits[other])
    (adapter_dir / "eval_results.json").write_text(json.dumps(scores, indent=2))
    return scores


def _hits(held_out: list[Example], predictions: dict[str, str]) -> dict[str, list[int]]:
    """1/0 per example (keys as in `references`), overall and per category."""
    from mmagent.finetune.heldout import hits_by_category

    return hits_by_category((predictions[str(i)] == e.meta["label"] for i, e in enumerate(held_out)), held_out)


def _generated_labels(backend: Any, held_out: list[Example], labels: list[str], adapter: str | None,
                      progress: bool) -> list[str]:
    """Greedy answers to the classify prompt, read as the label they start with (anything else is wrong)."""
    from tqdm.auto import tqdm

    questions = [[m for m in e.messages if m["role"] != "assistant"] for e in held_out]
    longest_first = sorted(labels, key=len, reverse=True)
    out = []
    for i in tqdm(range(0, len(questions), 16), desc=f"scoring {adapter or 'base'}", disable=not progress, unit="batch"):
        for text in backend.generate_batch(questions[i:i + 16], adapter=adapter, max_new_tokens=6, repetition_penalty=1.0):
            answer = text.strip().lower()
            out.append(next((label for label in longest_first if answer.startswith(label.lower())), answer))
    return out


def blind_predictions(train: list[Example], held_out: list[Example]) -> list[str]:
    """What a model reading only the text answers: one implementation, mmagent.fusion.data.blind_predictions
    (each question's most common training label, else its category's, else the overall one)."""
    from mmagent.fusion.data import Example as Row
    from mmagent.fusion.data import blind_predictions as blind

    def rows(examples: list[Example]) -> list[Row]:
        return [Row(str(i), e.meta["text"], e.meta["image"], e.meta["label"], e.category) for i, e in enumerate(examples)]

    return blind(rows(train), rows(held_out))


def _summary(result: Any, held_out: list[Example], predictions: dict[str, str]) -> dict[str, Any]:
    """Macro metrics plus accuracy per category (easy-vqa: shape / colour / yes-no)."""
    out: dict[str, Any] = {k: round(v, 4) for k, v in result.metrics().items()}
    hits = _hits(held_out, predictions)
    out["accuracy_by_category"] = {k: round(sum(v) / len(v), 4) for k, v in hits.items() if k != "all"}
    return out
