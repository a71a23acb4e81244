"""Compare fusion classifiers (and optionally a VLM adapter) on one data split, through the eval runner.

Each classifier is one `mmagent eval` run of a generated classification suite (``call: fusion``), so
every run has the runner's results.json, manifest, bootstrap CIs, per-class scores, per-category
(question type) scores and confusion-matrix plot. This module adds the one page that puts the runs
side by side: ``comparison.md`` with a table per run and question type, and a grouped bar plot.
A VLM adapter is evaluated on the same examples with the same scorer (its generated one-word answer
is the label), usually on a ``--vlm-limit`` prefix because generation is ~100x slower.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmagent.errors import MMAgentError

log = logging.getLogger(__name__)
SUITE_NAME = "easy_vqa_fusion"


@dataclass
class RunSummary:
    """One evaluated system: accuracy and macro scores (0-1), accuracy per category, where its run is."""

    name: str
    kind: str  # "fusion" or "vlm"
    out: Path
    count: int
    metrics: dict[str, float]
    per_category: dict[str, float]
    train_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    out: Path
    runs: list[RunSummary]
    report: Path
    plot: Path | None


def export_source(source: str, folder: Path, limit: int = 0, seed: int = 0) -> tuple[Path, list[str]]:
    """Write a data source (easy-vqa:test or JSONL) as the eval runner's classification JSONL; returns its
    path and label set. Rows keep their order, so `--limit N` means the same N examples for every run."""
    from mmagent.fusion.data import easy_vqa_labels, load_source

    examples = load_source(source, limit, seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for e in examples:
            fh.write(json.dumps({"id": e.id, "question": e.text, "image": str(Path(e.image).resolve()),
                                 "label": e.label, "category": e.qtype or None}) + "\n")
    labels = easy_vqa_labels() if source.startswith("easy-vqa") else sorted({e.label for e in examples})
    return path, labels


def write_suite(folder: Path, data: Path, labels: Sequence[str], call: str, name: str) -> Path:
    """A classification suite over `data` answered by `call` ('fusion' or 'model' for the VLM)."""
    import yaml

    suite: dict[str, Any] = {"name": name, "description": f"{data.name}: text+image → label ({call})",
                             "task": "classification", "data": str(data), "labels": list(labels), "call": call}
    if call == "fusion":  # one batch: the split's features are extracted once and cached for every classifier
        suite["batch_size"] = 1_000_000
    else:  # the VLM adapter was trained on the bare question after the image (mmagent.finetune.data)
        suite.update(prompt={"user": "{question}"}, decoding={"max_new_tokens": 4, "temperature": 0.0},
                     postprocess="first_line", batch_size=16)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def _summary(name: str, kind: str, result: Any, train_seconds: float | None = None) -> RunSummary:
    from mmagent.evals.report import per_category

    section = result.sections["classification"]
    return RunSummary(name, kind, result.out, len(result.predictions), section.metrics(),
                      per_category(result).get("classification", {}), train_seconds)


def compare(classifiers: Sequence[Path], out: Path, source: str = "easy-vqa:test", limit: int = 0,
            vlm_adapter: Path | None = None, vlm_limit: int = 300, progress: bool = True,
            resamples: int = 1000) -> Comparison:
    """Evaluate each classifier folder (and the VLM adapter) on `source`; write OUT/comparison.md."""
    from mmagent.config import load_config
    from mmagent.evals.runner import RunOptions, run_suite
    from mmagent.evals.suite import load_suite
    from mmagent.fusion.model import Manifest

    if not classifiers and vlm_adapter is None:
        raise MMAgentError("nothing to compare: give classifier folders (and/or --vlm-adapter DIR).")
    out = Path(out)
    data, labels = export_source(source, out / "data", limit)
    config = load_config()
    runs: list[RunSummary] = []
    fusion_suite = load_suite(write_suite(out / "data", data, labels, "fusion", SUITE_NAME))
    names = _names(classifiers)
    for folder, name in zip(classifiers, names):
        manifest = Manifest.read(folder)
        result = run_suite(fusion_suite, config, RunOptions(out / name, adapter=str(folder), progress=progress,
                                                                  resamples=resamples))
        runs.append(_summary(name, "fusion", result, manifest.metrics.get("train_seconds")))
    if vlm_adapter is not None:
        runs.append(_vlm_run(vlm_adapter, out, data, labels, vlm_limit, config, progress, resamples))
    if classifiers:
        runs.append(_blind_run(classifiers[0], source, limit, out))
    report, plot = write_comparison(out, runs, source)
    return Comparison(out, runs, report, plot)


def _names(classifiers: Sequence[Path]) -> list[str]:
    """Run names: the classifier's fusion mode, or mode-folder when two share a mode."""
    from mmagent.fusion.model import Manifest

    modes = [Manifest.read(c).mode for c in classifiers]
    return [m if modes.count(m) == 1 else f"{m}-{Path(c).name}" for m, c in zip(modes, classifiers)]


def _blind_run(classifier: Path, source: str, limit: int, out: Path) -> RunSummary:
    """The bar to clear: each question's most common answer in the classifier's training data, no image."""
    from mmagent.evals.metrics.classification import score_classification
    from mmagent.fusion.data import blind_predictions, load_source
    from mmagent.fusion.model import Manifest

    train_source = Manifest.read(classifier).recipe.get("data", {}).get("train", "easy-vqa:train")
    test = load_source(source, limit)
    predictions = blind_predictions(load_source(train_source), test)
    scored = score_classification({e.id: e.label for e in test}, dict(zip((e.id for e in test), predictions)))
    groups: dict[str, list[bool]] = {}
    for p, e in zip(predictions, test):
        if e.qtype:
            groups.setdefault(e.qtype, []).append(p == e.label)
    return RunSummary("blind (no image)", "baseline", out, len(test), scored.metrics(),
                      {k: sum(v) / len(v) for k, v in groups.items()})


def _vlm_run(adapter: Path, out: Path, data: Path, labels: Sequence[str], limit: int, config: Any,
             progress: bool, resamples: int) -> RunSummary:
    from mmagent.evals.runner import RunOptions, run_suite
    from mmagent.evals.suite import load_suite

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise MMAgentError(f"--vlm-adapter {adapter} holds no adapter_config.json; give a trained LoRA adapter "
                           "folder (e.g. runs/vlm-easy-vqa after `mmagent finetune run vlm-easy-vqa`).")
    config.adapters["vlm"] = str(adapter)
    suite = load_suite(write_suite(out / "data", data, labels, "model", SUITE_NAME + "_vlm"))
    result = run_suite(suite, config, RunOptions(out / "vlm-adapter", adapter="vlm", limit=limit or None,
                                                 progress=progress, resamples=resamples))
    return _summary("vlm-adapter", "vlm", result)


def write_comparison(out: Path, runs: list[RunSummary], source: str) -> tuple[Path, Path | None]:
    """comparison.md (and comparison.png): one row per run, accuracy per question type, the winner."""
    categories = sorted({c for r in runs for c in r.per_category})
    head = ["run", "examples", "accuracy", "macro P", "macro R", "macro F1", *categories, "train min"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        m = r.metrics
        cells = [r.name, str(r.count), *(f"{100 * m[k]:.1f}" for k in ("accuracy", "macro_precision",
                 "macro_recall", "macro_f1")), *(f"{100 * r.per_category[c]:.1f}" if c in r.per_category else "–"
                                                 for c in categories),
                 f"{r.train_seconds / 60:.1f}" if r.train_seconds is not None else "–"]
        rows.append("| " + " | ".join(cells) + " |")
    fusion = [r for r in runs if r.kind == "fusion"]
    best = max(fusion, key=lambda r: r.metrics["accuracy"]) if fusion else None
    lines = [f"# Fusion classifiers on {source}", "", *rows, ""]
    if best:
        lines.append(f"Best fusion mode: **{best.name}** ({100 * best.metrics['accuracy']:.1f}% accuracy).")
    lines += ["", "Scores in %, from each run's results.json; per-class scores, 95% CIs and the confusion "
              "matrix are in each run's report:", ""]
    lines += [f"- {r.name}: [{r.out.name}/report.md]({r.out.name}/report.md)" for r in runs if r.kind != "baseline"]
    if any(r.count != runs[0].count for r in runs):
        lines += ["", "Runs cover different numbers of examples (the VLM runs on a prefix): compare them "
                  "with `mmagent eval compare RUN_A RUN_B`, which pairs the shared examples."]
    plot = _plot(out / "comparison.png", runs, categories) if categories else None
    if plot:
        lines += ["", f"![accuracy per question type]({plot.name})"]
    report = out / "comparison.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "comparison.json").write_text(json.dumps([_jsonable(r) for r in runs], indent=1) + "\n", encoding="utf-8")
    return report, plot


def _jsonable(r: RunSummary) -> dict[str, Any]:
    return {"name": r.name, "kind": r.kind, "out": str(r.out), "count": r.count, "metrics": r.metrics,
            "per_category": r.per_category, "train_seconds": r.train_seconds}


def _plot(path: Path, runs: list[RunSummary], categories: list[str]) -> Path:
    from mmagent.evals.report import _pyplot

    plt = _pyplot()
    groups = ["all", *categories]
    width = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(3.5 + 1.3 * len(groups), 3.2))
    for i, r in enumerate(runs):
        values = [r.metrics["accuracy"], *(r.per_category.get(c, 0.0) for c in categories)]
        ax.bar([g + i * width for g in range(len(groups))], values, width, label=r.name)
    ax.set_xticks([g + width * (len(runs) - 1) / 2 for g in range(len(groups))], groups)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
