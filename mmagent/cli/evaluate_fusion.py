"""`mmagent eval fusion CLASSIFIER...`: evaluate fusion classifiers (and a VLM adapter) on one split and
write one comparison report (accuracy, macro P/R/F1, per question type; per-run confusion matrices)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmagent.cli.evaluate import eval_app


@eval_app.command("fusion")
def fusion_command(
    classifiers: list[Path] = typer.Argument(None, help="Trained classifier folders (output_dir of `mmagent finetune run fusion-classifier`)."),
    data: str = typer.Option("easy-vqa:test", "--data", "-d", help="easy-vqa:test or a JSONL file of {text, image, label}."),
    out: Path = typer.Option(Path("eval-runs/fusion"), "--out", "-o", help="Output folder: one run per classifier + comparison.md."),
    limit: int = typer.Option(0, "--limit", "-n", help="Only the first N examples (0 = all)."),
    vlm_adapter: Path | None = typer.Option(None, "--vlm-adapter", help="Also evaluate this LoRA adapter of the VLM on the same examples."),
    vlm_limit: int = typer.Option(300, "--vlm-limit", help="Examples for the VLM adapter (generation is slow; 0 = all)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the 95% CIs in each run's report."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs' scores as JSON."),
) -> None:
    """Score each classifier (and --vlm-adapter) on the same examples; write OUT/comparison.md."""
    from mmagent.fusion.evaluate import compare

    result = compare(list(classifiers or []), out, data, limit, vlm_adapter, vlm_limit, resamples=resamples)
    if as_json:
        typer.echo(json.dumps(json.loads((result.out / "comparison.json").read_text()), indent=2))
        return
    typer.echo(result.report.read_text(encoding="utf-8"))
    typer.echo(f"report: {result.report}")
