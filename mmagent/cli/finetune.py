"""`mmagent finetune list | cp | run`: training recipes (torchtune-style: a YAML file plus one script).

`run` takes a shipped recipe name or a YAML path, applies `--set section.field=value` overrides, trains
with the function registered for the recipe's kind (LoRA adapters, fusion classifier), and says where
everything went. The same command runs under `accelerate launch` (see mmagent/finetune/accelerate/).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import copy_to_edit
from mmagent.errors import ConfigError

finetune_app = typer.Typer(help="Train LoRA adapters and classifiers from YAML recipes.", no_args_is_help=True)
app.add_typer(finetune_app, name="finetune")


ACCELERATE_KIND = "accelerate-config"  # `accelerate launch --config_file` examples, listed and copied like recipes


@dataclasses.dataclass
class RecipeInfo:
    """One shipped recipe as `finetune list` shows it."""

    name: str
    kind: str
    description: str
    path: str


def shipped_recipe_infos() -> list[RecipeInfo]:
    """Every shipped recipe with its kind and the first line of its leading comment."""
    import yaml

    from mmagent.finetune.recipe import accelerate_configs, shipped_recipes

    rows = []
    for name, path in sorted(shipped_recipes().items()):
        text = path.read_text(encoding="utf-8")
        kind = (yaml.safe_load(text) or {}).get("kind", "?")
        rows.append(RecipeInfo(name, str(kind), _first_sentence(text), str(path)))
    for name, path in sorted(accelerate_configs().items()):
        rows.append(RecipeInfo(name, ACCELERATE_KIND, _first_sentence(path.read_text(encoding="utf-8")), str(path)))
    return rows


_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)\.(?=\s+[A-Z]|\s*$)")


def _first_sentence(text: str) -> str:
    """The first whole sentence of the file's leading comment block (it may wrap over several lines).

    A sentence ends at a full stop before a capital letter or at the end of a comment line, not after
    "e.g."/"i.e."/"etc."/"vs"; an indented comment line (a command example) ends the description too.
    """
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or (lines and line.startswith("#  ")):
            break
        line = line.lstrip("#").strip()
        end = _SENTENCE_END.search(line)
        if end:
            lines.append(line[: end.start() + 1])
            break
        lines.append(line)
    return " ".join(lines)


@finetune_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table.")) -> None:
    """The shipped recipes, with their kind and a one-line description."""
    rows = shipped_recipe_infos()
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    width = max((len(r.name) for r in rows), default=0)
    for r in rows:
        typer.echo(f"{r.name:<{width}}  {r.kind:<17}  {r.description}")
    typer.echo("\nrecipes: mmagent finetune run NAME [--set section.field=value]; several processes: mmagent finetune cp "
               "ddp_cpu, then accelerate launch --config_file ddp_cpu.yaml -m mmagent.finetune.launch NAME [--set ...]")


@finetune_app.command("cp")
def cp(
    name: str = typer.Argument(..., help="Shipped recipe name (see `mmagent finetune list`)."),
    dest: Optional[Path] = typer.Argument(None, help="File or folder to write (default: ./NAME.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Copy a shipped recipe (or accelerate config) to edit, then train with `mmagent finetune run FILE`."""
    from mmagent.finetune.recipe import accelerate_configs, shipped_recipes

    shipped = {**accelerate_configs(), **shipped_recipes()}
    if name not in shipped:
        raise ConfigError(f"no shipped recipe named {name!r}; choose one of {', '.join(sorted(shipped))}.")
    typer.echo(str(copy_to_edit(shipped[name], name, dest, force, ConfigError)))


@finetune_app.command("run")
def run(
    recipe: str = typer.Argument(..., help="Shipped recipe name or a recipe YAML file."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a recipe field: section.field=value (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in output_dir."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object (logs go to stderr)."),
) -> None:
    """Train a recipe; prints where the adapter, manifest and metrics went, and the held-out scores."""
    from mmagent.finetune.recipe import load_recipe, run_recipe

    loaded = load_recipe(recipe, set_ or [])
    # Trainer logs through tqdm.write (stdout); with --json only the JSON object may reach stdout.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        result = run_recipe(loaded, resume=resume)
    if not _is_main_process():
        return
    summary = summarize(loaded, recipe, result)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)


def _is_main_process() -> bool:
    """Under `accelerate launch` only rank 0 reports (the others print nothing)."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _plain(result: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return dict(result) if isinstance(result, dict) else {"result": result}


def summarize(recipe: Any, name: str, result: Any) -> dict[str, Any]:
    """What a person (or a script, with --json) needs after a run: files, training metrics, held-out scores."""
    out = Path(recipe.output_dir)
    data = _plain(result)
    # Top-level files and folders (TensorBoard's runs/ ...), not the resumable checkpoint-N/ folders.
    files = {p.name + ("/" if p.is_dir() else ""): str(p) for p in sorted(out.iterdir())
             if not p.name.startswith("checkpoint-")} if out.is_dir() else {}
    held_out = data.get("eval") or {k: data[k] for k in ("test_accuracy", "blind_baseline") if data.get(k) is not None}
    metrics = data.get("metrics") or {k: data[k] for k in ("best_epoch", "validation_accuracy", "train_seconds")
                                      if k in data}
    return {"recipe": name, "kind": recipe.kind, "output_dir": str(out), "files": files,
            "metrics": metrics, "held_out": held_out, "stopped": data.get("stopped")}


def _print_summary(summary: dict[str, Any]) -> None:
    out = summary["output_dir"]
    typer.secho(f"{summary['kind']} run finished: {out}", bold=True)
    for name in sorted(summary["files"]):
        typer.echo(f"  {name}")
    if summary["metrics"]:
        typer.echo("training: " + ", ".join(f"{k}={v}" for k, v in summary["metrics"].items()))
    for arm, scores in summary["held_out"].items():
        if arm.startswith("adapter_vs_"):  # paired-bootstrap differences, per category
            shown = ", ".join(f"{k} {d['points']:+.1f} pts (95% CI {d['low']:+.1f}..{d['high']:+.1f}, p={d['p_value']:.3g})"
                              for k, d in scores.items())
            typer.echo(f"held-out adapter − {arm.removeprefix('adapter_vs_')}: {shown}")
        elif isinstance(scores, dict):
            shown = ", ".join(f"{k}={v}" for k, v in scores.items())
            typer.echo(f"held-out {arm}: {shown}")
        else:
            typer.echo(f"held-out {arm}: {scores}")
    if summary["stopped"]:
        typer.secho(f"stopped early ({summary['stopped']}); continue with: "
                    f"mmagent finetune run {summary['recipe']} --resume (same --set flags)", fg=typer.colors.YELLOW)
