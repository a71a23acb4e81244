"""Training and evaluation data for the fusion classifier: JSONL files and the packaged easy-vqa set.

A data source is named by a string: ``easy-vqa:train`` / ``easy-vqa:test`` (the `easy-vqa` package's
questions, 64×64 images and 13 answers; the question is the text, the answer the label) or the path of
a JSONL file with one ``{"text": ..., "image": ..., "label": ...}`` object per line (image paths are
relative to the file; an optional ``"id"``). Every problem in a JSONL file is reported at once with its
line number, so a user fixes the file in one pass.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmagent.errors import MMAgentError

EASY_VQA = "easy-vqa"
MAX_REPORTED = 20
__all__ = ["DataError", "Example", "blind_baseline", "load_jsonl", "load_source", "split_by_image"]


class DataError(MMAgentError, ValueError):
    """A data file (fusion examples, or a LoRA recipe's training file) has problems; the message lists
    each with its line number. Defined here, below `mmagent.finetune`, which raises it too."""


EASY_VQA_COLOURS = {"red", "green", "blue", "black", "gray", "teal", "brown", "yellow"}
EASY_VQA_SHAPES = {"circle", "rectangle", "triangle"}


def easy_vqa_category(answer: str) -> str:
    """easy-vqa's question types, read from the answer: shape, colour or yes/no."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "shape" if answer in EASY_VQA_SHAPES else "colour"


@dataclass(frozen=True)
class Example:
    """One labelled example; `qtype` groups examples for per-type reports (easy-vqa: shape/colour/yes-no)."""

    id: str
    text: str
    image: str
    label: str
    qtype: str = ""


def easy_vqa_examples(split: str) -> list[Example]:
    """The easy-vqa split ('train': 38,575 questions on 4,000 images; 'test': 9,673 on 1,000)."""
    from mmagent.errors import require

    if split not in ("train", "test"):
        raise DataError(f"easy-vqa splits are 'train' and 'test'; got {split!r} (write easy-vqa:train).")
    easy_vqa = require("easy_vqa", "train")
    questions, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    return [Example(f"{split}-{i}", q, paths[img], a, easy_vqa_category(a))
            for i, (q, a, img) in enumerate(zip(questions, answers, image_ids))]


def easy_vqa_labels() -> list[str]:
    from mmagent.errors import require

    return sorted(require("easy_vqa", "train").get_answers())


def load_jsonl(path: str | Path) -> list[Example]:
    """Read and validate a JSONL file; raises DataError listing every bad line with its number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist; give a JSONL file or easy-vqa:train|test.")
    examples, problems = [], []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            example, problem = _parse_line(line, number, path.parent)
            if problem:
                problems.append(f"line {number}: {problem}")
            else:
                examples.append(example)
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise DataError(
            f"{path} has {len(problems)} bad line(s); each line must be a JSON object "
            f'{{"text": str, "image": path, "label": str}}:\n  {shown}{more}'
        )
    if not examples:
        raise DataError(f"{path} has no examples; expected one JSON object per line.")
    return examples


def _parse_line(line: str, number: int, base: Path) -> tuple[Example | None, str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    missing = [k for k in ("text", "image", "label") if k not in row]
    if missing:
        return None, f"missing field(s) {', '.join(missing)}"
    for key in ("text", "image"):
        if not isinstance(row[key], str):
            return None, f"'{key}' must be a string, got {type(row[key]).__name__}"
    if not isinstance(row["label"], (str, int)) or isinstance(row["label"], bool) or str(row["label"]).strip() == "":
        return None, f"'label' must be a non-empty string (or integer), got {row['label']!r}"
    image = Path(row["image"]) if Path(row["image"]).is_absolute() else base / row["image"]
    if not image.is_file():
        return None, f"image '{row['image']}' not found (looked for {image})"
    problem = _image_problem(image)
    if problem:
        return None, f"image '{row['image']}' {problem}"
    category = row.get("category", row.get("type", ""))
    return Example(str(row.get("id", number)), row["text"], str(image), str(row["label"]).strip(),
                   str(category or "")), ""


def _image_problem(path: Path) -> str:
    """Why `path` is not an image PIL can open (reads the header only), or ''."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return ""
    except (UnidentifiedImageError, OSError) as exc:
        return f"is not a readable image ({type(exc).__name__})"


def load_source(source: str, limit: int = 0, seed: int = 0) -> list[Example]:
    """Examples of a named source (easy-vqa:SPLIT or a JSONL path); `limit` > 0 keeps a seeded random subset."""
    if source.startswith(EASY_VQA + ":") or source == EASY_VQA:
        examples = easy_vqa_examples(source.partition(":")[2] or "train")
    else:
        examples = load_jsonl(source)
    if limit and limit < len(examples):
        examples = random.Random(seed).sample(examples, limit)
    return examples


def split_by_image(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out `fraction` of the images (all their questions) for validation, so no image leaks across."""
    images = sorted({e.image for e in examples})
    held = set(random.Random(seed).sample(images, max(1, round(len(images) * fraction))))
    return [e for e in examples if e.image not in held], [e for e in examples if e.image in held]


def blind_predictions(train: Sequence[Example], test: Sequence[Example]) -> list[str]:
    """What a model that never looks at the image answers: each test question's most common training
    answer for the same question text (easy-vqa: "Is there a red shape?" → "no"), else for its category
    (question type), else overall. easy-vqa test: 67.0% (yes/no 82.5%, shape 34.8%, colour 12.0%).
    """
    from collections import Counter

    def majority(key) -> dict[str, str]:
        counts: dict[str, Counter] = {}
        for e in train:
            counts.setdefault(key(e), Counter())[e.label] += 1
        return {k: c.most_common(1)[0][0] for k, c in counts.items()}

    by_text, by_type = majority(lambda e: e.text), majority(lambda e: e.qtype)
    overall = majority(lambda e: "")[""] if train else ""
    return [by_text.get(e.text) or by_type.get(e.qtype) or overall for e in test]


def blind_baseline(train: Sequence[Example], test: Sequence[Example]) -> float:
    """Accuracy of :func:`blind_predictions` on `test`: the bar a fusion model must clear to show it looks."""
    hits = sum(p == e.label for p, e in zip(blind_predictions(train, test), test))
    return hits / max(1, len(test))
