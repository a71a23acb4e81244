"""Customer-service task metrics: did a conversation reach the expected database state, make the required
tool calls, avoid the forbidden ones, and hand off to a human exactly when it should?

Per task (1 = met, 0 = not): ``end_state`` (every expected ticket exists with the expected fields, and no
other new ticket was filed), ``required_tools``, ``forbidden_tools``, ``handoff`` (``handoff: null`` in a task = either is fine,
and so is the escalation ticket a hand-off files); ``success`` is all four.
When any task of a suite lists ``answer_contains`` / ``answer_excludes`` (texts, case-insensitive, checked
against the last reply), every task also gets ``answer`` (1 when the reply holds each wanted text and none
of the excluded ones, e.g. another customer's order details), and ``success`` needs it too.
Aggregates are means (0-1), like tau-bench's pass rate over tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from mmagent.evals.metrics.base import ExampleScore, ScoreResult

CHECKS = ("end_state", "required_tools", "forbidden_tools", "handoff")


@dataclass
class SupportResult(ScoreResult):
    """Mean ``success``, ``end_state``, ``required_tools``, ``forbidden_tools``, ``handoff`` over tasks."""

    scores: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return dict(self.scores)


def _matches(ticket: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    for key, want in expected.items():
        got = ticket.get(key)
        if isinstance(want, float) or isinstance(got, float):
            if got is None or want is None or abs(float(got) - float(want)) > 0.005:
                return False
        elif got != want:
            return False
    return True


def end_state_met(tickets: list[Mapping[str, Any]], expected: list[Mapping[str, Any]]) -> bool:
    """Each expected ticket matched by a distinct new ticket, and no unexpected new tickets."""
    left = list(tickets)
    for want in expected:
        hit = next((t for t in left if _matches(t, want)), None)
        if hit is None:
            return False
        left.remove(hit)
    return not left


def answer_met(answer: str, task: Mapping[str, Any]) -> bool:
    """The reply holds every ``answer_contains`` text and no ``answer_excludes`` text (case-insensitive)."""
    text = answer.lower()
    return (all(str(want).lower() in text for want in task.get("answer_contains", []))
            and not any(str(bad).lower() in text for bad in task.get("answer_excludes", [])))


def score_support(tasks: Mapping[str, Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, Any]]) -> SupportResult:
    """`tasks`: {id: {"expected_state": {"tickets": [...]}, "required_tools", "forbidden_tools", "handoff"}};
    `outcomes`: {id: {"tool_calls": [names], "handoff": bool, "tickets": [new ticket rows], "answer"}}."""
    examples = []
    checks_answer = any("answer_contains" in t or "answer_excludes" in t for t in tasks.values())
    for tid, task in tasks.items():
        out = outcomes.get(tid)
        missing = out is None
        out = out or {"tool_calls": [], "handoff": False, "tickets": [], "answer": ""}
        called = set(out["tool_calls"])
        expected = list((task.get("expected_state") or {}).get("tickets", []))
        tickets = list(out["tickets"])
        if task.get("handoff", False) is None and not any(t.get("kind") == "escalation" for t in expected):
            tickets = [t for t in tickets if t.get("kind") != "escalation"]
        checks = {
            "end_state": float(end_state_met(tickets, expected)),
            "required_tools": float(set(task.get("required_tools", [])) <= called),
            "forbidden_tools": float(not called & set(task.get("forbidden_tools", []))),
            "handoff": float(task.get("handoff", False) is None or bool(out["handoff"]) == bool(task.get("handoff"))),
        }
        if checks_answer:
            checks["answer"] = float(answer_met(str(out.get("answer") or ""), task))
        checks = {k: (0.0 if missing else v) for k, v in checks.items()}
        scores = {"success": float(all(checks.values()) and not missing), **checks}
        summary = f"tools={sorted(called)} handoff={bool(out['handoff'])} tickets={len(out['tickets'])}: {out.get('answer', '')}"
        examples.append(ExampleScore(str(tid), summary, (str(task),), scores, missing))
    n = len(examples) or 1
    names = ("success",) + CHECKS + (("answer",) if checks_answer else ())
    aggregate = {k: sum(e.scores[k] for e in examples) / n for k in names}
    return SupportResult(task="support", examples=examples, primary="success", scores=aggregate)
