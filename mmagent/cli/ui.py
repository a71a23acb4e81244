"""`mmagent ui`: start the Streamlit chat app (`mmagent.ui.app`) on a local port.

Streamlit runs in a child process (``python -m streamlit run``) so its server owns the terminal and
Ctrl-C stops it cleanly. The config file and adapter paths reach the app through the environment
(``MMAGENT_CONFIG``, ``MMAGENT_ADAPTERS_<NAME>``), the same way every other entry point reads them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt


# Nothing leaves the machine by default; flags override any ~/.streamlit/config.toml. Usage statistics
# would go to Streamlit's servers; static serving would publish ./static beside the app. (The page icon is
# a shipped file, see mmagent/ui/app.py; the browser test fails on any request that leaves 127.0.0.1.)
LOCAL_ONLY = ("--browser.gatherUsageStats", "false", "--server.enableStaticServing", "false")


def streamlit_command(port: int, host: str, max_upload_mb: int) -> list[str]:
    """The `streamlit run` command line for the app (headless: no browser is opened for you)."""
    from mmagent.ui import __file__ as ui_init

    script = Path(ui_init).with_name("app.py")
    return [sys.executable, "-m", "streamlit", "run", str(script),
            "--server.port", str(port), "--server.address", host, "--server.headless", "true",
            "--server.maxUploadSize", str(max_upload_mb), *LOCAL_ONLY,
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal", "--global.developmentMode", "false"]


@app.command()
def ui(
    port: int = typer.Option(8501, "--port", "-p", help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes it to your network)."),
    adapter_path: list[str] | None = typer.Option(None, "--adapter-path", help="Offer an adapter: NAME=DIR (repeatable)."),
    config: Path | None = ConfigOpt,
) -> None:
    """Start the chat UI in your browser: chat, memory and eval reports."""
    from mmagent.cli.chat import parse_adapter_paths
    from mmagent.cli.options import build_config
    from mmagent.errors import require

    require("streamlit", "ui")
    env = dict(os.environ)
    if config is not None:
        env["MMAGENT_CONFIG"] = str(config.resolve())
    for name, path in parse_adapter_paths(adapter_path).items():
        env[f"MMAGENT_ADAPTERS_{name.upper()}"] = str(Path(path).expanduser().resolve())
    cfg = build_config(config)  # fail on a bad config here, not in the browser
    typer.secho(f"mmagent ui on http://{host}:{port} (Ctrl-C stops it)", err=True)
    server = subprocess.Popen(streamlit_command(port, host, cfg.limits.max_upload_mb), env=env)
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())  # stopping `mmagent ui` stops the server
    try:
        code = server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
        code = 130
    raise typer.Exit(code)
