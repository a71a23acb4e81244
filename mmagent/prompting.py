"""Prompt files and the fencing of untrusted text.

Prompts are YAML files shipped in `mmagent.prompts` (the repository's `prompts/` folder) and read with
importlib.resources; `mmagent prompts cp NAME` copies one so a user can edit it and pass the copy to a
flow (`--prompts FILE`). Each file is a mapping of key → text with ``{placeholders}`` filled by
``str.format`` (values are inserted verbatim, never re-interpreted).

Retrieved passages, transcripts and OCR'd text are *data*: :func:`fence` wraps them in markers the
system prompts explain, and removes look-alike markers from inside, so a document cannot close its
own fence and speak as the instructions; sentences in it that address the assistant are cut out first
(:mod:`mmagent.planted`).

It sits in the ground layer because tools (the vision tool's prompts) and flows both read prompt files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mmagent.errors import MMAgentError
from mmagent.planted import without_planted


class PromptError(MMAgentError, ValueError):
    """A prompt file is missing, malformed, or lacks a key or placeholder its user needs."""


FENCE_OPEN = "<<<DATA"
FENCE_CLOSE = "DATA>>>"
FENCE_MARKERS = ("<<", ">>")  # never in an answer: generation bans them (mmagent.flows.steps.stream_answer)
_MARKERS = re.compile(r"<<<|>>>")
PROMPTS_PACKAGE = "mmagent.prompts"


@dataclass(frozen=True)
class PromptSet:
    """The texts of one prompt file; `origin` says where it was read from (for logs and errors)."""

    name: str
    origin: str
    texts: dict[str, Any]

    def text(self, key: str, **values: Any) -> str:
        """The text `key` with `values` filled in."""
        if key not in self.texts:
            raise PromptError(f"prompt file {self.origin} has no key {key!r}; keys: {', '.join(sorted(self.texts))}.")
        template = str(self.texts[key])
        try:
            return template.format(**values) if values else template
        except (KeyError, IndexError, ValueError) as exc:
            raise PromptError(
                f"prompt {self.origin} key {key!r} has a placeholder the flow does not fill ({exc}); "
                f"available: {', '.join(sorted(values))}. Escape literal braces as {{{{ }}}}."
            ) from exc


def shipped_prompts() -> list[str]:
    """Names of the YAML files shipped in the package (without `.yaml`)."""
    return sorted(p.name[:-5] for p in resources.files(PROMPTS_PACKAGE).iterdir() if p.name.endswith(".yaml"))


def shipped_path(name: str) -> Any:
    """The packaged resource of prompt file `name` (a Traversable)."""
    resource = resources.files(PROMPTS_PACKAGE) / f"{name}.yaml"
    if not resource.is_file():
        raise PromptError(f"no shipped prompt file {name!r}; available: {', '.join(shipped_prompts())}.")
    return resource


def load_prompts(name: str, path: str | Path | None = None, required: Iterable[str] = (),
                 optional: Iterable[str] = ()) -> PromptSet:
    """Read shipped prompt file `name`, or the user's copy at `path`; check it has the `required` keys.
    `optional` keys a copy lacks (it was made before they existed) take the shipped text."""
    import yaml

    origin = str(path) if path else f"{PROMPTS_PACKAGE}/{name}.yaml"
    try:
        raw = Path(path).read_text(encoding="utf-8") if path else shipped_path(name).read_text(encoding="utf-8")
        data = yaml.safe_load(raw)
    except FileNotFoundError as exc:
        raise PromptError(f"prompt file {path} does not exist; copy the shipped one with `mmagent prompts cp {name}`.") from exc
    except yaml.YAMLError as exc:
        raise PromptError(f"prompt file {origin} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PromptError(f"prompt file {origin} must be a mapping of key: text; got {type(data).__name__}.")
    missing = [k for k in required if k not in data]
    if missing:
        raise PromptError(f"prompt file {origin} lacks key(s) {', '.join(missing)} that flow '{name}' needs.")
    absent = [k for k in optional if k not in data]
    if absent and path:
        shipped = load_prompts(name).texts
        data = {**{k: shipped[k] for k in absent if k in shipped}, **data}
    return PromptSet(name, origin, data)


def fence(text: str, label: str) -> str:
    """`text` as quoted data: between fence markers, with marker look-alikes inside neutralised."""
    clean_label = _MARKERS.sub("", " ".join(label.split()))[:120]
    body = _MARKERS.sub(lambda m: "‹‹‹" if m.group() == "<<<" else "›››", without_planted(text.strip()))
    return f"{FENCE_OPEN} {clean_label}\n{body}\n{FENCE_CLOSE}"


def leaks(answer: str, secret: str, words: int = 8) -> bool:
    """True when `answer` repeats any run of `words` consecutive words of `secret` (case-insensitive).

    Used to keep a flow from revealing its system prompt, whatever a retrieved text asked for."""
    tokens = re.findall(r"\w+", secret.lower())
    said = " ".join(re.findall(r"\w+", answer.lower()))
    return any(" ".join(tokens[i:i + words]) in said for i in range(max(0, len(tokens) - words + 1)))


# Words by which a chat user asks for invention about a picture ("guess how old", "imagine where"): then the
# image chat's grounding prompt is left out for that turn, and the model answers as it would without it.
_SPECULATE = re.compile(
    r"\b(guess\w*|imagin\w*|speculat\w*|pretend\w*|make (?:it |something |one |them )?up|made[- ]up|invent|"
    r"story|stories|fiction\w*|hypothetical\w*|creative\w*|fantas\w*)\b", re.IGNORECASE)


def wants_speculation(text: str) -> bool:
    """Whether the user asks for a guess or invention (guess, imagine, speculate, pretend, make up, a story)."""
    return bool(_SPECULATE.search(text or ""))


def _has_image(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(p.get("type") == "image" or "image" in p for p in content)


def chat_system(question: str, pictured: bool, system: str | None = None,
                prompts: PromptSet | None = None) -> str | None:
    """The system prompt of one chat turn: in a conversation with an image (`pictured`), the prompt file's
    `image_grounded` text (answer from the labels and the image's text, say what the picture does not show)
    followed by the user's own `system`, unless the question asks to speculate; otherwise `system`."""
    if not pictured or wants_speculation(question):
        return system
    grounded = (prompts or load_prompts("chat", required=CHAT_PROMPT_KEYS)).text("image_grounded")
    return f"{grounded}\n{system}" if system else grounded


CHAT_PROMPT_KEYS = ("image_grounded",)


def chat_facts(messages: Sequence[dict[str, Any]], question: str,
               image_text: Callable[[Any], list[str]]) -> tuple[str, ...]:
    """What an image-grounded chat answer may take numbers, dates and weekdays from (the `facts_from` of
    :mod:`mmagent.model.closed_facts`): the user's own words and what the model was shown of each image
    (`image_text`: the backend's class-name line and OCR text). Empty, so unconstrained, when the
    conversation holds no image or the question asks for invention (:func:`chat_system` decides the same).

    Measured on image_claims with Qwen2.5-Coder-0.5B before this: "How old is this cat?" -> "10 years old",
    "When was this launch?" -> "January 10, 2014" under the grounded prompt alone."""
    users = [m for m in messages if m.get("role") == "user"]
    images = [p["image"] for m in users if isinstance(m.get("content"), list) for p in m["content"]
              if p.get("type") == "image" and "image" in p]
    if not images or wants_speculation(question):
        return ()
    said = [m["content"] if isinstance(m.get("content"), str) else
            " ".join(p.get("text", "") for p in m["content"] if p.get("type") == "text") for m in users]
    return tuple(t for t in (*said, *(line for image in images for line in image_text(image))) if t)


def chat_turn(history: list[dict[str, Any]], question: str, images: Iterable[Any] = (),
              system: str | None = None, prompts: PromptSet | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages of one chat turn (`mmagent chat`, and the evals that measure it): the system prompt
    (:func:`chat_system`: grounded when the conversation holds an image), the earlier turns, and the new
    user turn with its images. Returns (messages, the new user turn) so the caller can keep the turn in
    its history. `prompts`: a loaded chat prompt file (None = the shipped one)."""
    content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
    content.append({"type": "text", "text": question})
    turn = {"role": "user", "content": content}
    pictured = len(content) > 1 or any(_has_image(m) for m in history)
    system = chat_system(question, pictured, system, prompts)
    head = [{"role": "system", "content": system}] if system else []
    return head + list(history) + [turn], turn
