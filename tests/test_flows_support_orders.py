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
