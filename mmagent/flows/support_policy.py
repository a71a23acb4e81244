"""The support agent's policy: what it may do, decided in code from a YAML file before any tool runs.

The model proposes tool calls; :meth:`Policy.check` says whether each may run (`allow`), must wait for
the customer's identity (`identify`), must go to a human (`handoff`), or is refused (`refuse`). Nothing
a model reads — least of all a retrieved document — can change these decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmagent.flows.base import FlowError

if TYPE_CHECKING:
    from mmagent.flows.support_tools import SupportDB

DECISIONS = ("allow", "identify", "handoff", "refuse", "confirm")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ORDER = re.compile(r"\b(\d{3,9})\b")
# "249 euros", "€249", "34.90 EUR": an amount, not an order number
_MONEY = re.compile(r"(?:[$€£]\s*\d[\d.,]*)|(?:\b\d[\d.,]*\s*(?:€|\$|£|eur|euros?|usd|dollars?|gbp|pounds?)\b)",
                    re.IGNORECASE)


@dataclass(frozen=True)
class Decision:
    verdict: str  # one of DECISIONS
    reason: str = ""


@dataclass
class Policy:
    allowed_tools: list[str]
    identity_required_for: list[str] = field(default_factory=list)
    refund_max_amount: float = 0.0
    handoff_words: list[str] = field(default_factory=list)
    after_failures: int = 2
    tool_triggers: list[str] = field(default_factory=list)
    origin: str = ""

    def __post_init__(self) -> None:
        if self.after_failures < 1:
            raise FlowError(f"policy {self.origin}: handoff.after_failures must be >= 1; got {self.after_failures}.")
        if self.refund_max_amount < 0:
            raise FlowError(f"policy {self.origin}: refunds.max_amount must be >= 0; got {self.refund_max_amount}.")

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Policy":
        """The shipped policy (`prompts/support_policy.yaml`) or the user's copy at `path`."""
        from mmagent.flows.prompting import load_prompts

        raw = load_prompts("support_policy", path, ("allowed_tools", "identity", "refunds", "handoff")).texts
        try:
            return cls(
                allowed_tools=list(raw["allowed_tools"]),
                identity_required_for=list(raw["identity"].get("required_for", [])),
                refund_max_amount=float(raw["refunds"]["max_amount"]),
                handoff_words=[str(w).lower() for w in raw["handoff"].get("on_request", [])],
                after_failures=int(raw["handoff"].get("after_failures", 2)),
                tool_triggers=[str(w).lower() for w in raw.get("tool_triggers", [])],
                origin=str(path or "support_policy.yaml"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FlowError(f"policy file {path or 'support_policy.yaml'} is malformed ({exc!r}); "
                            "compare it with `mmagent prompts cp support_policy`.") from exc

    # ---- reading the customer's own message (code, not model judgment) ----------------------------
    def asks_for_human(self, message: str) -> bool:
        text = message.lower()
        return any(re.search(rf"\b{re.escape(w)}\b", text) for w in self.handoff_words)

    def wants_action(self, message: str) -> bool:
        text = message.lower()
        return bool(_ORDER.search(text)) or any(w in text for w in self.tool_triggers)

    # ---- the check ------------------------------------------------------------------------------
    def check(self, name: str, args: dict[str, Any], customer_id: int | None, db: "SupportDB",
              user_asked_human: bool = False, named_orders: Sequence[int] | None = None) -> Decision:
        """May tool `name` run with `args` for the verified customer `customer_id` (None = unverified)?

        `named_orders`: the order numbers the customer wrote in this conversation (None = do not check).
        A call on any other order is not run: the customer is asked which order they mean (`confirm`),
        because a model that picks the customer's *other* order (1002 for the 1001 they named) would
        otherwise act on it with full authority."""
        if name not in self.allowed_tools:
            return Decision("refuse", f"tool '{name}' is not allowed here (allowed: {', '.join(self.allowed_tools)})")
        if name == "escalate_to_human":
            return Decision("allow") if user_asked_human else Decision(
                "refuse", "escalation happens when the customer asks, when policy forbids an action, or after repeated failures")
        if name in self.identity_required_for and customer_id is None:
            return Decision("identify", "the customer's identity is not verified yet")
        order_id = args.get("order_id")
        if order_id is not None and named_orders is not None and int(order_id) not in named_orders:
            said = ", ".join(map(str, sorted(set(named_orders))))
            return Decision("confirm", f"you wrote order {said}, not order {order_id}; please write the order number you mean"
                            if said else "I act only on an order number you write; please tell me the order number")
        if order_id is not None:
            order = db.order(int(order_id))
            if order is None:
                return Decision("refuse", f"there is no order {order_id}")
            if customer_id is not None and order.customer_id != customer_id:
                return Decision("refuse", f"order {order_id} does not belong to the verified customer")
            if name == "create_ticket" and args.get("kind") == "refund":
                amount = float(args.get("amount") if args.get("amount") is not None else order.amount)
                if amount > self.refund_max_amount:
                    return Decision("handoff", f"a refund of {amount:.2f} {order.currency} is over the "
                                               f"{self.refund_max_amount:.2f} limit the assistant may grant")
        return Decision("allow")


def find_emails(text: str) -> list[str]:
    return _EMAIL.findall(text)


def find_order_ids(text: str) -> list[int]:
    """Order numbers in the customer's words: every 3–9 digit number that is not an amount of money
    ("249 euros", "€34.90"), in order, without repeats."""
    return list(dict.fromkeys(int(m) for m in _ORDER.findall(_MONEY.sub(" ", text))))
