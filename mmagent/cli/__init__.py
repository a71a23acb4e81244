"""The `mmagent` command line: one module per verb, all registered on one Typer app.

Errors derived from :class:`mmagent.errors.MMAgentError` are printed as one readable message and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from mmagent.errors import MMAgentError

app = typer.Typer(
    name="mmagent",
    help="Multimodal assistants on a local vision-language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Import the verb modules; each adds its commands to `app` at import time."""
    from mmagent.cli import chat, describe, doctor, evaluate, memory, prompts, run, setup, transcribe, adapters, finetune, ui, evaluate_fusion  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from mmagent.model.quantization import quiet_bitsandbytes_import

    quiet_bitsandbytes_import()
    _register()
    try:
        result = app(args=argv, standalone_mode=False)
    except MMAgentError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as exc:  # raised by commands that finish early on purpose
        return exc.exit_code
    except Exception as exc:
        # Usage errors (bad flags, typer.BadParameter raised inside a command). typer 0.29 vendors its own
        # click, so match click's exception protocol rather than click's classes.
        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):
            exc.show()
            return exc.exit_code
        if type(exc).__name__ == "Abort":
            return 1
        raise
    return result if isinstance(result, int) else 0  # click returns typer.Exit's code here


if __name__ == "__main__":  # python -m mmagent.cli
    sys.exit(main())
