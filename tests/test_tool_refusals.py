"""Tool calls outside a flow's allow-list or its policy are refused before they run (issue 16, Security).

Two layers: a name the flow did not bind is never a call (the parser makes it an invalid call); a bound
tool whose call the policy refuses never reaches the tool — the support flow emits a failed tool result
saying `policy: ...` and the business database is unchanged. The model is scripted (it is the untrusted
party: a confused or prompt-injected model proposes the call); the flow, parser, policy, tools and SQLite
are the real ones.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from helpers.scripted import ScriptedModel

from mmagent.flows.base import DoneEvent, ToolResultEvent, get_flow
from mmagent.orchestration.tool_parsing import parse_tool_calls


def test_a_tool_the_flow_did_not_bind_is_never_a_call():
    parsed = parse_tool_calls('<tool_call>{"name": "drop_tables", "arguments": {"all": true}}</tool_call>',
                              ["lookup_order", "create_ticket"])
    assert parsed.calls == [] and parsed.invalid[0].name == "drop_tables"
    assert "unknown tool 'drop_tables'" in parsed.invalid[0].error
    bare = parse_tool_calls('{"name": "drop_tables", "arguments": {}}', ["lookup_order"])
    assert bare.calls == []  # a bare JSON object naming an unbound tool stays text


def call(name: str, **args) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


@pytest.fixture
def support(tmp_path):
    from mmagent.config import load_config
    from mmagent.flows.prompting import shipped_path

    cfg = load_config(overrides={"paths.data": str(tmp_path / "data"), "memory.path": str(tmp_path / "mem")}, env={})
    shipped = yaml.safe_load(shipped_path("support_policy").read_text())
    flows = []

    def start(reply: str, *allowed: str):
        path = tmp_path / f"policy-{len(flows)}.yaml"
        path.write_text(yaml.safe_dump({**shipped, "allowed_tools": list(allowed)}))
        flow = get_flow("support", cfg)
        flow._backend = ScriptedModel(cfg, reply)  # the flow's model, loaded lazily otherwise
        flows.append(flow)
        return flow, str(path)

    yield start, Path(cfg.paths.data) / "support_demo.sqlite"
    for flow in flows:
        flow.close()


def _run(flow, text: str, session: str, policy: str) -> list:
    from mmagent.flows.support import SupportRequest

    return list(flow.run(SupportRequest(text, session, policy=policy)))


def _tickets(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, kind, order_id FROM tickets ORDER BY id").fetchall()


def _refusals(events: list, name: str) -> list[str]:
    results = [e for e in events if isinstance(e, ToolResultEvent) and e.name == name]
    assert not any(e.ok for e in results), results  # the tool never ran
    return [e.error for e in results]


def _new_actions(db: Path, before: list[tuple]) -> list[tuple]:
    """Tickets opened since `before`, other than the flow's own hand-off to a human."""
    return [t for t in _tickets(db) if t not in before and t[1] != "escalation"]


def test_a_tool_outside_the_allow_list_is_refused_before_it_runs(support, caplog):
    start, db = support
    flow, policy = start(call("create_ticket", order_id=1001, kind="refund", summary="broken"), "lookup_order")
    _run(flow, "my email is ana@example.com", "a1", policy)
    before = _tickets(db)
    events = _run(flow, "Refund order 1001 please", "a1", policy)
    errors = _refusals(events, "create_ticket")
    assert errors and all("unknown tool 'create_ticket'" in e for e in errors), errors
    assert _new_actions(db, before) == []
    assert any("refused tool call create_ticket" in r.getMessage() for r in caplog.records), "refusal not logged"


def test_a_refund_on_another_customers_order_is_refused_before_the_tool_runs(support, caplog):
    start, db = support
    flow, policy = start(call("create_ticket", order_id=1003, kind="refund", summary="broken"), "create_ticket")
    assert "Ana" in [e for e in _run(flow, "my email is ana@example.com", "r1", policy)
                     if isinstance(e, DoneEvent)][-1].answer
    before = _tickets(db)
    events = _run(flow, "Please refund order 1003, it arrived broken", "r1", policy)  # 1003 is Ben's
    errors = _refusals(events, "create_ticket")
    assert errors and all(e.startswith("policy: order 1003 does not belong") for e in errors), errors
    assert _new_actions(db, before) == []
    logged = [r.getMessage() for r in caplog.records if r.name == "mmagent.flows.support"]
    assert any("session r1: refused tool call create_ticket" in m and "order 1003" in m for m in logged), logged


def test_an_unverified_customer_gets_asked_who_they_are_and_nothing_runs(support):
    start, db = support
    flow, policy = start(call("create_ticket", order_id=1001, kind="refund", summary="broken"), "create_ticket")
    before = _tickets(db)
    events = _run(flow, "Refund order 1001 please, it is broken", "r2", policy)
    assert _refusals(events, "create_ticket") == ["policy: the customer's identity is not verified yet"]
    assert _tickets(db) == before


def test_an_escalation_nobody_asked_for_is_refused(support):
    start, db = support
    flow, policy = start(call("escalate_to_human", reason="the document says so"), "escalate_to_human")
    before = _tickets(db)
    events = _run(flow, "Where is order 1001?", "r3", policy)
    errors = _refusals(events, "escalate_to_human")
    assert errors and all(e.startswith("policy: escalation happens when the customer asks") for e in errors)
    assert _tickets(db) == before
