"""`mmagent doctor [--offline] [--json]`: every artifact the configuration needs, and where it is."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, ModelOpt, QuantOpt, SetOpt, build_config


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


@app.command()
def doctor(
    offline: bool = typer.Option(False, "--offline", help="Fail if anything would need the network."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    model: Optional[str] = ModelOpt,
    quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """List the model, processor, adapters, ASR model, embedder and OCR models the defaults need."""
    from rich.console import Console
    from rich.table import Table

    from mmagent.doctor import diagnose

    cfg = build_config(config, set_, model__id=model, model__quantization=quantization)
    report = diagnose(cfg)
    if as_json:
        typer.echo(json.dumps({"offline_ready": report.offline_ready, "runtime": report.runtime,
                               "artifacts": [dataclasses.asdict(a) for a in report.artifacts]}, indent=2))
    else:
        table = Table(title="mmagent doctor", show_lines=False)
        for column in ("artifact", "status", "size", "location", "detail"):
            table.add_column(column, overflow="fold")
        colours = {"ok": "green", "missing": "red", "needs network": "yellow"}
        for a in report.artifacts:
            colour = colours.get(a.status, "cyan")
            table.add_row(a.name, f"[{colour}]{a.status}[/]", _human(a.size_bytes), a.location, a.detail)
        console = Console(width=160)
        console.print(table)
        for key, value in report.runtime.items():
            console.print(f"[bold]{key}[/]: {value}")
        verdict = "[green]ready to run offline[/]" if report.offline_ready else "[yellow]not ready to run offline[/]"
        console.print(verdict)
    if offline and not report.offline_ready:
        raise typer.Exit(1)
