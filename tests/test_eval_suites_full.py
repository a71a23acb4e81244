"""The grown eval suites (qa_extractive, support_full, summarize_full): their hand-written data keeps the
invariants that make them worth deciding by — enough examples, answer spans where their offsets say,
unanswerable questions present, every support task about rows that exist in the shipped seed."""

import json
import re
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from mmagent.evals.dataset import load_examples
from mmagent.evals.runner import intervals, score_sections
from mmagent.evals.suite import load_suite

FIXTURES = Path(__file__).resolve().parents[1] / "evals" / "fixtures"
QA = FIXTURES / "qa_extractive"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _squad() -> list[dict]:
    return json.loads((QA / "squad_v2.json").read_text(encoding="utf-8"))["data"]


def test_qa_extractive_spans_sit_at_their_offsets_and_unanswerables_have_none():
    articles = _squad()
    assert len(articles) >= 20
    questions = answerable = 0
    for article in articles:
        (paragraph,) = article["paragraphs"]
        context = paragraph["context"]
        assert 120 <= len(context.split()) <= 400, article["title"]
        for qa in paragraph["qas"]:
            questions += 1
            if qa["is_impossible"]:
                assert qa["answers"] == [], qa["id"]
                continue
            answerable += 1
            assert qa["answers"], qa["id"]
            for answer in qa["answers"]:
                start = answer["answer_start"]
                assert context[start:start + len(answer["text"])] == answer["text"], qa["id"]
    assert questions >= 100 and questions - answerable >= 20


def test_qa_extractive_corpus_is_the_contexts_and_retrieval_queries_point_at_them():
    contexts = {a["title"]: a["paragraphs"][0]["context"] for a in _squad()}
    corpus = {d["id"]: d["text"] for d in _jsonl(QA / "corpus.jsonl")}
    assert corpus == contexts
    gold = {qa["id"]: (a["title"], qa) for a in _squad() for qa in a["paragraphs"][0]["qas"]}
    queries = _jsonl(QA / "retrieval_queries.jsonl")
    assert {q["id"] for q in queries} == {i for i, (_, qa) in gold.items() if not qa["is_impossible"]}
    for q in queries:
        doc, qa = gold[q["id"]]
        assert q["relevant"] == [doc] and q["question"] == qa["question"]
        assert q["answers"] == [a["text"] for a in qa["answers"]]
    assert {"lexical", "paraphrase", "one-noun"} <= {q["category"] for q in queries}


def test_qa_flow_answers_score_as_squad_v2_with_abstentions_empty_and_subset_cis(tmp_path):
    suite = load_suite("qa_extractive")
    assert (suite.call, suite.metric) == ("flow:qa", "squad_v2")
    examples = load_examples(suite, tmp_path)[:40]
    has, no = [e for e in examples if e.references], [e for e in examples if not e.references]
    assert has and no
    predictions = {e.id: {"answer": e.references[0], "answered": True, "ranked": [], "transcript": ""} for e in has}
    # one unanswerable declined by the flow, the rest answered with something made up
    predictions.update({e.id: {"answer": "I don't know.", "answered": False, "ranked": [], "transcript": ""}
                        for e in no[:1]})
    predictions.update({e.id: {"answer": "42 euros", "answered": True, "ranked": [], "transcript": ""}
                        for e in no[1:]})
    (result,) = score_sections(suite, examples, predictions).values()
    metrics = result.metrics()
    assert metrics["HasAns_exact"] == 100.0
    assert metrics["NoAns_exact"] == pytest.approx(100.0 / len(no))
    cis = intervals(result, n_resamples=200, seed=0)
    assert {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"} <= set(cis)
    assert "total" not in cis
    assert cis["HasAns_f1"].low == cis["HasAns_f1"].high == 100.0
    assert cis["NoAns_exact"].low <= metrics["NoAns_exact"] <= cis["NoAns_exact"].high


@pytest.mark.parametrize("text, declined", [("I don't know.", True), ("i do not know [1]", True),
                                            ("I don’t know the answer", True), ("30 days [1]", False),
                                            ("We know it is 30 days", False)])
def test_a_model_saying_it_does_not_know_is_an_abstention(text, declined):
    from mmagent.evals.predictors import _DECLINED

    assert bool(_DECLINED.match(text)) is declined
