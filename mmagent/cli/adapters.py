"""`mmagent adapters list | info | merge | export`: trained adapters after training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, ModelOpt, SetOpt, build_config
from mmagent.errors import AdapterError

adapters_app = typer.Typer(help="List, inspect, merge and export LoRA adapters.", no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")


def _resolve(name_or_path: str, configured: dict[str, str]) -> Path:
    path = Path(configured.get(name_or_path, name_or_path)).expanduser()
    if not (path / "adapter_config.json").is_file():
        known = ", ".join(configured) or "none configured"
        raise AdapterError(f"'{name_or_path}' is neither a configured adapter ({known}) nor a peft adapter directory.")
    return path


def _summary(path: Path) -> dict:
    from mmagent.model.adapters import read_adapter_manifest

    config = json.loads((path / "adapter_config.json").read_text())
    manifest = read_adapter_manifest(path)
    return {
        "path": str(path),
        "base_model": manifest.get("base_model") or config.get("base_model_name_or_path"),
        "rank": config.get("r"),
        "target_modules": config.get("target_modules"),
        "modules_to_save": config.get("modules_to_save"),
        "template_hash": manifest.get("template_hash"),
        "metrics": manifest.get("metrics"),
        "eval": manifest.get("eval"),
    }


@adapters_app.command("list")
def list_adapters(as_json: bool = typer.Option(False, "--json"), config: Optional[Path] = ConfigOpt,
                  set_: Optional[list[str]] = SetOpt) -> None:
    """The adapters named in the configuration, with rank, base model and template hash."""
    cfg = build_config(config, set_)
    rows = {name: _summary(_resolve(name, cfg.adapters)) for name in cfg.adapters}
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no adapters configured (add them under `adapters:` in mmagent.yaml)")
    for name, row in rows.items():
        typer.echo(f"{name}\tr={row['rank']}\tbase={row['base_model']}\ttemplate={row['template_hash']}\t{row['path']}")


@adapters_app.command()
def info(adapter: str = typer.Argument(..., help="Configured name or adapter directory."),
         config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Everything the adapter's manifest records (recipe, data hash, metrics, held-out scores)."""
    cfg = build_config(config, set_)
    path = _resolve(adapter, cfg.adapters)
    from mmagent.model.adapters import read_adapter_manifest

    typer.echo(json.dumps({**_summary(path), "manifest": read_adapter_manifest(path)}, indent=2, default=str))


@adapters_app.command()
def merge(
    adapter: str = typer.Argument(..., help="Configured name or adapter directory."),
    out: Path = typer.Option(..., "--out", help="Directory for the merged model."),
    requantize: str = typer.Option("none", "--requantize", help="Check the merged model as served: none | 8bit | 4bit."),
    force: bool = typer.Option(False, "--force", help="Write even if the merged model departs from base + adapter."),
    model: Optional[str] = ModelOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Merge into a full-precision copy of the base, check it against base + adapter, then write it."""
    from mmagent.finetune.merge import merge_adapter
    from mmagent.model.backend import HFVisionBackend

    if requantize not in ("none", "8bit", "4bit"):
        raise typer.BadParameter(f"expected none, 8bit or 4bit; got {requantize!r}", param_hint="--requantize")
    cfg = build_config(config, set_, model__id=model, model__quantization="none")
    path = _resolve(adapter, cfg.adapters)
    cfg.adapters = {}
    result = merge_adapter(HFVisionBackend(cfg), path, out, requantize=requantize, force=force)
    verdict = "passed" if result.passed else "FAILED (written because of --force)"
    typer.echo(f"merged model written to {out}; check {verdict}: token agreement {result.token_agreement:.1%}, "
               f"mean KL {result.mean_kl:.2e} over {result.probes} probes")


@adapters_app.command()
def export(adapter: str = typer.Argument(..., help="Configured name or adapter directory."),
           out: Path = typer.Option(..., "--out", help="Destination directory."),
           config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Copy the adapter (safetensors + config + manifest only, no checkpoints) for serving elsewhere."""
    cfg = build_config(config, set_)
    path = _resolve(adapter, cfg.adapters)
    if not (path / "adapter_model.safetensors").is_file():
        raise AdapterError(f"{path} has no adapter_model.safetensors; only safetensors adapters are exported.")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json", "mmagent_adapter.json", "README.md"):
        if (path / name).is_file():
            shutil.copy2(path / name, out / name)
    typer.echo(f"exported {path} to {out}")
