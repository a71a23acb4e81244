"""`mmagent run FLOW ...`: run a flow (qa, support, summarize, classify) from the command line.

Human output streams the answer to stdout as it is written; tool calls, hand-offs and sources go to
stderr, so `> answer.txt` keeps only the answer. With ``--json`` every event is printed as one JSON
object per line (JSON Lines) while the flow runs — `token`, `tool_call`, `tool_result`, `source`,
`handoff` and, last, `done` with the whole answer and the flow's results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, ModelOpt, QuantOpt, SetOpt, build_config

run_app = typer.Typer(help="Run a flow: qa, support, summarize, classify.", no_args_is_help=True)
app.add_typer(run_app, name="run")

JsonOpt = typer.Option(False, "--json", help="Print events as JSON Lines instead of text.")
PromptsOpt = typer.Option(None, "--prompts", help="Your copy of the flow's prompt file (mmagent prompts cp NAME).")
ImageOpt = typer.Option(None, "--image", "-i", help="Image file (repeatable).")
AudioOpt = typer.Option(None, "--audio", help="Audio file, transcribed first (repeatable).")


def _print(events: Iterator[Any], as_json: bool) -> dict[str, Any]:
    """Stream `events` to the terminal; returns the done event's data."""
    from mmagent.flows.base import DoneEvent, HandoffEvent, SourceEvent, TokenEvent, ToolCallEvent, ToolResultEvent

    done: dict[str, Any] = {}
    sources: list[SourceEvent] = []
    for event in events:
        if isinstance(event, DoneEvent):
            done = event.data
        if as_json:
            typer.echo(json.dumps(event.to_dict(), ensure_ascii=False, default=str))
        elif isinstance(event, TokenEvent):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, ToolCallEvent):
            typer.secho(f"→ {event.name}({json.dumps(event.args, ensure_ascii=False)})", err=True, dim=True)
        elif isinstance(event, ToolResultEvent) and not event.ok:
            typer.secho(f"✗ {event.name}: {event.error}", err=True, fg=typer.colors.YELLOW)
        elif isinstance(event, HandoffEvent):
            typer.secho(f"⇢ handed off to a human: {event.reason} (ticket {event.ticket})", err=True, bold=True)
        elif isinstance(event, SourceEvent):
            sources.append(event)
    if not as_json:
        typer.echo("")
        for s in sources:
            where = f" p. {s.source.page}" if s.source.page is not None else (
                f" {s.source.start:.1f}-{s.source.end:.1f}s" if s.source.start is not None else "")
            score = f" (score {s.source.score:.2f})" if s.source.score is not None else ""
            mark = "" if s.cited else " (retrieved, not cited)"
            typer.secho(f"[{s.index}] {s.source.uri}{where}{score}{mark}", err=True, fg=typer.colors.CYAN)
        note = citation_note(done)
        if note:
            typer.secho(note, err=True, dim=True)
    return done


def citation_note(done: dict[str, Any]) -> str:
    """How a qa answer's citations were made, for the text output: an exact quote, or inferred from
    shared words because the model wrote no [n] (issue 17: that must not look like the model's citation)."""
    span = done.get("span")
    if span:
        return f"(quoted verbatim from [{span['source']}], characters {span['start']}-{span['end']})"
    if done.get("citations_inferred"):
        marks = "".join(f"[{n}]" for n in done.get("citations", []))
        return (f"(citations inferred: the model wrote no [n]; {marks} added because the answer's words occur "
                "there — check them)")
    return ""


def _flow(name: str, config: Optional[Path], sets: Optional[list[str]], model: Optional[str],
          quantization: Optional[str]) -> Any:
    from mmagent.flows.base import get_flow

    return get_flow(name, build_config(config, sets, model__id=model, model__quantization=quantization))


@run_app.command()
def qa(
    question: str = typer.Argument("", help="The question (may be empty with --audio or --image)."),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Memory collection to answer from."),
    image: Optional[list[Path]] = ImageOpt,
    audio: Optional[list[Path]] = AudioOpt,
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Relevance threshold (flows.qa_min_score)."),
    k: Optional[int] = typer.Option(None, "-k", help="Passages to retrieve (flows.qa_top_k)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="extractive | generative | auto (flows.qa_mode)."),
    as_json: bool = JsonOpt, prompts: Optional[Path] = PromptsOpt,
    model: Optional[str] = ModelOpt, quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
) -> None:
    """Answer a question from a memory collection, with numbered citations (or say it does not know)."""
    from mmagent.flows.qa import QARequest

    flow = _flow("qa", config, set_, model, quantization)
    _print(flow.run(QARequest(question, [str(p) for p in image or []], [str(p) for p in audio or []], collection,
                              min_score, k, str(prompts) if prompts else None, mode=mode)), as_json)


@run_app.command()
def support(
    message: str = typer.Argument("", help="The customer's message."),
    session: str = typer.Option("default", "--session", "-s", help="Conversation id; the history persists under it."),
    image: Optional[list[Path]] = ImageOpt,
    audio: Optional[list[Path]] = AudioOpt,
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Knowledge-base collection."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML (mmagent prompts cp support_policy)."),
    as_json: bool = JsonOpt, prompts: Optional[Path] = PromptsOpt,
    model: Optional[str] = ModelOpt, quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
) -> None:
    """One customer-service turn: orders, tickets and hand-off to a human, under a policy."""
    from mmagent.flows.support import SupportRequest

    flow = _flow("support", config, set_, model, quantization)
    request = SupportRequest(message, session, [str(p) for p in image or []], [str(p) for p in audio or []],
                             collection, str(policy) if policy else None, str(prompts) if prompts else None)
    try:
        _print(flow.run(request), as_json)
    finally:
        flow.close()


@run_app.command()
def summarize(
    files: Optional[list[Path]] = typer.Argument(None, help="Text, Markdown, HTML, PDF, audio or image files."),
    style: str = typer.Option("bullets", "--style", help="bullets | abstract | action_items"),
    words: int = typer.Option(80, "--words", help="Length target of the summary, in words."),
    as_json: bool = JsonOpt, prompts: Optional[Path] = PromptsOpt,
    model: Optional[str] = ModelOpt, quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
) -> None:
    """Summarize files (or standard input); map-reduce when they exceed the model's context window."""
    from mmagent.flows.summarize import SummarizeRequest

    text = sys.stdin.read() if not files and not sys.stdin.isatty() else ""
    flow = _flow("summarize", config, set_, model, quantization)
    _print(flow.run(SummarizeRequest([str(f) for f in files or []], text, style, words,
                                     str(prompts) if prompts else None)), as_json)


@run_app.command()
def classify(
    text: str = typer.Argument("", help="Text to classify (may be empty with --image)."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Comma-separated label set, e.g. positive,negative (default with --classifier: its labels)."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image to classify with the text."),
    classifier: Optional[Path] = typer.Option(None, "--classifier", help="A trained fusion classifier instead of the VLM."),
    as_json: bool = JsonOpt, prompts: Optional[Path] = PromptsOpt,
    model: Optional[str] = ModelOpt, quantization: Optional[str] = QuantOpt,
    config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt,
) -> None:
    """Pick one label for text and/or an image, with a confidence."""
    from mmagent.flows.classify import ClassifyRequest, parse_labels

    flow = _flow("classify", config, set_, model, quantization)
    classifier_path = str(classifier) if classifier else flow.config.flows.classifier
    request = ClassifyRequest(parse_labels(labels) if labels else [], text, str(image) if image else None,
                              classifier_path, prompts=str(prompts) if prompts else None)
    done = _print(flow.run(request), as_json)
    if not as_json and done:
        p = done["prediction"]
        scores = "  ".join(f"{k} {v:.3f}" for k, v in sorted(p["scores"].items(), key=lambda kv: -kv[1]))
        typer.secho(f"confidence {p['confidence']:.3f}  ({scores})", err=True, dim=True)
