"""Flags shared by several verbs, and the one place they become a Config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from mmagent.config import Config, load_config

ConfigOpt = typer.Option(None, "--config", help="YAML config file (default: ./mmagent.yaml or $MMAGENT_CONFIG).")
ModelOpt = typer.Option(None, "--model", help="Hub id or local model directory ('default' = embedded model).")
QuantOpt = typer.Option(None, "--quantization", "-q", help="none | 8bit | 4bit")
SetOpt = typer.Option(None, "--set", help="Any config field, e.g. --set model.max_new_tokens=64 (repeatable).")


def build_config(
    config: Optional[Path] = None,
    sets: Optional[list[str]] = None,
    **fields: Any,
) -> Config:
    """Config from file + env, then the command line: `--set` pairs and named flags (``model__quantization=...``).

    Flags left unset (None) change nothing, so they never mask a `--set`, the file or the environment. A
    named flag and a `--set` for the same field are both command-line flags: when they disagree the command
    is refused (a usage error naming both) rather than one silently winning. Every value is validated by
    `load_config`, whichever way it came in.
    """
    overrides: dict[str, Any] = {}
    for pair in sets or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set expects SECTION.FIELD=VALUE; got {pair!r}", param_hint="--set")
        overrides[key.strip()] = value.strip()
    for name, value in fields.items():
        if value is None:
            continue
        key = name.replace("__", ".")
        if key in overrides and str(overrides[key]) != str(value):
            raise typer.BadParameter(
                f"--set {key}={overrides[key]} and the flag for {key} ({value!r}) disagree; give the value "
                "once, either as the flag or as --set.",
                param_hint="--set",
            )
        overrides[key] = value
    return load_config(config, overrides)


def copy_to_edit(source: Any, name: str, dest: Optional[Path], force: bool, error: type[Exception]) -> Path:
    """Copy a shipped YAML file (prompts, recipes) to DEST (a file or folder; default ./NAME.yaml) to edit.

    Refuses to overwrite unless `force`; `error` is the MMAgentError subclass to raise.
    """
    import shutil

    target = dest or Path(f"{name}.yaml")
    if target.is_dir():
        target = target / f"{name}.yaml"
    if target.exists() and not force:
        raise error(f"{target} already exists; pass --force to overwrite it or choose another DEST.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out)
    return target
