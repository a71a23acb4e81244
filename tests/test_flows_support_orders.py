"""The support planner sees `order_id` limited to the order numbers the customer wrote (the grammar is built
from that schema), while the real tools, their validation and the policy stay unchanged."""

from __future__ import annotations

import pytest
from mmagent.tools.base import ToolError

from mmagent.config import Config
from mmagent.flows.support import _only_orders
from mmagent.flows.support_policy import find_order_ids
from mmagent.flows.support_tools import support_tools


@pytest.fixture
def tools(tmp_path):
    config = Config()
    config.paths.data = str(tmp_path)
    return support_tools(config)


def test_planner_schema_only_allows_the_orders_the_customer_named(tools):
    ticket = tools["create_ticket"]
    named = find_order_ids("The teapot from order 1001 arrived cracked; order 1005 too.")
    planner = _only_orders(ticket, named)
    assert planner.inputs["properties"]["order_id"]["enum"] == [1001, 1005]
    planner.validate_arguments({"order_id": 1001, "kind": "refund", "summary": "cracked teapot"})
    with pytest.raises(ToolError, match="order_id"):
        planner.validate_arguments({"order_id": 1002, "kind": "refund", "summary": "cracked teapot"})
    # the tool the flow runs keeps its own schema
    assert "enum" not in ticket.inputs["properties"]["order_id"]
    ticket.validate_arguments({"order_id": 1002, "kind": "refund", "summary": "cracked teapot"})


def test_no_order_named_or_no_order_argument_leaves_the_tool_as_is(tools):
    assert _only_orders(tools["create_ticket"], []) is tools["create_ticket"]
    assert _only_orders(tools["escalate_to_human"], [1001]) is tools["escalate_to_human"]


# ---- bug 17.5: the ticket went to the customer's other order (1002 for the 1001 they named) ------------
def test_order_numbers_ignore_amounts_and_keep_the_customers_order():
    assert find_order_ids("Please refund my espresso machine, order 1005, 249 euros") == [1005]
    assert find_order_ids("€34.90 for 1001, and #1002 too; 1001 again") == [1001, 1002]
    assert find_order_ids("Where is my bookshelf?") == []


def test_the_order_named_in_an_earlier_turn_binds_a_later_turn():
    from mmagent.flows.support import conversation_orders

    history = [{"role": "user", "content": "My teapot from order 1001 arrived cracked"},
               {"role": "assistant", "content": "Order 1002: oak bookshelf, status shipped."},  # not the customer's words
               {"role": "user", "content": "ana@example.com"},
               {"role": "assistant", "content": "Thank you, Ana: you are verified."},
               {"role": "user", "content": "yes please, refund it"}]
    assert conversation_orders({"message": "yes please, refund it", "history": history}) == [1001]
    assert conversation_orders({"message": "and order 1002?", "history": history}) == [1002]
    assert conversation_orders({"message": "refund it", "history": []}) == []


def test_policy_asks_back_instead_of_acting_on_an_order_the_customer_did_not_name(tools):
    from mmagent.flows.support_policy import Policy

    policy, db = Policy.load(), tools["create_ticket"].db
    ticket = {"order_id": 1002, "kind": "refund", "summary": "cracked teapot"}
    wrong = policy.check("create_ticket", ticket, 1, db, named_orders=[1001])
    assert wrong.verdict == "confirm" and "1001" in wrong.reason and "1002" in wrong.reason
    unnamed = policy.check("lookup_order", {"order_id": 1002}, 1, db, named_orders=[])
    assert unnamed.verdict == "confirm" and "order number" in unnamed.reason
    assert policy.check("create_ticket", {**ticket, "order_id": 1001}, 1, db, named_orders=[1001]).verdict == "allow"
    assert policy.check("lookup_order", {"order_id": 1002}, None, db, named_orders=[1001]).verdict == "identify"
    assert policy.check("escalate_to_human", {"reason": "x"}, 1, db, user_asked_human=True,
                        named_orders=[]).verdict == "allow"  # no order argument: nothing to bind


@pytest.fixture
def flow_cfg(tmp_path, tiny_llava_dir):
    from conftest import tiny_config

    return tiny_config(tiny_llava_dir, **{"paths.data": str(tmp_path / "data"), "memory.path": str(tmp_path / "mem"),
                                          "model.max_new_tokens": 8})


def test_three_turn_conversation_acts_on_the_order_named_in_the_first(flow_cfg, tmp_path):
    """The reported sequence, on the tiny model: order named, then identity, then "where is it now?"."""
    import yaml

    from mmagent.flows.base import DoneEvent, ToolResultEvent, get_flow
    from mmagent.flows.prompting import shipped_path
    from mmagent.flows.support import SupportRequest

    policy = yaml.safe_load(shipped_path("support_policy").read_text())
    policy["allowed_tools"] = ["lookup_order"]  # every call then carries an order number to check
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    flow = get_flow("support", flow_cfg)
    turns = ["My teapot from order 1001 arrived cracked", "ana@example.com", "Where is it now?"]
    events = [list(flow.run(SupportRequest(text, "bug5", policy=str(path)))) for text in turns]
    done = [e for e in events[-1] if isinstance(e, DoneEvent)][-1]
    assert done.data["tool"] == "lookup_order" and done.data["result"]["id"] == 1001, done
    # no order named anywhere in the conversation: whatever number the model writes, it is asked back, not run
    unnamed = [list(flow.run(SupportRequest(text, "bug5-b", policy=str(path))))
               for text in ["ana@example.com", "Where is my parcel?"]]
    done = [e for e in unnamed[-1] if isinstance(e, DoneEvent)][-1]
    refused = [e for e in unnamed[-1] if isinstance(e, ToolResultEvent) and e.name == "lookup_order"]
    assert "order number" in done.answer and refused and not any(e.ok for e in refused), done
    flow.close()


# ---- the shop's rules the model cannot bend: the return window and the customer's own amount ---------------
def test_a_refund_after_the_return_window_is_denied_with_the_dates(tools):
    from datetime import date

    from mmagent.flows.support_policy import Policy

    policy, db = Policy.load(), tools["create_ticket"].db
    assert db.today() == date(2026, 11, 30)  # the demo shop's own day: the demo does not age
    late = {"order_id": 1011, "kind": "refund", "summary": "towels"}  # delivered 2026-08-07
    decision = policy.check("create_ticket", late, 5, db, named_orders=[1011], today=db.today())
    assert decision.verdict == "deny" and "2026-08-07" in decision.reason and "30 days" in decision.reason
    damaged = {**late, "kind": "damaged"}  # the window limits refunds, not damage reports
    assert policy.check("create_ticket", damaged, 5, db, named_orders=[1011], today=db.today()).verdict == "allow"
    fresh = {"order_id": 1007, "kind": "refund", "summary": "dent"}  # delivered 2026-11-24, 32.50
    assert policy.check("create_ticket", fresh, 4, db, named_orders=[1007], today=db.today()).verdict == "allow"
    assert policy.check("create_ticket", fresh, 4, db, named_orders=[1007], today=date(2027, 1, 1)).verdict == "deny"


def test_a_database_without_the_shop_day_counts_to_the_real_date(tmp_path):
    import sqlite3
    from datetime import date

    from mmagent.flows.support_tools import SupportDB

    path = tmp_path / "real.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, turn INTEGER)").connection.commit()
    assert SupportDB(path).today() == date.today()


def test_the_refund_amount_is_the_one_the_customer_wrote():
    from mmagent.flows.support import conversation_amounts
    from mmagent.flows.support_policy import Policy, find_amounts

    assert find_amounts("I accept a partial refund of 30 euros instead") == [30.0]
    assert find_amounts("order 1024, 29.90 euros; €16 or 16 EUR") == [29.9, 16.0]
    assert find_amounts("refund order 1006 please") == []
    refund = {"order_id": 1012, "kind": "refund", "summary": "scratched"}
    assert Policy.bind_amount(refund, [30.0])["amount"] == 30.0  # the model left it out
    assert Policy.bind_amount({**refund, "amount": 189.0}, [30.0])["amount"] == 30.0  # or wrote another
    assert "amount" not in Policy.bind_amount({**refund, "amount": 12.0}, [])  # nobody said 12: the order's total
    assert Policy.bind_amount({**refund, "amount": 16.0}, [16.0, 20.0])["amount"] == 16.0
    assert "amount" not in Policy.bind_amount({**refund, "kind": "damaged", "amount": 50.0}, [])  # the limit, not theirs
    assert Policy.bind_amount({**refund, "kind": "damaged", "amount": 30.0}, [30.0])["amount"] == 30.0
    history = [{"role": "user", "content": "The purifier from order 1012 is scratched, 30 euros back is fine"},
               {"role": "assistant", "content": "Order 1012: Brisa air purifier, 189.00 EUR"}]
    assert conversation_amounts({"message": "yes do it", "history": history}) == [30.0]
