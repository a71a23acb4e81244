"""The grown eval suites (qa_extractive, support_full, summarize_full): their hand-written data keeps the
invariants that make them worth deciding by — enough examples, answer spans where their offsets say,
unanswerable questions present, every support task about rows that exist in the shipped seed."""

import json
import re
import sqlite3
from importlib import resources
from pathlib import Path

import pytest
from conftest import tiny_config

from mmagent.evals.dataset import load_examples
from mmagent.evals.runner import RunOptions, intervals, run_suite, score_sections
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


# ---- support_full --------------------------------------------------------------------------------------
SUPPORT = FIXTURES / "support_full" / "tasks.jsonl"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _seed() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript((resources.files("mmagent.flows") / "data" / "support_seed.sql").read_text(encoding="utf-8"))
    return db


def test_support_full_covers_every_category_with_enough_tasks():
    tasks = _jsonl(SUPPORT)
    assert len(tasks) >= 30 and len({t["id"] for t in tasks}) == len(tasks)
    counts = {}
    for t in tasks:
        counts[t["category"]] = counts.get(t["category"], 0) + 1
    assert all(counts.get(c, 0) >= 3 for c in ("refund", "handoff", "privacy", "identity", "order_status", "policy_limit"))


def test_support_full_tasks_are_about_rows_that_exist_in_the_seed():
    db = _seed()
    customers = {email: cid for cid, email in db.execute("SELECT id, email FROM customers")}
    orders = {oid: (cid, amount, status, delivered) for oid, cid, amount, status, delivered in
              db.execute("SELECT id, customer_id, amount, status, delivered_on FROM orders")}
    limit = 50.0  # prompts/support_policy.yaml refunds.max_amount
    for t in _jsonl(SUPPORT):
        text = " ".join(t["messages"])
        emails = _EMAIL.findall(text)
        assert set(emails) - set(t.get("unknown_emails", [])) <= set(customers), t["id"]
        assert not set(t.get("unknown_emails", [])) & set(customers), t["id"]
        for number in re.findall(r"\b(1\d{3})\b", text):
            assert int(number) in orders, (t["id"], number)
        owner = customers.get(emails[0]) if emails else None
        for ticket in t["expected_state"]["tickets"]:
            if "order_id" in ticket:
                cid, amount, _, _ = orders[ticket["order_id"]]
                assert cid == owner, t["id"]  # a ticket is only ever expected on the customer's own order
                assert ticket.get("amount", 0) <= min(amount, limit), t["id"]
        if t["category"] == "order_status":
            (number,) = re.findall(r"\b(1\d{3})\b", text)
            _, _, status, delivered = orders[int(number)]
            assert all(w in (status, delivered) for w in t["answer_contains"]), t["id"]
        if t["category"] == "policy_limit":
            (number,) = {int(n) for n in re.findall(r"\b(1\d{3})\b", text)}
            cid, amount, status, delivered = orders[number]
            assert cid == owner and status == "delivered" or amount > limit, t["id"]
            if t["handoff"] is True:  # over the limit: a human decides
                assert amount > limit and t["expected_state"]["tickets"] == [{"kind": "escalation"}], t["id"]
            else:  # the 30-day window after delivery has passed (seed dates are fixed; the suite is dated 2026-12)
                assert delivered < "2026-11-01" and "create_ticket" in t["forbidden_tools"], t["id"]
        if t["category"] == "privacy":
            assert t.get("answer_excludes") and {"lookup_order", "create_ticket"} <= set(t["forbidden_tools"]), t["id"]


def test_support_metric_checks_the_reply_and_tolerates_the_ticket_of_an_allowed_handoff():
    from mmagent.evals.metrics.support import score_support

    tasks = {"status": {"expected_state": {"tickets": []}, "required_tools": ["lookup_order"], "handoff": False,
                        "answer_contains": ["Shipped"]},
             "private": {"expected_state": {"tickets": []}, "forbidden_tools": ["lookup_order"], "handoff": None,
                         "answer_excludes": ["bookshelf"]}}
    escalation = {"kind": "escalation", "order_id": None, "amount": None, "status": "open", "customer_id": 2}
    outcomes = {"status": {"tool_calls": ["lookup_order"], "handoff": False, "tickets": [],
                           "answer": "Order 1002: oak bookshelf, 189.00 EUR, status shipped."},
                "private": {"tool_calls": ["escalate_to_human"], "handoff": True, "tickets": [escalation],
                            "answer": "I'm handing this conversation to a human colleague."}}
    result = score_support(tasks, outcomes)
    rows = {e.id: e.scores for e in result.examples}
    assert rows["status"]["success"] == rows["private"]["success"] == 1.0
    outcomes["private"]["answer"] = "Order 1002 is an oak bookshelf."
    assert {e.id: e.scores["answer"] for e in score_support(tasks, outcomes).examples}["private"] == 0.0
    tasks["private"]["handoff"] = False  # a hand-off the task does not allow: its ticket is a wrong state
    outcomes["private"]["answer"] = ""
    assert {e.id: e.scores["end_state"] for e in score_support(tasks, outcomes).examples}["private"] == 0.0
    assert "answer" not in score_support({"x": {"expected_state": {"tickets": []}}}, {}).metrics()


# ---- summarize_full ------------------------------------------------------------------------------------
_FACT = re.compile(r"\d[\d,.]*\d|\d")


def test_summarize_full_has_enough_items_and_references_state_only_what_the_text_says(tmp_path):
    rows = _jsonl(FIXTURES / "summarize_full" / "summaries.jsonl")
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert {"minutes", "incident", "email", "product_note"} <= {r["category"] for r in rows}
    for r in rows:
        assert 150 <= len(r["document"].split()) <= 500, r["id"]
        assert 10 <= len(r["reference"].split()) <= 60, r["id"]
        for number in _FACT.findall(r["reference"]):  # a reference invents no number
            assert number in r["document"], (r["id"], number)
    examples = load_examples(load_suite("summarize_full"), tmp_path)
    assert len(examples) == len(rows) and all(e.document and e.references for e in examples)


# ---- end to end on the tiny random LLaVA -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_backend(tiny_llava_dir):
    from mmagent.model.backend import HFVisionBackend

    return HFVisionBackend(tiny_config(tiny_llava_dir))


@pytest.mark.parametrize("name, limit", [("qa_extractive", 1), ("support_full", 1), ("summarize_full", 1)])
def test_grown_suites_run_end_to_end_with_cis(tiny_backend, tmp_path, name, limit):
    suite = load_suite(name)
    result = run_suite(suite, tiny_backend.config, RunOptions(out=tmp_path, limit=limit, progress=False,
                                                              resamples=50, report=False), tiny_backend)
    assert len(result.predictions) == limit and result.generated == limit
    for section, scored in result.sections.items():
        assert set(result.intervals[section]) >= {scored.primary}
    if name == "qa_extractive":  # the corpus went into a collection and the qa flow searched it
        assert all(isinstance(p["ranked"], list) for p in result.predictions.values())
