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
    """95 % percentile-bootstrap CIs (seed 0), as a suite run reports them."""
    from mmagent.evals.runner import intervals

    return intervals(result, n_resamples, seed=0)


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


# ---- run and compare -------------------------------------------------------------------------------
SuiteOpt = typer.Option(None, "--suite", "-s", help="Shipped suite name or suite YAML file (repeatable; 'all' = every shipped suite).")
AdapterOpt = typer.Option(None, "--adapter", "-a", help="LoRA adapter to evaluate (a name under `adapters:` or from --adapter-path); default: the base model.")
AdapterPathOpt = typer.Option(None, "--adapter-path", help="Load an adapter: NAME=DIR (repeatable).")
LimitOpt = typer.Option(None, "--limit", "-n", help="Only the first N examples (smoke runs; cached answers are reused by the full run).")
OutOpt = typer.Option(None, "--out", "-o", help="Output folder (default: eval-runs/SUITE/ADAPTER-or-base; with several suites, OUT/SUITE).")
SeedOpt = typer.Option(0, "--seed", help="Seed for sampling and bootstrap resampling.")
BatchOpt = typer.Option(None, "--batch-size", help="Examples per generate call (default: the suite's).")


def _suite_names(suites: list[str]) -> list[str]:
    from mmagent.evals.suite import shipped_suites

    names: list[str] = []
    for s in suites:
        names.extend(shipped_suites() if s == "all" else [s])
    return names


def _run_suites(suites: list[str], adapter: str | None, adapter_path: list[str] | None, limit: int | None,
                out: Path | None, seed: int, batch_size: int | None, resamples: int, report: bool,
                as_json: bool, config: Path | None, model: str | None, sets: list[str] | None) -> None:
    from mmagent.cli.chat import parse_adapter_paths
    from mmagent.cli.options import build_config
    from mmagent.evals.runner import RunOptions, run_suite
    from mmagent.evals.suite import load_suite
    from mmagent.model import adapter_names

    cfg = build_config(config, sets, **({"model__id": model} if model else {}))  # None would undo --set model.id
    cfg.adapters.update(parse_adapter_paths(adapter_path))
    known = adapter_names(cfg)  # a remote model's are its server's (GET /v1/models)
    if adapter is not None and adapter not in known:
        remote = cfg.model.id.startswith("openai+")
        where = f"the server at {cfg.model.id.removeprefix('openai+')} serves" if remote else "known"
        fix = f"start the server with --adapter-path {adapter}=DIR" if remote else f"add --adapter-path {adapter}=DIR"
        raise typer.BadParameter(f"unknown adapter {adapter!r}; {where}: {', '.join(known) or 'none'}; {fix}.",
                                 param_hint="--adapter")
    loaded = [load_suite(name) for name in _suite_names(suites)]  # validate all before running any
    summary = []
    for suite in loaded:
        folder = (out / suite.name if len(loaded) > 1 else out) if out else Path("eval-runs") / suite.name / (adapter or "base")
        options = RunOptions(out=folder, adapter=adapter, limit=limit, seed=seed, resamples=resamples,
                             batch_size=batch_size, report=report)
        result = run_suite(suite, cfg, options)
        metrics = {name: r.metrics() for name, r in result.sections.items()}
        summary.append({"suite": suite.name, "out": str(folder), "count": len(result.predictions),
                        "generated": result.generated, "cached": result.cached, "metrics": metrics})
        if not as_json:
            typer.echo(f"{suite.name}: {len(result.predictions)} example(s) ({result.cached} cached) -> {folder}")
            for name, r in result.sections.items():
                cis = result.intervals[name]
                for metric, value in r.metrics().items():
                    ci = cis.get(metric)
                    extra = f"  [95% CI {ci.low:.4f} .. {ci.high:.4f}]" if ci else ""
                    typer.echo(f"  {name}:{metric:<18} {value:.4f}{extra}")
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@eval_app.callback(invoke_without_command=True)
def eval_main(
    ctx: typer.Context,
    suite: list[str] | None = SuiteOpt,
    adapter: str | None = AdapterOpt,
    adapter_path: list[str] | None = AdapterPathOpt,
    limit: int | None = LimitOpt,
    out: Path | None = OutOpt,
    seed: int = SeedOpt,
) -> None:
    """`mmagent eval --suite NAME [--adapter NAME]` is short for `mmagent eval run ...`."""
    if ctx.invoked_subcommand is not None:
        if suite:
            raise typer.BadParameter("put --suite after the sub-command (e.g. `mmagent eval run --suite ...`)", param_hint="--suite")
        return
    if not suite:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    _run_suites(suite, adapter, adapter_path, limit, out, seed, None, 1000, True, False, None, None, None)


@eval_app.command("run")
def run_command(
    suite: list[str] = typer.Option(..., "--suite", "-s", help="Shipped suite name or suite YAML file (repeatable; 'all' = every shipped suite)."),
    adapter: str | None = AdapterOpt,
    adapter_path: list[str] | None = AdapterPathOpt,
    limit: int | None = LimitOpt,
    out: Path | None = OutOpt,
    seed: int = SeedOpt,
    batch_size: int | None = BatchOpt,
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the 95% CIs."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md/report.html with plots."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of text."),
    config: Path | None = typer.Option(None, "--config", help="YAML config file."),
    model: str | None = typer.Option(None, "--model", help="Hub id or local model directory ('default' = embedded)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Any config field, e.g. --set asr.beam_size=1."),
) -> None:
    """Run eval suites on the model (or an adapter, or a flow) and write results.json, manifest.json and a
    report; an interrupted run resumes from OUT/cache.jsonl."""
    _run_suites(suite, adapter, adapter_path, limit, out, seed, batch_size, resamples, report, as_json, config, model, sets)


@eval_app.command("compare")
def compare_command(
    run_a: Path = typer.Argument(..., help="Output folder of the first run (A, e.g. the base model)."),
    run_b: Path = typer.Argument(..., help="Output folder of the second run (B, e.g. the adapter)."),
    resamples: int = typer.Option(1000, "--resamples", help="Paired-bootstrap resamples."),
    seed: int = SeedOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-metric deltas B - A with paired-bootstrap 95% CIs and p-values, and the manifest fields that differ."""
    from mmagent.evals.compare import compare_runs, format_comparison

    comparison = compare_runs(run_a, run_b, n_resamples=resamples, seed=seed)
    typer.echo(json.dumps(comparison.to_dict(), indent=2, default=str) if as_json else format_comparison(comparison))
