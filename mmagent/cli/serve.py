"""`mmagent serve`: the OpenAI-compatible HTTP API (chat completions, models, embeddings, flows) on one
resident model, with requests from many clients batched together (`mmagent.serve`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, ModelOpt, QuantOpt, SetOpt, build_config

log = logging.getLogger("mmagent.serve")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes it to your network: set an API key)."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to serve on."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="MMAGENT_SERVE_API_KEY", show_default=False,
                                          help="Require 'Authorization: Bearer KEY' (prefer the environment variable)."),
    adapter_path: Optional[list[str]] = typer.Option(None, "--adapter-path", help="Serve an adapter as a model: NAME=DIR (repeatable)."),
    served_name: Optional[str] = typer.Option(None, "--served-name", help="The base model's name in /v1/models (default: model.id)."),
    max_batch: int = typer.Option(8, "--max-batch", help="Requests decoded together at most."),
    batch_wait_ms: float = typer.Option(10.0, "--batch-wait-ms", help="How long a batch waits for more requests."),
    max_tokens: int = typer.Option(1024, "--max-tokens", help="The most tokens one request may ask for."),
    max_prompt_tokens: int = typer.Option(8192, "--max-prompt-tokens", help="The longest prompt accepted, in tokens."),
    max_body_mb: Optional[float] = typer.Option(None, "--max-body-mb", help="Largest request body (default: limits.max_upload_mb)."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds a request may take, queue wait included."),
    allow_image_urls: bool = typer.Option(False, "--allow-image-urls", help="Fetch http(s) image URLs (default: data URLs only)."),
    model: Optional[str] = ModelOpt, quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
) -> None:
    """Serve the model over an OpenAI-compatible HTTP API (Ctrl-C stops it)."""
    from mmagent.cli.chat import parse_adapter_paths
    from mmagent.errors import require

    require("uvicorn", "serve")
    require("fastapi", "serve")
    import uvicorn

    from mmagent.serve.app import create_app
    from mmagent.serve.heap import limit_arenas
    from mmagent.serve.limits import ServeSettings

    limit_arenas()  # before the model and the server start their threads (serve/heap.py)

    cfg = build_config(config, set_, model__id=model, model__quantization=quantization)
    for name, path in parse_adapter_paths(adapter_path).items():
        cfg.adapters[name] = str(path)
    settings = ServeSettings.for_config(
        cfg, host=host, port=port, api_key=api_key or None, max_tokens=max_tokens, max_prompt_tokens=max_prompt_tokens,
        timeout=timeout, allow_image_urls=allow_image_urls, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
        served_name=served_name, **({"max_body_mb": max_body_mb} if max_body_mb else {}),
    )
    if settings.exposed and not settings.api_key:
        typer.secho(f"warning: serving on {host} without an API key: anyone who can reach this address can use the "
                    "model; set MMAGENT_SERVE_API_KEY.", err=True, fg=typer.colors.YELLOW)
    server_app = create_app(cfg, settings)
    typer.secho(f"mmagent serve on http://{host}:{port}/v1 (model {settings.served_name or cfg.model.id}; "
                f"adapters: {', '.join(cfg.adapters) or 'none'}; Ctrl-C stops it)", err=True)
    uvicorn.run(server_app, host=host, port=port, log_level="warning")
