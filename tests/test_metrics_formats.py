"""Readers for the standard eval formats: what they return, and the errors for files that do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmagent.evals import formats
from mmagent.evals.formats import EvalDataError, QAExample


def _write(path: Path, data) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in data) if path.suffix == ".jsonl" else json.dumps(data)
    path.write_text(text, encoding="utf-8")
    return path


def test_squad_reader(tmp_path):
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "ctx", "qas": [
        {"id": "a", "question": "q?", "answers": [{"text": "x", "answer_start": 0}]},
        {"id": "b", "question": "q2?", "answers": [], "plausible_answers": [{"text": "y"}],
         "is_impossible": True},
    ]}]}]}  # fmt: skip
    examples = formats.read_qa_file(_write(tmp_path / "dev.json", data))
    assert examples == [QAExample("a", "q?", ("x",), context="ctx"), QAExample("b", "q2?", (), context="ctx")]


def test_vqa_reader_with_questions(tmp_path):
    ann = {"annotations": [{"question_id": 7, "image_id": 42, "answer_type": "number",
                            "question_type": "how many",
                            "answers": [{"answer": "2", "answer_id": i} for i in range(10)]}]}  # fmt: skip
    questions = _write(
        tmp_path / "q.json", {"questions": [{"question_id": 7, "image_id": 42, "question": "How many?"}]}
    )
    (example,) = formats.read_vqa(_write(tmp_path / "a.json", ann), questions)
    assert example == QAExample(
        "7", "How many?", ("2",) * 10, answer_type="number", question_type="how many", image_id="42"
    )
    assert (
        formats.read_qa_file(tmp_path / "a.json")[0].question == ""
    )  # without questions: no text, same answers


def test_docvqa_and_jsonl_readers(tmp_path):
    doc = _write(
        tmp_path / "val.json",
        {"data": [{"questionId": 3, "question": "q", "answers": ["a", "b"], "image": "d/x.png"}]},
    )
    assert formats.read_qa_file(doc) == [QAExample("3", "q", ("a", "b"), image="d/x.png")]
    rows = [
        {"id": "1", "question": "q", "answers": ["a"], "audio": "s.wav"},
        {"id": "2", "question": "q", "answers": {"text": ["b", "c"], "answer_start": [0, 4]}},
        {"id": 3, "question": "q", "answer": "d", "context": "ctx"},
    ]
    got = formats.read_qa_file(_write(tmp_path / "qa.jsonl", rows))
    assert [(e.id, e.answers) for e in got] == [("1", ("a",)), ("2", ("b", "c")), ("3", ("d",))]
    assert got[0].audio == "s.wav" and got[2].context == "ctx"


def test_prediction_shapes(tmp_path):
    expected = {"1": "a", "2": "b"}
    assert formats.read_predictions(_write(tmp_path / "p.json", {"1": "a", "2": "b"})) == expected
    assert (
        formats.read_predictions(
            _write(
                tmp_path / "v.json", [{"question_id": 1, "answer": "a"}, {"question_id": 2, "answer": "b"}]
            )
        )
        == expected
    )
    assert (
        formats.read_predictions(
            _write(tmp_path / "d.jsonl", [{"questionId": 1, "answer": "a"}, {"id": "2", "prediction": "b"}])
        )
        == expected
    )
    assert formats.read_na_probs(_write(tmp_path / "na.json", {"1": 0.25, "2": 1})) == {"1": 0.25, "2": 1.0}
    assert formats.read_rankings(_write(tmp_path / "r.jsonl", [{"id": "q", "ranked": ["d1", 2]}])) == {
        "q": ["d1", "2"]
    }


def test_simple_reference_shapes(tmp_path):
    refs = _write(
        tmp_path / "r.jsonl", [{"id": "1", "reference": "x"}, {"id": "2", "references": ["y", "z"]}]
    )
    assert formats.read_text_references(refs) == {"1": ("x",), "2": ("y", "z")}
    assert formats.read_labels(_write(tmp_path / "l.jsonl", [{"id": "1", "label": 3}])) == {"1": "3"}
    rel = _write(tmp_path / "q.jsonl", [{"id": "a", "relevant": ["d1"]}, {"id": "b", "relevant": {"d2": 2}}])
    assert formats.read_relevance(rel) == {"a": {"d1": 1.0}, "b": {"d2": 2.0}}


@pytest.mark.parametrize(
    "name, content, reader, message",
    [
        ("p.json", {"1": 5}, formats.read_predictions, "a string for the prediction of id '1'"),
        ("p.jsonl", [{"id": "1"}], formats.read_predictions, "prediction field"),
        (
            "s.json",
            {"data": [{"paragraphs": [{"qas": [{"id": "a"}]}]}]},
            formats.read_qa_file,
            "'answers' in data[0]",
        ),
        ("s.json", {"data": [{"questionId": 1, "answers": "x"}]}, formats.read_qa_file, "answers as a list"),
        ("x.json", {"foo": 1}, formats.read_qa_file, "SQuAD JSON"),
        ("n.json", {"1": "high"}, formats.read_na_probs, "a number for id '1'"),
        ("r.jsonl", [{"id": "1", "text": "x"}], formats.read_text_references, "'reference'"),
        ("l.jsonl", [{"id": "1"}], formats.read_labels, "'label'"),
        ("q.jsonl", [{"id": "1", "relevant": "d1"}], formats.read_relevance, "'relevant'"),
        (
            "d.jsonl",
            [{"id": "1", "answers": ["a"]}, {"id": "1", "answers": ["b"]}],
            formats.read_qa_file,
            "more than once",
        ),
    ],
)
def test_bad_files_say_what_was_expected(tmp_path, name, content, reader, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(EvalDataError) as info:
        reader(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_jsonl_named_json_gets_a_hint(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text('{"id": "1", "prediction": "a"}\n{"id": "2", "prediction": "b"}\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match="looks like JSONL"):
        formats.read_predictions(path)
