"""Customer-service task metrics: did a conversation reach the expected database state, make the required
tool calls, avoid the forbidden ones, and hand off to a human exactly when it should?

Per task (1 = met, 0 = not): ``end_state`` (every expected ticket exists with the expected fields, and no
other new ticket was filed), ``required_tools``, ``forbidden_tools``, ``handoff`` (``handoff: null`` in a task = either is fine); ``success`` is all four.
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


def score_support(tasks: Mapping[str, Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, Any]]) -> SupportResult:
    """`tasks`: {id: {"expected_state": {"tickets": [...]}, "required_tools", "forbidden_tools", "handoff"}};
    `outcomes`: {id: {"tool_calls": [names], "handoff": bool, "tickets": [new ticket rows], "answer"}}."""
    examples = []
    for tid, task in tasks.items():
        out = outcomes.get(tid)
        missing = out is None
        out = out or {"tool_calls": [], "handoff": False, "tickets": [], "answer": ""}
        called = set(out["tool_calls"])
        expected = list((task.get("expected_state") or {}).get("tickets", []))
        checks = {
            "end_state": float(end_state_met(out["tickets"], expected)),
            "required_tools": float(set(task.get("required_tools", [])) <= called),
            "forbidden_tools": float(not called & set(task.get("forbidden_tools", []))),
            "handoff": float(task.get("handoff", False) is None or bool(out["handoff"]) == bool(task.get("handoff"))),
        }
        checks = {k: (0.0 if missing else v) for k, v in checks.items()}
        scores = {"success": float(all(checks.values()) and not missing), **checks}
        summary = f"tools={sorted(called)} handoff={bool(out['handoff'])} tickets={len(out['tickets'])}: {out.get('answer', '')}"
        examples.append(ExampleScore(str(tid), summary, (str(task),), scores, missing))
    n = len(examples) or 1
    aggregate = {k: sum(e.scores[k] for e in examples) / n for k in ("success",) + CHECKS}
    return SupportResult(task="support", examples=examples, primary="success", scores=aggregate)
