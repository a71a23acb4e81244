"""Readers for the standard eval file formats, with errors that name the file, the expectation and the find.

References (gold data):

- **SQuAD** v1.1/v2.0 dev JSON: ``{"version", "data": [{"paragraphs": [{"context", "qas": [{"id",
  "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``; an empty answers list is an
  unanswerable (v2.0) question.
- **VQAv2** annotations JSON: ``{"annotations": [{"question_id", "answers": [{"answer", ...}] x 10,
  "answer_type", "question_type", "image_id"}]}``, optionally with the matching questions JSON
  ``{"questions": [{"question_id", "question", "image_id"}]}`` for the question text.
- **DocVQA** style: ``{"data": [{"questionId", "question", "answers": [...], "image"?}]}``.
- **QA JSONL**, one object a line: ``{"id", "question", "answers": [...], "context"?, "image"?, "audio"?}``
  (``answers`` may also be ``{"text": [...]}`` as in Hugging Face SQuAD, or a single ``"answer"``).
- **Text references JSONL** (rouge, wer): ``{"id", "reference": str}`` or ``{"id", "references": [str]}``.
- **Labels JSONL** (classification): ``{"id", "label"}``.
- **Relevance JSONL** (retrieval): ``{"id", "relevant": [doc ids]}`` or ``{"id", "relevant": {doc: grade}}``.

Predictions:

- a JSON object ``{id: text}`` (SQuAD's official format), or
- a JSON list / JSONL of records with an id (``id``, ``question_id`` or ``questionId``) and a text
  (``prediction`` or ``answer``): VQA's ``[{"question_id", "answer"}]``, DocVQA's
  ``[{"questionId", "answer"}]``, or ``{"id", "prediction"}`` lines;
- for retrieval, ``{id: [doc ids]}`` or records with ``ranked`` (a list of doc ids, best first);
- SQuAD v2.0 no-answer probabilities: ``{id: probability}``.

All ids become strings (VQA's integer ids included), so JSON and JSONL files mix freely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmagent.errors import MMAgentError

PathLike = str | Path
ID_KEYS = ("id", "question_id", "questionId")
TEXT_KEYS = ("prediction", "answer")


class EvalDataError(MMAgentError, ValueError):
    """An eval data or predictions file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True)
class QAExample:
    """One question with its gold answers and the inputs a model needs (paths are as written in the file)."""

    id: str
    question: str
    answers: tuple[str, ...]
    context: str | None = None
    image: str | None = None
    audio: str | None = None
    answer_type: str | None = None
    question_type: str | None = None
    image_id: str | None = None  # VQA/COCO image id, when the file names the image only by id


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = list(value)[:8]
        return f"a JSON object with keys {keys}" if keys else "an empty JSON object"
    if isinstance(value, list):
        return f"a JSON list of {len(value)} item(s)" + (
            f", the first {_describe(value[0])}" if value else ""
        )
    return f"a JSON {type(value).__name__} ({str(value)[:40]!r})"


def _fail(path: PathLike, role: str, expected: str, found: str) -> EvalDataError:
    return EvalDataError(f"{role} '{path}': expected {expected}; found {found}")


def read_json(path: PathLike, role: str = "file") -> Any:
    """Parse a JSON file; a missing or malformed file raises :class:`EvalDataError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise EvalDataError(f"{role} '{path}' does not exist (or is not a file); check the path")
    try:
        with p.open(encoding="utf-8-sig") as f:
            return json.load(f)
    except RecursionError as exc:
        raise EvalDataError(f"{role} '{path}' nests JSON too deeply to read") from exc
    except json.JSONDecodeError as exc:
        hint = " (it looks like JSONL: name it *.jsonl)" if _looks_like_jsonl(p) else ""
        raise EvalDataError(f"{role} '{path}' is not valid JSON: {exc}{hint}") from exc
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{role} '{path}' is not UTF-8 text: {exc}") from exc


def _looks_like_jsonl(p: Path) -> bool:
    with p.open(encoding="utf-8", errors="replace") as f:
        lines = [line for line in (f.readline(), f.readline()) if line.strip()]
    return len(lines) == 2 and all(line.lstrip().startswith("{") for line in lines)


def iter_jsonl(path: PathLike, role: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    p = Path(path)
    if not p.is_file():
        raise EvalDataError(f"{role} '{path}' does not exist (or is not a file); check the path")
    with p.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise EvalDataError(
                    f"{role} '{path}' line {number} is not UTF-8 text (byte {exc.start} of the line); "
                    "save the file as UTF-8"
                ) from exc
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise EvalDataError(
                    f"{role} '{path}' line {number} is not valid JSON ({exc}); fix or remove that line"
                ) from exc
            if not isinstance(obj, dict):
                raise _fail(path, role, f"one JSON object per line (line {number})", _describe(obj))
            yield number, obj


def _is_jsonl(path: PathLike) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".ndjson")


def _records(path: PathLike, role: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for a JSONL file or a JSON list of objects."""
    if _is_jsonl(path):
        for number, obj in iter_jsonl(path, role):
            yield f"line {number}", obj
        return
    data = read_json(path, role)
    if not isinstance(data, list):
        raise _fail(path, role, "a JSON list of objects (or a .jsonl file)", _describe(data))
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise _fail(path, role, f"JSON objects in the list (item {i})", _describe(obj))
        yield f"item {i}", obj


def _get_id(obj: dict[str, Any], path: PathLike, role: str, where: str) -> str:
    for key in ID_KEYS:
        if key in obj and isinstance(obj[key], (str, int)) and not isinstance(obj[key], bool):
            return str(obj[key])
    raise _fail(
        path, role, f"an id field ({' / '.join(ID_KEYS)}, string or integer) at {where}", _describe(obj)
    )


def _text(value: Any, path: PathLike, role: str, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, role, f"a string for {what}", _describe(value))
    return value


def _put(out: dict[str, Any], key: str, value: Any, path: PathLike, role: str) -> None:
    if key in out:
        raise EvalDataError(f"{role} '{path}': id {key!r} appears more than once; ids must be unique")
    out[key] = value


# ---- predictions ---------------------------------------------------------------------------------
def read_predictions(path: PathLike) -> dict[str, str]:
    """``{id: text}`` from a JSON object, a JSON list of records or JSONL (see the module docstring)."""
    role = "predictions file"
    out: dict[str, str] = {}
    if not _is_jsonl(path):
        data = read_json(path, role)
        if isinstance(data, dict):
            for key, value in data.items():
                out[str(key)] = _text(value, path, role, f"the prediction of id {key!r}")
            return out
    for where, obj in _records(path, role):
        key = _get_id(obj, path, role, where)
        field = next((k for k in TEXT_KEYS if k in obj), None)
        if field is None:
            raise _fail(
                path, role, f"a prediction field ({' / '.join(TEXT_KEYS)}) at {where}", _describe(obj)
            )
        _put(out, key, _text(obj[field], path, role, f"'{field}' at {where}"), path, role)
    return out


def read_na_probs(path: PathLike) -> dict[str, float]:
    """SQuAD v2.0 ``na_prob.json``: ``{id: probability that the question has no answer}``."""
    role = "no-answer probability file"
    data = read_json(path, role)
    if not isinstance(data, dict):
        raise _fail(path, role, "a JSON object {question id: probability}", _describe(data))
    out = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, role, f"a number for id {key!r}", _describe(value))
        out[str(key)] = float(value)
    return out


def read_rankings(path: PathLike) -> dict[str, list[str]]:
    """Retrieval runs: ``{id: [doc ids]}`` or records ``{"id", "ranked": [doc ids, best first]}``."""
    role = "predictions file"
    out: dict[str, list[str]] = {}
    if not _is_jsonl(path):
        data = read_json(path, role)
        if isinstance(data, dict):
            for key, value in data.items():
                out[str(key)] = _id_list(value, path, role, f"id {key!r}")
            return out
    for where, obj in _records(path, role):
        key = _get_id(obj, path, role, where)
        if "ranked" not in obj:
            raise _fail(path, role, f"a 'ranked' list of document ids at {where}", _describe(obj))
        _put(out, key, _id_list(obj["ranked"], path, role, where), path, role)
    return out


def _id_list(value: Any, path: PathLike, role: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise _fail(path, role, f"a list of document ids (strings or integers) for {where}", _describe(value))
    return [str(v) for v in value]


# ---- simple references ---------------------------------------------------------------------------
def read_text_references(path: PathLike) -> dict[str, tuple[str, ...]]:
    """Rouge/WER references: JSONL (or JSON list) of ``{"id", "reference"}`` / ``{"id", "references"}``."""
    role = "references file"
    out: dict[str, tuple[str, ...]] = {}
    for where, obj in _records(path, role):
        key = _get_id(obj, path, role, where)
        if isinstance(obj.get("reference"), str):
            refs: tuple[str, ...] = (obj["reference"],)
        elif isinstance(obj.get("references"), list) and all(isinstance(r, str) for r in obj["references"]):
            refs = tuple(obj["references"])
        else:
            raise _fail(
                path,
                role,
                f"'reference' (a string) or 'references' (a list of strings) at {where}",
                _describe(obj),
            )
        _put(out, key, refs, path, role)
    return out


def read_labels(path: PathLike) -> dict[str, str]:
    """Classification references: JSONL (or JSON list) of ``{"id", "label"}``."""
    role = "references file"
    out: dict[str, str] = {}
    for where, obj in _records(path, role):
        key = _get_id(obj, path, role, where)
        label = obj.get("label")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise _fail(path, role, f"a 'label' (string or integer) at {where}", _describe(obj))
        _put(out, key, str(label), path, role)
    return out


def read_relevance(path: PathLike) -> dict[str, dict[str, float]]:
    """Retrieval judgements: ``{"id", "relevant": [doc ids]}`` or ``{"id", "relevant": {doc: grade}}``.

    A list gives every document grade 1; grades are numbers, and grade 0 means judged not relevant.
    """
    role = "references file"
    out: dict[str, dict[str, float]] = {}
    for where, obj in _records(path, role):
        key = _get_id(obj, path, role, where)
        relevant = obj.get("relevant")
        if isinstance(relevant, list):
            grades = {d: 1.0 for d in _id_list(relevant, path, role, where)}
        elif isinstance(relevant, dict) and all(
            isinstance(g, (int, float)) and not isinstance(g, bool) for g in relevant.values()
        ):
            grades = {str(d): float(g) for d, g in relevant.items()}
        else:
            raise _fail(
                path, role, f"'relevant': a list of doc ids or {{doc id: grade}} at {where}", _describe(obj)
            )
        _put(out, key, grades, path, role)
    return out


# ---- QA references -------------------------------------------------------------------------------
def _answer_texts(value: Any, path: PathLike, role: str, where: str) -> tuple[str, ...]:
    """Answers as a list of strings, a list of {"text"|"answer"} objects, or {"text": [...]}."""
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        value = value["text"]
    if isinstance(value, list):
        texts = []
        for item in value:
            if isinstance(item, dict):
                item = item.get("text", item.get("answer"))
            if not isinstance(item, str):
                break
            texts.append(item)
        else:
            return tuple(texts)
    raise _fail(
        path, role, f"answers as a list of strings or of {{'text': ...}} objects at {where}", _describe(value)
    )


def read_squad(path: PathLike, data: Any = None) -> list[QAExample]:
    """SQuAD v1.1/v2.0 dev JSON; unanswerable v2.0 questions get an empty ``answers``."""
    role = "references file"
    data = read_json(path, role) if data is None else data
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise _fail(path, role, 'SQuAD JSON {"data": [{"paragraphs": [...]}]}', _describe(data))
    out: list[QAExample] = []
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise _fail(path, role, f"'paragraphs' in data[{a}]", _describe(article))
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise _fail(path, role, f"'context' and 'qas' in {where}", _describe(paragraph))
            for q, qa in enumerate(paragraph["qas"]):
                here = f"{where}.qas[{q}]"
                if not isinstance(qa, dict) or "answers" not in qa:
                    raise _fail(path, role, f"'id', 'question' and 'answers' in {here}", _describe(qa))
                qid = _get_id(qa, path, role, here)
                answers = _answer_texts(qa["answers"], path, role, here)
                out.append(
                    QAExample(qid, str(qa.get("question", "")), answers, context=paragraph.get("context"))
                )
    return out


def read_vqa(path: PathLike, questions: PathLike | None = None, data: Any = None) -> list[QAExample]:
    """VQAv2 annotations JSON (10 human answers per question), plus question text from `questions`."""
    role = "references file"
    data = read_json(path, role) if data is None else data
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise _fail(path, role, 'VQA annotations JSON {"annotations": [...]}', _describe(data))
    texts = _vqa_questions(questions) if questions else {}
    out = []
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or "answers" not in ann:
            raise _fail(path, role, f"'question_id' and 'answers' in {where}", _describe(ann))
        qid = _get_id(ann, path, role, where)
        answers = _answer_texts(ann["answers"], path, role, where)
        image_id = ann.get("image_id")
        out.append(
            QAExample(
                qid,
                texts.get(qid, ""),
                answers,
                answer_type=ann.get("answer_type"),
                question_type=ann.get("question_type"),
                image_id=str(image_id) if image_id is not None else None,
            )
        )
    return out


def _vqa_questions(path: PathLike) -> dict[str, str]:
    role = "VQA questions file"
    data = read_json(path, role)
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise _fail(path, role, 'VQA questions JSON {"questions": [...]}', _describe(data))
    out = {}
    for i, q in enumerate(questions):
        out[_get_id(q, path, role, f"questions[{i}]")] = str(q.get("question", ""))
    return out


def read_docvqa(path: PathLike, data: Any = None) -> list[QAExample]:
    """DocVQA-style ``{"data": [{"questionId", "question", "answers": [...], "image"?}]}``."""
    role = "references file"
    data = read_json(path, role) if data is None else data
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise _fail(path, role, 'DocVQA JSON {"data": [{"questionId", "answers"}]}', _describe(data))
    out = []
    for i, item in enumerate(items):
        where = f"data[{i}]"
        if not isinstance(item, dict) or "answers" not in item:
            raise _fail(path, role, f"'questionId' and 'answers' in {where}", _describe(item))
        qid = _get_id(item, path, role, where)
        answers = _answer_texts(item["answers"], path, role, where)
        out.append(QAExample(qid, str(item.get("question", "")), answers, image=item.get("image")))
    return out


def read_qa_jsonl(path: PathLike) -> list[QAExample]:
    """QA JSONL: ``{"id", "question", "answers", "context"?, "image"?, "audio"?}`` per line."""
    role = "references file"
    out = []
    for where, obj in _records(path, role):
        qid = _get_id(obj, path, role, where)
        if "answers" in obj:
            answers = _answer_texts(obj["answers"], path, role, where)
        elif isinstance(obj.get("answer"), str):
            answers = (obj["answer"],)
        else:
            raise _fail(path, role, f"'answers' (a list of strings) or 'answer' at {where}", _describe(obj))
        fields = {k: obj.get(k) for k in ("context", "image", "audio", "answer_type", "question_type")}
        out.append(QAExample(qid, str(obj.get("question", "")), answers, **fields))
    return out


def read_qa_file(path: PathLike) -> list[QAExample]:
    """Any QA reference format above, recognised by content (``.jsonl`` files are QA JSONL)."""
    if _is_jsonl(path):
        return _unique(read_qa_jsonl(path), path)
    role = "references file"
    data = read_json(path, role)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return _unique(read_vqa(path, data=data), path)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        first = data["data"][0] if data["data"] else {}
        if isinstance(first, dict) and "paragraphs" in first:
            return _unique(read_squad(path, data=data), path)
        return _unique(read_docvqa(path, data=data), path)
    if isinstance(data, list):
        return _unique(read_qa_jsonl(path), path)
    hint = (
        " (that is a VQA questions file: pass the annotations file)"
        if isinstance(data, dict) and "questions" in data
        else ""
    )
    raise _fail(
        path,
        role,
        'SQuAD JSON {"data": [{"paragraphs": ...}]}, VQA annotations {"annotations": [...]}, '
        'DocVQA {"data": [{"questionId", "answers"}]} or QA JSONL (*.jsonl)',
        _describe(data) + hint,
    )


def _unique(examples: list[QAExample], path: PathLike) -> list[QAExample]:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise EvalDataError(f"references file '{path}': question id {ex.id!r} appears more than once")
        seen.add(ex.id)
    return examples
