"""The `mmagent` command line: one module per verb, all registered on one Typer app.

Errors derived from :class:`mmagent.errors.MMAgentError` are printed as one readable message and exit
with status 2; anything else is a bug and keeps its traceback. Standard error carries only what a user
acts on: the libraries' own diagnostics (weight-loading bars, deprecation warnings) appear with
``mmagent -v VERB``.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer

from mmagent.errors import MMAgentError

app = typer.Typer(
    name="mmagent",
    help="Multimodal assistants on a local vision-language model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Show the libraries' diagnostics too: weight-loading progress bars, deprecation warnings, INFO logs.",
    ),
) -> None:
    """Multimodal assistants on a local vision-language model."""
    if verbose:
        show_library_diagnostics()


def quiet_library_diagnostics() -> None:
    """Hide what is meant for developers of the libraries, not for a user of the CLI.

    transformers draws a "Loading weights" bar for every model it loads, peft triggers transformers'
    FutureWarnings when an adapter loads, bitsandbytes logs that an optional hub kernel is absent.
    transformers reads the Hugging Face progress-bar switch once, when it is imported, so this runs
    before any command imports it; download bars (group ``huggingface_hub``) stay on, since a person
    waits on those. An explicit ``HF_HUB_DISABLE_PROGRESS_BARS`` is left to decide.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from mmagent.model.quantization import quiet_bitsandbytes_import

    quiet_bitsandbytes_import()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if constants.HF_HUB_DISABLE_PROGRESS_BARS is None:
        disable_progress_bars()
        enable_progress_bars("huggingface_hub")


def show_library_diagnostics() -> None:
    """Undo :func:`quiet_library_diagnostics` (``-v``); must run before a command imports transformers."""
    from huggingface_hub import constants
    from huggingface_hub.utils import enable_progress_bars

    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.NOTSET)
    warnings.resetwarnings()
    if constants.HF_HUB_DISABLE_PROGRESS_BARS is None:
        enable_progress_bars()


def _register() -> None:
    """Import the verb modules; each adds its commands to `app` at import time."""
    from mmagent.cli import chat, describe, doctor, evaluate, memory, prompts, run, setup, transcribe, adapters, finetune, ui, evaluate_fusion, serve  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_diagnostics()
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
