"""`mmagent eval score` end to end on small files in the official formats, run in-process."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from helpers.official_scorers import anls_question, squad_v1_evaluate, squad_v2_evaluate, vqa_evaluate

from mmagent.cli import main


def _write(path: Path, data) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in data), encoding="utf-8")
    else:
        path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _run_json(capsys, *args: str) -> dict:
    assert main(["eval", "score", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _run_error(capsys, *args: str) -> str:
    assert main(["eval", "score", *args]) == 2
    return capsys.readouterr().err


SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Super Bowl",
            "paragraphs": [
                {
                    "context": "Super Bowl 50 was played at Levi's Stadium in Santa Clara, California.",
                    "qas": [
                        {
                            "id": "a1",
                            "question": "Where?",
                            "answers": [
                                {"text": "Levi's Stadium", "answer_start": 28},
                                {"text": "Santa Clara, California", "answer_start": 46},
                            ],
                        },
                        {
                            "id": "a2",
                            "question": "Which Super Bowl?",
                            "answers": [{"text": "Super Bowl 50", "answer_start": 0}],
                        },
                        {
                            "id": "a3",
                            "question": "Which state?",
                            "answers": [{"text": "California", "answer_start": 59}],
                        },
                    ],
                }
            ],
        }
    ],
}
SQUAD_PREDS = {"a1": "at Levi's stadium", "a2": "the Super Bowl 50!", "a3": "Santa Clara"}


def test_squad_v1_matches_official_and_prints_official_names(tmp_path, capsys):
    refs, preds = (
        _write(tmp_path / "dev-v1.1.json", SQUAD),
        _write(tmp_path / "predictions.json", SQUAD_PREDS),
    )
    out = _run_json(capsys, "--task", "squad", "--predictions", str(preds), "--references", str(refs))
    expected = squad_v1_evaluate(SQUAD["data"], SQUAD_PREDS)
    assert out["metrics"] == pytest.approx(expected, abs=1e-6)
    assert out["task"] == "squad" and out["count"] == 3 and out["missing"] == []
    assert main(["eval", "score", "--task", "squad", "-p", str(preds), "-r", str(refs)]) == 0
    text = capsys.readouterr().out
    assert (
        f"exact_match  {expected['exact_match']:.6f}" in text and f"f1           {expected['f1']:.6f}" in text
    )


def test_squad_v2_with_na_probs_and_ci(tmp_path, capsys):
    data = copy.deepcopy(SQUAD)
    data["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "n1", "question": "Who lost?", "answers": [], "is_impossible": True}
    )
    preds = dict(SQUAD_PREDS, n1="Carolina")
    na_probs = {"a1": 0.1, "a2": 0.3, "a3": 0.6, "n1": 0.9}
    refs_file = _write(tmp_path / "dev-v2.0.json", data)
    out = _run_json(
        capsys, "--task", "squad_v2", "-p", str(_write(tmp_path / "p.json", preds)), "-r", str(refs_file),
        "--na-prob-file", str(_write(tmp_path / "na_prob.json", na_probs)), "--na-prob-thresh", "0.5", "--ci",
    )  # fmt: skip
    expected = squad_v2_evaluate(copy.deepcopy(data["data"]), preds, na_probs, 0.5)
    assert out["metrics"] == pytest.approx(expected, abs=1e-6)
    assert set(out["ci"]) == {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"}
    assert out["ci"]["f1"]["low"] <= out["metrics"]["f1"] <= out["ci"]["f1"]["high"]


def test_vqa_annotations_and_results_list(tmp_path, capsys):
    answers = {1: ["2"] * 6 + ["two"] * 4, 2: ["yes"] * 2 + ["no"] * 8, 3: ["red"] * 10}
    annotations = {
        "annotations": [
            {"question_id": qid, "image_id": 9, "answer_type": "other", "question_type": "what",
             "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                         for i, a in enumerate(ans)]}
            for qid, ans in answers.items()
        ]
    }  # fmt: skip
    results = [
        {"question_id": 1, "answer": "Two"},
        {"question_id": 2, "answer": "yes"},
        {"question_id": 3, "answer": "the red."},
    ]
    out = _run_json(
        capsys, "--task", "vqa", "-p", str(_write(tmp_path / "results.json", results)),
        "-r", str(_write(tmp_path / "annotations.json", annotations)),
    )  # fmt: skip
    gts = {str(a["question_id"]): copy.deepcopy(a) for a in annotations["annotations"]}
    _, overall = vqa_evaluate(gts, {str(r["question_id"]): r for r in results})
    assert out["metrics"]["accuracy"] == pytest.approx(overall, abs=1e-6)
    assert out["metrics"]["accuracy_other"] == pytest.approx(overall, abs=1e-6)


def test_anls_docvqa_format(tmp_path, capsys):
    gt = {"dataset_name": "docvqa", "data": [
        {"questionId": 10, "question": "Total?", "answers": ["$42.00", "42"], "image": "documents/a.png"},
        {"questionId": 11, "question": "Date?", "answers": ["March 3, 2001"]},
    ]}  # fmt: skip
    preds = [{"questionId": 10, "answer": "42.00"}, {"questionId": 11, "answer": "march 3 2001"}]
    out = _run_json(
        capsys,
        "--task",
        "anls",
        "-p",
        str(_write(tmp_path / "p.json", preds)),
        "-r",
        str(_write(tmp_path / "gt.json", gt)),
    )
    expected = (
        anls_question(["$42.00", "42"], "42.00") + anls_question(["March 3, 2001"], "march 3 2001")
    ) / 2
    assert out["metrics"]["anls"] == pytest.approx(expected, abs=1e-6)
    assert 0.5 < expected < 1.0


def test_qa_jsonl_references_with_jsonl_predictions(tmp_path, capsys):
    refs = [
        {"id": "x", "question": "q", "answers": ["the cat"], "image": "x.png"},
        {"id": "y", "question": "q", "answers": {"text": ["dog"]}},
    ]
    preds = [{"id": "x", "prediction": "cat"}, {"id": "y", "prediction": "a bird"}]
    out = _run_json(
        capsys,
        "--task",
        "squad",
        "-p",
        str(_write(tmp_path / "p.jsonl", preds)),
        "-r",
        str(_write(tmp_path / "r.jsonl", refs)),
    )
    assert out["metrics"] == {"exact_match": 50.0, "f1": 50.0}


def test_rouge_wer_classification_retrieval(tmp_path, capsys):
    r = _write(
        tmp_path / "r.jsonl",
        [
            {"id": "1", "reference": "the cat sat on the mat"},
            {"id": "2", "references": ["a dog", "one dog ran"]},
        ],
    )
    p = _write(
        tmp_path / "p.jsonl",
        [{"id": "1", "prediction": "the cat sat on the mat"}, {"id": "2", "prediction": "a dog"}],
    )
    rouge = _run_json(capsys, "--task", "rouge", "-p", str(p), "-r", str(r))["metrics"]
    assert rouge["rouge1"] == pytest.approx(1.0) and set(rouge) >= {"rouge2", "rougeL", "rougeLsum"}
    wer = _run_json(
        capsys,
        "--task",
        "wer",
        "-p",
        str(p),
        "-r",
        str(
            _write(
                tmp_path / "w.jsonl",
                [{"id": "1", "reference": "the cat sat on a mat"}, {"id": "2", "reference": "a dog"}],
            )
        ),
    )
    assert wer["metrics"]["wer"] == pytest.approx(1 / 8)
    labels = _write(tmp_path / "labels.jsonl", [{"id": "1", "label": "pos"}, {"id": "2", "label": "neg"}])
    preds = _write(tmp_path / "lp.json", {"1": "pos", "2": "pos"})
    cls = _run_json(capsys, "--task", "classification", "-p", str(preds), "-r", str(labels))
    assert cls["metrics"]["accuracy"] == 0.5 and cls["confusion"] == [[0, 1], [0, 1]]
    assert main(["eval", "score", "--task", "classification", "-p", str(preds), "-r", str(labels)]) == 0
    assert "confusion (rows = reference" in capsys.readouterr().out
    rel = _write(tmp_path / "qrels.jsonl", [{"id": "q", "relevant": {"d2": 2, "d3": 1}}])
    run = _write(tmp_path / "run.jsonl", [{"id": "q", "ranked": ["d1", "d2", "d3"]}])
    ret = _run_json(capsys, "--task", "retrieval", "-p", str(run), "-r", str(rel), "--k", "1", "--k", "2")[
        "metrics"
    ]
    assert ret["recall@1"] == 0.0 and ret["recall@2"] == 0.5 and ret["mrr"] == 0.5 and "ndcg@2" in ret


def test_errors_name_the_file_and_what_was_expected(tmp_path, capsys):
    refs = _write(tmp_path / "dev.json", SQUAD)
    preds = _write(tmp_path / "p.json", SQUAD_PREDS)
    err = _run_error(capsys, "--task", "squad", "-p", str(tmp_path / "nope.json"), "-r", str(refs))
    assert "predictions file" in err and "nope.json" in err and "does not exist" in err
    err = _run_error(
        capsys,
        "--task",
        "squad",
        "-p",
        str(_write(tmp_path / "bad.json", [{"answer": "x"}])),
        "-r",
        str(refs),
    )
    assert "bad.json" in err and "id field" in err and "found" in err
    err = _run_error(
        capsys, "--task", "squad", "-p", str(_write(tmp_path / "other.json", {"zz": "x"})), "-r", str(refs)
    )
    assert "none of the 1 ids" in err and "other.json" in err
    err = _run_error(
        capsys,
        "--task",
        "squad",
        "-p",
        str(preds),
        "-r",
        str(_write(tmp_path / "questions.json", {"questions": []})),
    )
    assert "VQA questions file" in err and "annotations" in err
    dup = _write(tmp_path / "dup.jsonl", [{"id": "a1", "prediction": "x"}, {"id": "a1", "prediction": "y"}])
    assert "more than once" in _run_error(capsys, "--task", "squad", "-p", str(dup), "-r", str(refs))
    (tmp_path / "broken.json").write_text('{"a1": ', encoding="utf-8")
    assert "not valid JSON" in _run_error(
        capsys, "--task", "squad", "-p", str(tmp_path / "broken.json"), "-r", str(refs)
    )
    assert "squad_v2" in _run_error(
        capsys, "--task", "bleu", "-p", str(preds), "-r", str(refs)
    )  # lists tasks
    na = str(_write(tmp_path / "na.json", {"a1": 0.5}))
    err = _run_error(capsys, "--task", "squad", "-p", str(preds), "-r", str(refs), "--na-prob-file", na)
    assert "only applies to --task squad_v2" in err


def test_help_documents_formats(capsys):
    assert main(["eval", "score", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("squad_v2", "VQA annotations", "questionId", "JSONL", "ranked"):
        assert word in out
