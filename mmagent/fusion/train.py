"""Train a fusion classifier from a `fusion-classifier` recipe.

A plain loop rather than transformers' Trainer: the model is a few hundred thousand parameters over
cached feature tensors already in memory, so there is no dataloader, no device placement, no mixed
precision or distributed setup for Trainer to manage — its per-step overhead would be larger than a
step. The loop still does what a user expects of a training run: seeded, a progress bar with loss,
accuracy and ETA, validation each epoch, early stopping, a checkpoint each epoch (``--resume``
continues from it), metrics logged as JSON lines and CSV, and the best epoch saved as the classifier.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmagent.errors import ConfigError
from mmagent.fusion.data import Example, blind_baseline, easy_vqa_labels, load_source, split_by_image
from mmagent.fusion.encoders import ImageEncoder, TextEncoder
from mmagent.fusion.features import EncodedData, encode_examples
from mmagent.fusion.model import (
    FusionModel,
    Manifest,
    build_encoders,
    build_model,
    load_weights,
    save_classifier,
)
from mmagent.fusion.recipe import FusionRecipe

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
EVAL_BATCH = 512


@dataclass
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: list[str]


@dataclass
class TrainResult:
    """Where the classifier went and how it did (accuracies 0-1; seconds of wall-clock time)."""

    output_dir: Path
    mode: str
    best_epoch: int
    validation_accuracy: float
    test_accuracy: float | None
    blind_baseline: float | None
    train_seconds: float
    feature_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    test_per_category: dict[str, float] = field(default_factory=dict)  # easy-vqa: shape, colour, yes/no
    stopped: str | None = None  # why training ended before train.epochs with more to learn (resume continues)


def load_splits(recipe: FusionRecipe) -> Splits:
    """Train/validation/test examples and the label set (easy-vqa: its 13 answers, sorted)."""
    data = recipe.data
    train = load_source(data.train, data.limit, recipe.seed)
    if data.validation:
        validation = load_source(data.validation, 0, recipe.seed)
    else:
        train, validation = split_by_image(train, data.validation_fraction, recipe.seed)
    test = load_source(data.test, data.test_limit, recipe.seed) if data.test else []
    if data.train.startswith("easy-vqa"):
        labels = easy_vqa_labels()
    else:
        labels = sorted({e.label for e in train})
    if len(labels) < 2:
        raise ConfigError(f"training data {data.train} has {len(labels)} distinct label(s); a classifier needs ≥ 2.")
    return Splits(train, validation, test, labels)


def data_hash(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.text}\0{Path(e.image).name}\0{e.label}\n".encode())
    return h.hexdigest()[:16]


@torch.inference_mode()
def predict_logits(model: FusionModel, data: EncodedData, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    model.eval()
    out = [model(*data.batch(torch.arange(s, min(s + batch_size, len(data))))[:2])
           for s in range(0, len(data), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean()) if len(labels) else 0.0


def train(recipe: FusionRecipe, resume: bool = False, progress: bool = True,
          encoders: tuple[TextEncoder, ImageEncoder] | None = None) -> TrainResult:
    """Run the recipe; `encoders` replaces the packaged ones (tests pass tiny random encoders)."""
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    out = Path(recipe.output_dir)
    if (out / CHECKPOINT).is_file() and not resume:
        raise ConfigError(f"{out} already holds a training run; pass --resume to continue it, "
                          "or set output_dir to a new folder (--set output_dir=...).")
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(recipe)
    cache = recipe.resolved_cache_dir()
    text_enc, image_enc = encoders or build_encoders(asdict(recipe.encoders))
    started = time.perf_counter()
    encoded = [encode_examples(x, text_enc, image_enc, splits.labels, cache, progress)
               for x in (splits.train, splits.validation, splits.test)]
    feature_seconds = time.perf_counter() - started
    torch.manual_seed(recipe.seed)
    head_options = {k: v for k, v in asdict(recipe.fusion).items() if k != "mode"}
    model = build_model(text_enc, image_enc, recipe.fusion.mode, len(splits.labels), head_options)
    manifest = _manifest(recipe, splits, text_enc, image_enc, head_options)
    loop = _Loop(recipe, model, out, manifest, progress)
    if resume and (out / CHECKPOINT).is_file():
        _check_resumable(out, manifest)
        loop.restore()
    loop.run(encoded[0], encoded[1])
    load_weights(out, model)  # the best epoch
    test_acc, per_category = _test_scores(model, encoded[2], splits.test)
    baseline = blind_baseline(splits.train, splits.test) if splits.test else None
    result = TrainResult(out, recipe.fusion.mode, loop.best_epoch, loop.best_acc, test_acc, baseline,
                         loop.train_seconds, feature_seconds, loop.history, per_category, loop.stopped())
    manifest.metrics = _metrics(splits, result)
    manifest.write(out)
    return result


def _check_resumable(out: Path, manifest: Manifest) -> None:
    """A resumed run must build the same model on the same data; only the `train` section may change."""
    saved = Manifest.read(out)
    for name in ("mode", "labels", "encoders", "head", "data_hash"):
        if getattr(saved, name) != getattr(manifest, name):
            raise ConfigError(
                f"cannot resume {out}: its {name} was {getattr(saved, name)!r}, this recipe gives "
                f"{getattr(manifest, name)!r}. Resume with the same recipe (only train.* may change), "
                "or train into a new output_dir."
            )


def _test_scores(model: FusionModel, data: EncodedData, examples: Sequence[Example]) -> tuple[float | None, dict[str, float]]:
    """Test accuracy overall and per example category (question type), or (None, {}) without a test set."""
    if not examples:
        return None, {}
    hits = (predict_logits(model, data).argmax(-1) == data.labels).tolist()
    groups: dict[str, list[bool]] = {}
    for hit, example in zip(hits, examples):
        if example.qtype:
            groups.setdefault(example.qtype, []).append(hit)
    return sum(hits) / len(hits), {k: round(sum(v) / len(v), 5) for k, v in sorted(groups.items())}


def _manifest(recipe: FusionRecipe, splits: Splits, text_enc: TextEncoder, image_enc: ImageEncoder,
              head_options: dict[str, Any]) -> Manifest:
    encoders = {"text": text_enc.name, "text_max_length": text_enc.max_length,
                "text_train_last": text_enc.train_last, "image": image_enc.name, "image_size": image_enc.size,
                "image_train_last": image_enc.train_last}
    return Manifest(labels=splits.labels, mode=recipe.fusion.mode, encoders=encoders, head=head_options,
                    recipe=asdict(recipe), data_hash=data_hash(splits.train))


def _metrics(splits: Splits, result: TrainResult) -> dict[str, Any]:
    return {"best_epoch": result.best_epoch, "validation_accuracy": result.validation_accuracy,
            "test_accuracy": result.test_accuracy, "test_per_category": result.test_per_category,
            "blind_baseline": result.blind_baseline, "stopped": result.stopped,
            "train_seconds": round(result.train_seconds, 2), "feature_seconds": round(result.feature_seconds, 2),
            "train_examples": len(splits.train), "validation_examples": len(splits.validation),
            "test_examples": len(splits.test)}


class _Loop:
    """Epochs with validation, early stopping and per-epoch checkpoints; state survives a restart."""

    def __init__(self, recipe: FusionRecipe, model: FusionModel, out: Path, manifest: Manifest,
                 progress: bool) -> None:
        self.recipe, self.model, self.out, self.progress = recipe, model, out, progress
        self.manifest = manifest
        groups = [{"params": model.head_parameters(), "lr": recipe.train.lr}]
        if model.encoder_parameters():
            groups.append({"params": model.encoder_parameters(), "lr": recipe.train.encoder_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=recipe.train.weight_decay)
        self.epoch, self.best_epoch, self.best_acc, self.bad_epochs = 0, 0, -1.0, 0
        self.train_seconds, self.history = 0.0, []

    def restore(self) -> None:
        state = torch.load(self.out / CHECKPOINT, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best_epoch, self.bad_epochs = state["epoch"], state["best_epoch"], state["bad_epochs"]
        self.best_acc, self.train_seconds = state["best_acc"], state["train_seconds"]
        self.history = json.loads(state["history"])
        log.info("resuming %s after epoch %d", self.out, self.epoch)

    def checkpoint(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                 "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "best_acc": self.best_acc,
                 "train_seconds": self.train_seconds, "history": json.dumps(self.history)}
        partial = self.out / (CHECKPOINT + ".part")
        torch.save(state, partial)
        partial.replace(self.out / CHECKPOINT)

    def stopped(self) -> str | None:
        """'time budget' when train.max_minutes ended a run that still had epochs and patience left."""
        t = self.recipe.train
        if self.epoch < t.epochs and self.bad_epochs < t.patience and self.out_of_time():
            return f"time budget of train.max_minutes={t.max_minutes:g}"
        return None

    def out_of_time(self) -> bool:
        t = self.recipe.train
        return bool(t.max_minutes) and self.train_seconds >= t.max_minutes * 60

    def done(self) -> bool:
        t = self.recipe.train
        return self.epoch >= t.epochs or self.bad_epochs >= t.patience or self.out_of_time()

    def run(self, train: EncodedData, validation: EncodedData) -> None:
        while not self.done():
            started = time.perf_counter()
            loss, acc = self.train_epoch(train)
            self.train_seconds += time.perf_counter() - started
            val_acc = accuracy(predict_logits(self.model, validation), validation.labels)
            self.epoch += 1
            row = {"epoch": self.epoch, "loss": round(loss, 5), "train_accuracy": round(acc, 5),
                   "validation_accuracy": round(val_acc, 5), "seconds": round(self.train_seconds, 2)}
            self.history.append(row)
            self._log(row)
            if val_acc > self.best_acc:
                self.best_acc, self.best_epoch, self.bad_epochs = val_acc, self.epoch, 0
                save_classifier(self.out, self.model, self.manifest)
            else:
                self.bad_epochs += 1
            self.checkpoint()

    def train_epoch(self, data: EncodedData) -> tuple[float, float]:
        from tqdm.auto import tqdm

        torch.manual_seed(self.recipe.seed * 1000 + self.epoch)  # dropout and order repeat on --resume
        order = torch.randperm(len(data))
        size = self.recipe.train.batch_size
        self.model.train()
        total_loss, hits, seen = 0.0, 0, 0
        bar = tqdm(range(0, len(data), size), desc=f"epoch {self.epoch + 1}/{self.recipe.train.epochs}",
                   unit="step", disable=not self.progress, leave=False)
        for start in bar:
            text, maps, labels = data.batch(order[start:start + size])
            logits = self.model(text, maps)
            loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-1)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total_loss += float(loss.detach()) * len(labels)
            hits += int((logits.argmax(-1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{hits / seen:.3f}")
        return total_loss / max(seen, 1), hits / max(seen, 1)

    def _log(self, row: dict[str, Any]) -> None:
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        path = self.out / "metrics.csv"
        new = not path.is_file()
        with path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"epoch {row['epoch']}: loss {row['loss']:.4f}  train acc {row['train_accuracy']:.4f}  "
                       f"val acc {row['validation_accuracy']:.4f}  ({row['seconds']:.0f} s)")
        log.info("epoch %d: %s", row["epoch"], row)
