"""Eval suites: one YAML file names the task type, the data, what answers (model, ASR, memory or a flow),
the prompt, the decoding settings and the metric. ``load_suite`` turns it into validated dataclasses.

Paths in a suite are relative to the YAML file. Shipped suites live in ``mmagent.evals/suites`` and are
found by name (``mmagent eval run --suite squad_mini``); any other YAML file is found by path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmagent.errors import ConfigError

# task type -> (default metric, default call, data format readers accept)
TASK_TYPES: dict[str, tuple[str, str]] = {
    "extractive_qa": ("squad", "model"),
    "open_qa": ("squad", "model"),
    "visual_qa": ("vqa", "model"),
    "document_qa": ("anls", "model"),
    "summarization": ("rouge", "model"),
    "speech": ("wer", "asr"),
    "retrieval": ("retrieval", "memory"),
    "classification": ("classification", "flow:classify"),
    "customer_service": ("support", "flow:support"),
    "pipeline": ("pipeline", "flow:qa"),
    "image_chat": ("contains", "chat"),
}
METRICS = (
    "squad",
    "squad_v2",
    "vqa",
    "anls",
    "rouge",
    "wer",
    "retrieval",
    "classification",
    "support",
    "pipeline",
    "contains",
)
CALLS = ("model", "asr", "memory", "flow:qa", "flow:classify", "flow:support", "fusion", "chat")
FORMATS = ("auto", "squad", "vqa", "docvqa", "jsonl", "hf_dataset")
POSTPROCESS = ("strip", "first_line", "first_sentence", "whole_sentences")
DECODING_KEYS = ("max_new_tokens", "temperature", "top_p", "repetition_penalty", "stop", "spans_from", "facts_from")
# `spans_from:` names example fields the answer must quote verbatim; `facts_from:` the fields whose numbers, months
# and weekdays are the only ones free text may write (closed-world facts decoding, as the summarize flow does)
SPAN_FIELDS = ("context", "document")


class SuiteError(ConfigError):
    """A suite YAML file is missing, malformed or names something that does not exist."""


@dataclass(frozen=True)
class Prompt:
    """Chat prompt of a model call; ``{question}``, ``{context}``, ``{document}``, ``{text}`` are filled per example."""

    system: str = ""
    user: str = "{question}"


@dataclass(frozen=True)
class Suite:
    """One validated eval suite (see the module docstring); `path` is the YAML file it came from."""

    name: str
    task: str
    data: Path
    path: Path
    description: str = ""
    metric: str = ""
    call: str = ""
    format: str = "auto"
    questions: Path | None = None  # VQA questions JSON next to the annotations
    images: str | None = None  # VQA image path template, e.g. "{image_id:04d}.png" (relative to data)
    corpus: Path | None = None  # retrieval / pipeline: JSONL {"id", "text"}
    prompt: Prompt = field(default_factory=Prompt)
    decoding: dict[str, Any] = field(default_factory=dict)
    postprocess: str = "strip"
    labels: tuple[str, ...] = ()
    ks: tuple[int, ...] = (1, 3, 5)
    batch_size: int = 4
    category: str | None = None  # field naming each example's category in the data (per-category plots)

    def __post_init__(self) -> None:
        where = f"suite '{self.path}'"
        if self.task not in TASK_TYPES:
            raise SuiteError(f"{where}: task must be one of {', '.join(TASK_TYPES)}; got {self.task!r}.")
        metric, call = TASK_TYPES[self.task]
        object.__setattr__(self, "metric", self.metric or metric)
        object.__setattr__(self, "call", self.call or call)
        _choice(where, "metric", self.metric, METRICS)
        _choice(where, "call", self.call, CALLS)
        _choice(where, "format", self.format, FORMATS)
        _choice(where, "postprocess", self.postprocess, POSTPROCESS)
        unknown = sorted(set(self.decoding) - set(DECODING_KEYS))
        if unknown:
            raise SuiteError(
                f"{where}: unknown decoding key(s) {unknown}; valid: {', '.join(DECODING_KEYS)}."
            )
        for key in ("spans_from", "facts_from"):
            bad_fields = sorted(set(self.decoding.get(key, ())) - set(SPAN_FIELDS))
            if bad_fields:
                raise SuiteError(f"{where}: decoding.{key} names example fields to take the text from, one of "
                                 f"{', '.join(SPAN_FIELDS)}; got {bad_fields}.")
        if self.batch_size < 1:
            raise SuiteError(f"{where}: batch_size must be >= 1; got {self.batch_size}.")
        if self.metric == "classification" and len(self.labels) < 2:
            raise SuiteError(f"{where}: a classification suite needs `labels:` with at least two labels.")
        if self.corpus is None and (self.call in ("memory", "flow:qa") or self.task == "pipeline"):
            raise SuiteError(
                f'{where}: task {self.task!r} with call {self.call!r} needs `corpus:` (a JSONL file of '
                f'{{"id", "text"}} the questions are answered from).'
            )
        for name in ("data", "questions", "corpus"):
            value = getattr(self, name)
            if value is not None and not Path(value).exists():
                raise SuiteError(
                    f"{where}: {name} file '{value}' does not exist; paths are relative to the suite file."
                )

    def settings(self) -> dict[str, Any]:
        """What decides a prediction (prompt, call, decoding, labels ...), for the cache key and the manifest."""
        out = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("path", "description", "batch_size", "metric", "ks")
        }
        return json.loads(json.dumps(out, default=str))

    def data_files(self) -> list[Path]:
        return [p for p in (self.data, self.questions, self.corpus) if p is not None]


def _choice(where: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SuiteError(f"{where}: {key} must be one of {', '.join(choices)}; got {value!r}.")


def shipped_suites() -> list[str]:
    """Names of the suites shipped with mmagent."""
    folder = resources.files("mmagent.evals") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def suite_path(name_or_path: str | Path) -> Path:
    """A shipped suite's file by name, or the given YAML path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise SuiteError(
                f"suite file '{candidate}' does not exist; shipped suites: {', '.join(shipped_suites())}."
            )
        return candidate
    resource = resources.files("mmagent.evals") / "suites" / f"{name_or_path}.yaml"
    if not resource.is_file():
        raise SuiteError(
            f"no shipped suite {str(name_or_path)!r}; shipped: {', '.join(shipped_suites())} (or give a YAML path)."
        )
    return Path(str(resource))


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and validate a suite by shipped name or YAML path."""
    import yaml

    path = suite_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"suite '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SuiteError(f"suite '{path}' must be a mapping of keys; got {type(raw).__name__}.")
    known = set(Suite.__dataclass_fields__) - {"path"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SuiteError(f"suite '{path}': unknown key(s) {unknown}; valid keys: {', '.join(sorted(known))}.")
    for key in ("name", "task", "data"):
        if key not in raw:
            raise SuiteError(f"suite '{path}' lacks `{key}:`.")
    base = path.parent
    values = dict(raw)
    for key in ("data", "questions", "corpus"):
        if values.get(key) is not None:
            values[key] = (base / str(values[key])).resolve()
    prompt = values.pop("prompt", None) or {}
    if not isinstance(prompt, dict) or set(prompt) - {"system", "user"}:
        raise SuiteError(
            f"suite '{path}': prompt must be a mapping with `system` and/or `user`; got {prompt!r}."
        )
    for key in ("labels", "ks"):
        if key in values:
            values[key] = tuple(values[key])
    for key in ("stop", "spans_from", "facts_from"):
        if key in (values.get("decoding") or {}):
            values["decoding"] = dict(values["decoding"], **{key: tuple(values["decoding"][key])})
    return Suite(
        path=path.resolve(),
        prompt=Prompt(**prompt),
        decoding=dict(values.pop("decoding", None) or {}),
        **values,
    )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (data files in the manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """Hex sha256 over a file, or over every file of a directory (relative names and bytes, sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
