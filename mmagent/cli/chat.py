"""`mmagent chat`: a terminal chat with streaming answers, images and adapters.

Interactive on a terminal; when standard input is a pipe, every non-empty line is one question (in
order, with history) and only the answers are printed, so scripts can use it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, ModelOpt, QuantOpt, SetOpt, build_config
from mmagent.errors import MMAgentError

HELP = "Commands: /image PATH (attach to the next question), /adapter NAME|none, /reset, /quit"


def parse_adapter_paths(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"expected NAME=DIR; got {pair!r}", param_hint="--adapter-path")
        out[name.strip()] = path.strip()
    return out


@app.command()
def chat(
    question: Optional[str] = typer.Argument(None, help="Ask one question and exit (default: read stdin or chat)."),
    image: Optional[list[Path]] = typer.Option(None, "--image", "-i", help="Image for the first question (repeatable)."),
    adapter: Optional[str] = typer.Option(None, "--adapter", "-a", help="Name of a LoRA adapter to use."),
    adapter_path: Optional[list[str]] = typer.Option(None, "--adapter-path", help="Load an adapter: NAME=DIR (repeatable)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="Your copy of the chat prompt file (mmagent prompts cp chat)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Longest answer, in tokens."),
    model: Optional[str] = ModelOpt,
    quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Chat with the vision-language model (streams the answer)."""
    cfg = build_config(config, set_, model__id=model, model__quantization=quantization, model__max_new_tokens=max_new_tokens)
    cfg.adapters.update(parse_adapter_paths(adapter_path))
    for path in image or []:  # before the model loads (or downloads): a typo should not cost minutes
        if not path.expanduser().is_file():
            from mmagent.images import ImageError

            raise ImageError(f"image '{path}' does not exist or is not a file; check the path.")
    from mmagent.model import load_backend

    interactive = question is None and sys.stdin.isatty()
    if interactive:
        typer.secho("loading the model…", err=True, dim=True)
    backend = load_backend(cfg)
    session = ChatSession(backend, system=system, images=[str(p) for p in image or []], adapter=adapter, prompts=prompts)
    if question is not None:
        session.ask(question)
    elif not interactive:
        for line in sys.stdin:
            if line.strip():
                session.ask(line.strip())
    else:
        info = backend.info()
        typer.secho(f"{info.model_id} · {info.precision} · {info.device} · adapter: {adapter or 'none'}", err=True, dim=True)
        typer.secho(HELP, err=True, dim=True)
        session.loop()


class ChatSession:
    """History within one session; images attach to the next question and stay in the history.

    Once the conversation holds an image, each turn gets the chat prompt file's grounding prompt (answer
    from the image's labels and text, say what the picture does not show) unless the question asks to
    guess or imagine (`mmagent.prompting.chat_turn`); `prompts` is a copied prompt file (None = shipped).

    The session's adapter (None = the base model) is named on every request: the backend keeps no
    current adapter, so another user of the same backend can never change this session's."""

    def __init__(self, backend, system: str | None = None, images: list[str] | None = None,
                 adapter: str | None = None, prompts: str | Path | None = None) -> None:
        from mmagent.prompting import CHAT_PROMPT_KEYS, load_prompts

        self.backend = backend
        self.system = system
        self.prompts = load_prompts("chat", prompts, CHAT_PROMPT_KEYS)
        self.pending_images = list(images or [])
        self.messages: list[dict] = []
        self._seen: dict[str, list[str]] = {}  # what the model was shown of each image, read once per session
        self.adapter = self._checked(adapter)

    def _checked(self, adapter: str | None) -> str | None:
        if adapter is not None:
            self.backend.adapters.info(adapter)  # unknown name: AdapterError listing the loaded ones
        return adapter

    def ask(self, question: str) -> str:
        from mmagent.prompting import chat_facts, chat_turn

        messages, turn = chat_turn(self.messages, question, self.pending_images, system=self.system, prompts=self.prompts)
        facts = chat_facts(messages, question, self._image_text)
        answer = []
        for piece in self.backend.generate(messages, adapter=self.adapter, facts_from=facts):
            answer.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        self.pending_images = []
        text = "".join(answer).strip()
        self.messages += [turn, {"role": "assistant", "content": text}]
        return text

    def _image_text(self, image: str) -> list[str]:
        if image not in self._seen:
            self._seen[image] = self.backend.image_text(image)
        return self._seen[image]

    def loop(self) -> None:
        while True:
            try:
                line = input("> ").strip()
            except (EOFError, KeyboardInterrupt):
                typer.echo()
                return
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return
            try:
                self._command(line) if line.startswith("/") else self.ask(line)
            except MMAgentError as exc:  # keep the session alive; nothing typed is lost
                typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)

    def _command(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "/image" and arg:
            from mmagent.images import load_image

            load_image(arg.strip())  # fail now, not at the next question
            self.pending_images.append(arg.strip())
            typer.secho(f"attached {arg.strip()}", dim=True, err=True)
        elif verb == "/adapter" and arg:
            self.adapter = self._checked(None if arg.strip() == "none" else arg.strip())
            typer.secho(f"adapter: {self.adapter or 'none'}", dim=True, err=True)
        elif verb == "/reset":
            self.messages, self.pending_images = [], []
            typer.secho("history cleared", dim=True, err=True)
        else:
            typer.secho(HELP, err=True)
