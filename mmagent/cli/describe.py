"""`mmagent describe`: look at an image with the vision-language model (describe, ask, read text, compare)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, ModelOpt, QuantOpt, SetOpt, build_config


@app.command()
def describe(
    image: Path = typer.Argument(..., help="Image file: PNG, JPEG, WebP, GIF (first frame), BMP, TIFF."),
    question: Optional[str] = typer.Option(None, "--question", "-Q", help="Ask this about the image instead."),
    read_text: bool = typer.Option(
        False, "--read-text", help="Read the text in the image (OCR lines with boxes, plus a cleaned reading)."
    ),
    compare: Optional[Path] = typer.Option(None, "--compare", help="A second image to compare with IMAGE."),
    as_json: bool = typer.Option(
        False, "--json", help='Print one JSON object: {"answer", "ocr": [{"text","box","score"}], "image", ...}.'
    ),
    adapter: Optional[str] = typer.Option(None, "--adapter", "-a", help="Name of a LoRA adapter to use."),
    adapter_path: Optional[list[str]] = typer.Option(
        None, "--adapter-path", help="Load an adapter: NAME=DIR (repeatable)."
    ),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Longest answer, in tokens."),
    model: Optional[str] = ModelOpt,
    quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Describe an image, or answer --question about it, --read-text, or --compare it with another.

    The answer streams to standard output as the model writes it (with --json, one object at the end).
    """
    from mmagent.cli.chat import parse_adapter_paths
    from mmagent.tools.vision import VisionRequest, look

    if read_text and compare is not None:
        raise typer.BadParameter("choose one of --read-text and --compare", param_hint="--compare")
    task = "compare" if compare is not None else "read_text" if read_text else "question" if question else "describe"
    request = VisionRequest(task, [str(image)] + ([str(compare)] if compare is not None else []), question)
    cfg = build_config(config, set_, model__id=model, model__quantization=quantization,
                       model__max_new_tokens=max_new_tokens)
    cfg.adapters.update(parse_adapter_paths(adapter_path))
    run = look(request, cfg, **({"adapter": adapter} if adapter is not None else {}))
    if as_json:
        typer.echo(json.dumps(run.collect().to_dict(), ensure_ascii=False))
        return
    for piece in run.stream():
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    for lines in run.ocr if task == "read_text" else ():
        for line in lines:
            typer.secho(f"ocr {line.score:.2f} {_box(line.box)}  {line.text}", err=True, dim=True)


def _box(box: tuple[tuple[float, float], ...]) -> str:
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    return f"[{min(xs):.0f},{min(ys):.0f}-{max(xs):.0f},{max(ys):.0f}]"
