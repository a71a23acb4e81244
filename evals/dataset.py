"""A suite's examples: inputs and references read through :mod:`mmagent.evals.formats`.

Every task type becomes a list of :class:`EvalExample` (inputs a predictor needs, references the metric
needs, an optional category for per-category scores). A local Hugging Face ``datasets`` directory
(``format: hf_dataset``) is first exported to JSONL (images as PNG files) so it goes through the same
readers as a JSONL file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmagent.evals import formats
from mmagent.evals.suite import Suite, SuiteError

QA_METRICS = ("squad", "squad_v2", "vqa", "anls", "contains")


@dataclass(frozen=True)
class EvalExample:
    """One example. `references` are the gold texts (answers, summary, transcript, label or doc ids)."""

    id: str
    references: tuple[str, ...]
    question: str = ""
    context: str | None = None
    document: str | None = None
    image: str | None = None
    audio: str | None = None
    category: str | None = None
    relevance: dict[str, float] = field(default_factory=dict)  # retrieval / pipeline judgements
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the pipeline's gold transcript


@dataclass(frozen=True)
class Corpus:
    """Documents a retrieval suite indexes: ``{doc id: text}`` in file order."""

    documents: dict[str, str]


def _resolve(base: Path, value: str | None) -> str | None:
    """A file named in the data, relative to the data file's folder (never outside an absolute path)."""
    if not value:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def load_examples(suite: Suite, workdir: Path) -> list[EvalExample]:
    """Read `suite`'s data (export a datasets directory into `workdir` first); an empty file is an error."""
    examples = _read_examples(suite, workdir)
    if not examples:
        raise formats.EvalDataError(
            f"data file '{suite.data}' of suite '{suite.name}' holds no examples; fill it (one JSON object per "
            "line for .jsonl) or point the suite's `data:` at the right file"
        )
    return examples


def _read_examples(suite: Suite, workdir: Path) -> list[EvalExample]:
    data = Path(suite.data)
    if suite.format == "hf_dataset" or (suite.format == "auto" and data.is_dir()):
        data = export_hf_dataset(data, workdir / "hf_export")
    base = data.parent
    if suite.metric in QA_METRICS:
        return _qa_examples(suite, data, base)
    rows = {
        formats._get_id(obj, data, "data file", where): obj
        for where, obj in formats._records(data, "data file")
    }
    if suite.metric in ("rouge", "wer"):
        refs = formats.read_text_references(data)
        return [_example(rid, refs[rid], rows[rid], base, suite) for rid in refs]
    if suite.metric == "classification":
        labels = formats.read_labels(data)
        return [_example(rid, (labels[rid],), rows[rid], base, suite) for rid in labels]
    if suite.metric in ("retrieval", "pipeline"):
        relevance = formats.read_relevance(data)
        out = []
        for rid, grades in relevance.items():
            row = rows[rid]
            answers = (
                tuple(formats._answer_texts(row["answers"], data, "data file", rid))
                if "answers" in row
                else ()
            )
            out.append(_example(rid, answers or tuple(grades), row, base, suite, relevance=grades))
        return out
    return _support_examples(suite, data, base, rows)


def _example(
    rid: str,
    refs: tuple[str, ...],
    row: dict[str, Any],
    base: Path,
    suite: Suite,
    relevance: dict[str, float] | None = None,
) -> EvalExample:
    extra = {k: v for k, v in row.items() if k in ("transcript",)}
    return EvalExample(
        id=rid,
        references=tuple(refs),
        question=str(row.get("question", "") or ""),
        context=row.get("context"),
        document=row.get("document") or row.get("text"),
        image=_resolve(base, row.get("image")),
        audio=_resolve(base, row.get("audio")),
        category=_category(row, suite),
        relevance=dict(relevance or {}),
        extra=extra,
    )


def _category(row: dict[str, Any], suite: Suite) -> str | None:
    value = row.get(suite.category or "category")
    return str(value) if value is not None else None


def _qa_examples(suite: Suite, data: Path, base: Path) -> list[EvalExample]:
    if suite.questions is not None:
        qa = formats.read_vqa(data, suite.questions)
    else:
        qa = formats.read_qa_file(data)
    out = []
    for ex in qa:
        image = ex.image
        if image is None and suite.images and ex.image_id is not None:
            image_id: Any = int(ex.image_id) if ex.image_id.isdigit() else ex.image_id
            image = suite.images.format(image_id=image_id)
        category = ex.answer_type or ex.question_type
        out.append(
            EvalExample(
                ex.id,
                ex.answers,
                ex.question,
                context=ex.context,
                image=_resolve(base, image),
                audio=_resolve(base, ex.audio),
                category=category,
            )
        )
    return out


def _support_examples(
    suite: Suite, data: Path, base: Path, rows: dict[str, dict[str, Any]]
) -> list[EvalExample]:
    """Customer-service tasks: the expectations (end state, tool calls, handoff) travel in `extra`."""
    keys = ("messages", "expected_state", "required_tools", "forbidden_tools", "handoff", "setup",
            "answer_contains", "answer_excludes")
    out = []
    for rid, row in rows.items():
        if "messages" not in row and "question" not in row:
            raise SuiteError(
                f"data file '{data}' example {rid!r}: a support task needs `messages` (user turns)."
            )
        out.append(
            EvalExample(
                rid,
                (),
                str(row.get("question", "")),
                category=_category(row, suite),
                extra={k: row[k] for k in keys if k in row},
            )
        )
    return out


def load_corpus(path: Path) -> Corpus:
    """The retrieval corpus: JSONL ``{"id", "text"}`` lines."""
    docs: dict[str, str] = {}
    for where, obj in formats._records(path, "corpus file"):
        doc_id = formats._get_id(obj, path, "corpus file", where)
        if not isinstance(obj.get("text"), str):
            raise formats.EvalDataError(f"corpus file '{path}': expected a 'text' string at {where}")
        docs[doc_id] = obj["text"]
    return Corpus(docs)


def export_hf_dataset(directory: Path, out: Path) -> Path:
    """A `datasets.save_to_disk` directory as ``data.jsonl`` (image columns saved as PNG files beside it)."""
    from mmagent.errors import require

    datasets = require("datasets", "train")
    try:
        dataset = datasets.load_from_disk(str(directory))
    except (FileNotFoundError, ValueError) as exc:
        raise SuiteError(f"'{directory}' is not a datasets directory (save_to_disk output): {exc}") from exc
    if isinstance(dataset, datasets.DatasetDict):
        split = (
            "test" if "test" in dataset else "validation" if "validation" in dataset else next(iter(dataset))
        )
        dataset = dataset[split]
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, row in enumerate(dataset):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image
                name = f"{key}_{i}.png"
                value.save(out / name)
                value = name
            clean[key] = value
        clean.setdefault("id", str(i))
        lines.append(json.dumps(clean, ensure_ascii=False, default=str))
    target = out / "data.jsonl"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
