"""`mmagent transcribe`: speech in audio files → text (or timed segments as JSON), streamed as decoded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, SetOpt, build_config


@app.command()
def transcribe(
    files: list[Path] = typer.Argument(..., help="Audio files: wav, flac, mp3, ogg, opus, m4a, webm."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object per file (a line each): segments with times, language, duration.",
    ),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        help="ASR model: 'default' (embedded Whisper tiny.en), a faster-whisper name, or a folder.",
    ),
    language: Optional[str] = typer.Option(
        None, "--language", "-l", help="Language code, e.g. en (default: detect)."
    ),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Transcribe speech. Plain output prints each segment's text on its own line as soon as it is decoded."""
    from mmagent.asr import Transcriber
    from mmagent.audio import check_audio_path

    cfg = build_config(config, set_, asr__model=model, asr__language=language)
    for path in files:  # refuse a bad list before the model loads
        check_audio_path(path)
    transcriber = Transcriber(cfg.asr)
    for i, path in enumerate(files):
        stream = transcriber.stream(path)
        if as_json:
            typer.echo(json.dumps(stream.collect().to_dict(), ensure_ascii=False))
            continue
        if len(files) > 1:
            typer.echo(f"{'' if i == 0 else chr(10)}==> {path} <==")
        for segment in stream:
            typer.echo(segment.text)
