"""`mmagent eval ...`: evaluation verbs. `eval score` scores a predictions file made by any system against
official-format references with the official metrics, without running a model.

The module is named `evaluate` (not `eval`, a builtin); other eval verbs (run, compare) belong on `eval_app`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from mmagent.cli import app
from mmagent.evals.scoring import FORMATS_HELP, TASKS, ScoreOptions

eval_app = typer.Typer(
    help="Evaluate on QA and related suites; score prediction files with the official metrics.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


def _intervals(result: Any, n_resamples: int) -> dict[str, Any]:
    """95 % percentile-bootstrap CIs (seed 0) for every aggregate metric that has per-example values."""
    from mmagent.errors import MMAgentError

    out = {}
    for name in result.metrics():
        try:
            out[name] = result.confidence_interval(name, n_resamples=n_resamples)
        except MMAgentError:  # aggregate-only metric, e.g. HasAns_exact or total
            continue
    return out


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6f}"


def _print_text(result: Any, intervals: dict[str, Any]) -> None:
    missing = len(result.missing)
    typer.echo(
        f"{result.task}: {result.count} example(s)" + (f", {missing} without prediction" if missing else "")
    )
    metrics = result.metrics()
    width = max(len(k) for k in metrics)
    for name, value in metrics.items():
        line = f"{name:<{width}}  {_format(value)}"
        if name in intervals:
            ci = intervals[name]
            line += f"  [{ci.confidence:.0%} CI {ci.low:.6f} .. {ci.high:.6f}]"
        typer.echo(line)
    for cls in getattr(result, "per_class", []):
        typer.echo(
            f"  class {cls.label!r}: precision {cls.precision:.4f} recall {cls.recall:.4f} "
            f"f1 {cls.f1:.4f} support {cls.support}"
        )
    if getattr(result, "confusion", None):
        typer.echo(
            "confusion (rows = reference, columns = prediction; labels " + ", ".join(result.labels) + "):"
        )
        for row in result.confusion:
            typer.echo("  " + " ".join(f"{v:>5}" for v in row))


@eval_app.command(epilog=escape(FORMATS_HELP))
def score(
    task: str = typer.Option(..., "--task", "-t", help="One of: " + ", ".join(TASKS) + "."),
    predictions: Path = typer.Option(..., "--predictions", "-p", help="Predictions file (JSON or JSONL)."),
    references: Path = typer.Option(..., "--references", "-r", help="References file in the task's format."),
    na_prob_file: Path | None = typer.Option(
        None, "--na-prob-file", help="squad_v2: JSON {id: no-answer probability}; adds best_exact/best_f1."
    ),
    na_prob_thresh: float = typer.Option(
        1.0, "--na-prob-thresh", help="squad_v2: answer '' when the no-answer probability exceeds this."
    ),
    k: list[int] | None = typer.Option(
        None, "--k", help="retrieval: cut-offs for recall@k and nDCG@k (repeatable; default 1 5 10)."
    ),
    ci: bool = typer.Option(False, "--ci", help="Add 95% bootstrap confidence intervals (seed 0)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for --ci."),
    per_example: bool = typer.Option(
        False, "--per-example", help="With --json: include every example's scores."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: task, metrics, count, missing ids."),
) -> None:
    """Score PREDICTIONS against REFERENCES with the official metric of --task; prints the official metric
    names (exact_match, f1, ...) on the official scale (0-100 for SQuAD and VQA).

    The file formats of each task are listed below; ids are compared as strings.
    """
    from mmagent.errors import MMAgentError
    from mmagent.evals.scoring import score_files

    if na_prob_file is not None and task != "squad_v2":
        raise MMAgentError(f"--na-prob-file only applies to --task squad_v2 (got --task {task})")

    options = ScoreOptions(
        na_prob_file=na_prob_file, na_prob_thresh=na_prob_thresh, ks=tuple(k) if k else ScoreOptions.ks
    )
    result = score_files(task, predictions, references, options)
    intervals = _intervals(result, resamples) if ci else {}
    if as_json:
        payload = result.to_dict(examples=per_example)
        if intervals:
            payload["ci"] = {name: interval.to_dict() for name, interval in intervals.items()}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_text(result, intervals)
