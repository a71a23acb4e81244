"""`mmagent prompts list|cp`: see and copy the shipped prompt and policy files to edit them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import copy_to_edit

prompts_app = typer.Typer(help="Shipped prompt and policy YAML files: list them, copy one to edit.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


@prompts_app.command("list")
def list_() -> None:
    """Names of the shipped prompt files."""
    from mmagent.flows.prompting import shipped_prompts

    for name in shipped_prompts():
        typer.echo(name)


@prompts_app.command("cp")
def cp(
    name: str = typer.Argument(..., help="Prompt file name, e.g. qa, support, support_policy."),
    dest: Optional[Path] = typer.Argument(None, help="File or folder to write (default: ./NAME.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Copy a shipped prompt file, to edit and pass back with --prompts (or --policy)."""
    from mmagent.flows.prompting import FlowError, shipped_path

    typer.echo(str(copy_to_edit(shipped_path(name), name, dest, force, FlowError)))
