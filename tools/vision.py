"""The `vision` tool: describe an image, answer a question about it, read its text, compare two images.

The central vision-language model always gets the image itself in the prompt (never a caption standing
in for it). Reading text also runs RapidOCR (PP-OCR, Chinese + English): its lines, boxes and scores are
returned as data, and the model gets the image plus that text to write a cleaned reading. `mmagent
describe` streams the same answers through :func:`look`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mmagent.images import IMAGE_MIME_TYPES
from mmagent.tools.base import Source, Tool, ToolContext, ToolError, ToolResult

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from mmagent.config import Config
    from mmagent.prompting import PromptSet
    from mmagent.model.ocr import OcrLine

TASKS = ("describe", "question", "read_text", "compare")
PROMPT_KEYS = ("describe", "question", "read_text", "read_text_question", "compare", "compare_question",
               "image_label", "ocr_text")


@dataclass
class VisionRequest:
    """What to do with which images. `images` are paths; compare takes exactly two, the others one."""

    task: str
    images: list[str]
    question: str | None = None

    def __post_init__(self) -> None:
        problem = request_problem(self.task, self.images, self.question)
        if problem:
            raise ToolError(problem)


@dataclass
class VisionAnswer:
    """A finished request: the model's answer, and for read_text the OCR lines of each image."""

    task: str
    images: list[str]
    answer: str
    ocr: list[list["OcrLine"]]  # one list per image; empty unless the task is read_text
    model: str
    precision: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the shape `mmagent describe --json` prints (one image → "image", two → "images")."""
        lines = [{"text": ln.text, "box": [list(p) for p in ln.box], "score": round(ln.score, 4)}
                 for per_image in self.ocr for ln in per_image]
        where = {"image": self.images[0]} if len(self.images) == 1 else {"images": self.images}
        return {"task": self.task, "answer": self.answer, "ocr": lines, **where,
                "model": self.model, "precision": self.precision}


@dataclass
class VisionRun:
    """A started request: images are checked, OCR is done, the answer streams from :meth:`stream`."""

    request: VisionRequest
    ocr: list[list["OcrLine"]]
    messages: list[dict[str, Any]]  # what the model was given (images as decoded PIL images)
    pieces: Iterator[str]
    model: str
    precision: str
    _parts: list[str] = field(default_factory=list, init=False, repr=False)

    def stream(self) -> Iterator[str]:
        """The answer's text pieces as the model writes them (the stream can be consumed once)."""
        for piece in self.pieces:
            self._parts.append(piece)
            yield piece

    def collect(self) -> VisionAnswer:
        """The finished answer (finishes the stream first if it was not, or only partly, consumed)."""
        for _ in self.stream():
            pass
        return VisionAnswer(self.request.task, list(self.request.images), "".join(self._parts).strip(),
                            self.ocr, self.model, self.precision)


def request_problem(task: str, images: list[str], question: str | None) -> str | None:
    """Why this combination is invalid (a sentence naming the fix), or None when it is fine."""
    if task not in TASKS:
        return f"unknown vision task {task!r}; valid tasks: {', '.join(TASKS)}."
    wanted = 2 if task == "compare" else 1
    if len(images) != wanted:
        how = "`images` with two paths" if task == "compare" else "one path in `image`"
        return f"task '{task}' needs {how}; got {len(images)} image(s)."
    if task == "question" and not (question or "").strip():
        return "task 'question' needs a non-empty `question`."
    if task == "describe" and question:
        return "task 'describe' takes no `question`; use task 'question' to ask about the image."
    return None


def look(
    request: VisionRequest,
    config: "Config",
    *,
    adapter: str | None = None,
    prompts: "PromptSet | None" = None,
    **gen: Any,
) -> VisionRun:
    """Start `request` on the configured model; images are decoded and checked before the model loads.

    Raises ImageError for a missing, unreadable or over-limit image (decompression bombs included).
    `adapter`: the LoRA adapter to answer with (None = the base model); `gen` are generation options
    (max_new_tokens, temperature, ...).
    """
    from mmagent.images import load_image
    from mmagent.model import load_backend

    pictures = [load_image(p, config.limits.max_image_pixels) for p in request.images]
    ocr = _read_all(pictures) if request.task == "read_text" else [[] for _ in pictures]
    prompts = prompts or vision_prompts()
    backend = load_backend(config)
    info = backend.info()
    # The embedded model's core already adds OCR text after each image; other models get it here.
    add_ocr = request.task == "read_text" and not info.reads_image_text
    messages = [{"role": "user", "content": _content(request, pictures, ocr if add_ocr else None, prompts)}]
    pieces = backend.generate(messages, adapter=adapter, **gen)
    return VisionRun(request, ocr, messages, pieces, model=info.model_id, precision=info.precision)


def vision_prompts(path: str | Path | None = None) -> "PromptSet":
    """The shipped prompts/vision.yaml, or a user's edited copy at `path`."""
    from mmagent.prompting import load_prompts

    return load_prompts("vision", path, required=PROMPT_KEYS)


def _read_all(pictures: list["PILImage.Image"]) -> list[list["OcrLine"]]:
    from mmagent.model.ocr import read_text

    return [read_text(p) for p in pictures]


def _content(
    request: VisionRequest,
    pictures: list["PILImage.Image"],
    ocr: list[list["OcrLine"]] | None,
    prompts: "PromptSet",
) -> list[dict[str, Any]]:
    """One user message: (label,) image, (OCR text,) ... then the instruction."""
    from mmagent.prompting import fence

    parts: list[dict[str, Any]] = []
    for number, picture in enumerate(pictures, start=1):
        if len(pictures) > 1:
            parts.append({"type": "text", "text": prompts.text("image_label", number=number)})
        parts.append({"type": "image", "image": picture})
        lines = ocr[number - 1] if ocr else []
        if lines:
            quoted = fence("\n".join(line.text for line in lines), f"OCR text of image {number}")
            parts.append({"type": "text", "text": prompts.text("ocr_text", text=quoted) + "\n"})
    key = request.task + ("_question" if request.question and request.task in ("read_text", "compare") else "")
    parts.append({"type": "text", "text": prompts.text(key, question=(request.question or "").strip())})
    return parts


class VisionTool(Tool):
    name = "vision"
    description = (
        "Look at image files with the vision-language model. task 'describe': what the image shows; "
        "'question': answer `question` about the image; 'read_text': the text written in the image "
        "(OCR lines with positions, plus a cleaned reading); 'compare': how two images differ."
    )
    inputs = {
        "type": "object",
        "properties": {
            "task": {
                "type": "string",
                "enum": list(TASKS),
                "description": "describe | question | read_text | compare",
            },
            "image": {
                "type": "string",
                "minLength": 1,
                "description": "path of the image (tasks describe, question, read_text)",
            },
            "images": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 2,
                "maxItems": 2,
                "description": "the two image paths to compare (task compare)",
            },
            "question": {
                "type": ["string", "null"],
                "description": "what to ask (required for task question; optional focus for read_text and compare)",
            },
        },
        "required": ["task"],
        "additionalProperties": False,
    }
    accepts = IMAGE_MIME_TYPES
    output_type = "string"
    takes_context = True  # the request's adapter

    def validate_arguments(self, arguments: dict[str, Any]) -> None:
        """The schema, then the rules that depend on the task (kept out of the schema so constrained
        decoders that lack if/then can still use it)."""
        super().validate_arguments(arguments)
        paths = _paths(arguments)
        problem = request_problem(arguments["task"], paths, arguments.get("question"))
        if problem:
            raise ToolError(f"tool 'vision' got invalid arguments: {problem} Expected: {self.signature()}.")

    def setup(self) -> None:
        self.prompts = vision_prompts()  # the model itself is the process-wide one, loaded on first use

    def forward(self, task: str, context: ToolContext, **kwargs: Any) -> ToolResult:
        request = VisionRequest(task, _paths({"task": task, **kwargs}), kwargs.get("question"))
        run = look(request, self.config, adapter=context.adapter, prompts=self.prompts)
        answer = run.collect()
        sources = [_source(path, lines) for path, lines in zip(request.images, answer.ocr)]
        return ToolResult(text=answer.answer, data=answer, sources=sources)


def _paths(arguments: dict[str, Any]) -> list[str]:
    if arguments.get("images") is not None:
        if arguments.get("image") is not None:
            return [arguments["image"], *arguments["images"]]  # refused by request_problem: too many
        return list(arguments["images"])
    return [arguments["image"]] if arguments.get("image") is not None else []


def _source(path: str, lines: list["OcrLine"]) -> Source:
    """The image as a citation; for read_text its OCR text and mean confidence too."""
    if not lines:
        return Source(uri=path)
    score = sum(line.score for line in lines) / len(lines)
    return Source(uri=path, score=score, excerpt="\n".join(line.text for line in lines),
                  metadata={"ocr_lines": len(lines)})
