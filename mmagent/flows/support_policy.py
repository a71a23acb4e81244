"""The support agent's policy: what it may do, decided in code from a YAML file before any tool runs.

The model proposes tool calls; :meth:`Policy.check` says whether each may run (`allow`), must wait for
the customer's identity (`identify`), must go to a human (`handoff`), needs the customer to say which
order (`confirm`), is against the shop's rules and is explained to the customer (`deny`, e.g. a refund
after the return window), or is refused as a malformed or foreign request (`refuse`). Nothing a model
reads — least of all a retrieved document — can change these decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmagent.flows.base import FlowError

if TYPE_CHECKING:
    from mmagent.flows.support_tools import SupportDB

DECISIONS = ("allow", "identify", "handoff", "refuse", "confirm", "deny")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_ORDER = re.compile(r"\b(\d{3,9})\b")
# "249 euros", "€249", "34.90 EUR": an amount, not an order number
_MONEY = re.compile(r"(?:[$€£]\s*\d[\d.,]*)|(?:\b\d[\d.,]*\s*(?:€|\$|£|eur|euros?|usd|dollars?|gbp|pounds?)\b)",
                    re.IGNORECASE)
_AMOUNT = re.compile(r"\d+(?:[.,]\d{1,2})?")
_QUESTION_START = re.compile(r"^(?:what|when|where|which|who|how|why|within|is|are|does|do|can i|may i|will)\b")
_OWN_OR_REQUEST = re.compile(r"\b(?:my|mine|me|(?:can|could|would|will) you|please)\b")


@dataclass(frozen=True)
class Decision:
    verdict: str  # one of DECISIONS
    reason: str = ""


@dataclass
class Policy:
    allowed_tools: list[str]
    identity_required_for: list[str] = field(default_factory=list)
    refund_max_amount: float = 0.0
    refund_window_days: int | None = None  # refunds only within this many days of delivery (None = any time)
    handoff_words: list[str] = field(default_factory=list)
    after_failures: int = 2
    tool_triggers: list[str] = field(default_factory=list)
    origin: str = ""

    def __post_init__(self) -> None:
        if self.after_failures < 1:
            raise FlowError(f"policy {self.origin}: handoff.after_failures must be >= 1; got {self.after_failures}.")
        if self.refund_max_amount < 0:
            raise FlowError(f"policy {self.origin}: refunds.max_amount must be >= 0; got {self.refund_max_amount}.")
        if self.refund_window_days is not None and self.refund_window_days < 0:
            raise FlowError(f"policy {self.origin}: refunds.window_days must be >= 0 (or absent for no window); "
                            f"got {self.refund_window_days}.")

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
                refund_window_days=_optional_int(raw["refunds"].get("window_days")),
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

    @staticmethod
    def asks_general_question(message: str) -> bool:
        """A question about the shop's rules that no tool answers: interrogative, about no order of theirs.

        "Within how many days can I return an item?" holds the trigger word "return" but asks for the
        help centre's answer, not an action on an account (sending it to the planner asked the customer
        to verify their identity first). A question naming an order number or "my ..." is about their
        own account, and a request phrased as a question ("can you refund ...") asks for an action."""
        text = " ".join(message.lower().split())
        interrogative = text.endswith("?") or bool(_QUESTION_START.match(text))
        return interrogative and not find_order_ids(text) and not _OWN_OR_REQUEST.search(text)

    # ---- the check ------------------------------------------------------------------------------
    def check(self, name: str, args: dict[str, Any], customer_id: int | None, db: "SupportDB",
              user_asked_human: bool = False, named_orders: Sequence[int] | None = None,
              today: date | None = None) -> Decision:
        """May tool `name` run with `args` for the verified customer `customer_id` (None = unverified)?

        `named_orders`: the order numbers the customer wrote in this conversation (None = do not check).
        A call on any other order is not run: the customer is asked which order they mean (`confirm`),
        because a model that picks the customer's *other* order (1002 for the 1001 they named) would
        otherwise act on it with full authority. `today`: the date the return window counts to (None =
        the real date; the demo database has its own, see ``SupportDB.today``)."""
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
                late = self._past_window(order.delivered_on, today or date.today())
                if late:
                    return Decision("deny", f"order {order.id} was delivered on {order.delivered_on}, {late} days ago; "
                                            f"refunds are possible within {self.refund_window_days} days of delivery")
                amount = float(args.get("amount") if args.get("amount") is not None else order.amount)
                if amount > self.refund_max_amount:
                    return Decision("handoff", f"a refund of {amount:.2f} {order.currency} is over the "
                                               f"{self.refund_max_amount:.2f} limit the assistant may grant")
        return Decision("allow")

    def _past_window(self, delivered_on: str | None, today: date) -> int:
        """Days since delivery when that is over the refund window, else 0 (not delivered: no window yet)."""
        if self.refund_window_days is None or not delivered_on:
            return 0
        days = (today - date.fromisoformat(delivered_on)).days
        return days if days > self.refund_window_days else 0

    @staticmethod
    def bind_amount(args: dict[str, Any], stated: Sequence[float]) -> dict[str, Any]:
        """A ticket's amount as the customer wrote it: the model may not invent one (a small model drops
        "a partial refund of 30 euros" and the order's full 189.00 goes to a human; Qwen 0.5B put the 50.00
        refund limit on a damage ticket). For a refund, one amount written by the customer is used;
        otherwise only an amount they wrote stays, and none means the order's total."""
        amount = args.get("amount")
        if args.get("kind") == "refund" and len(stated) == 1:
            return {**args, "amount": stated[0]}
        if amount is not None and float(amount) not in stated:
            return {k: v for k, v in args.items() if k != "amount"}
        return args


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def find_amounts(text: str) -> list[float]:
    """Amounts of money in the customer's words ("30 euros", "€16", "29.90 EUR"), in order, without repeats."""
    found = (_AMOUNT.search(m.group()) for m in _MONEY.finditer(text))
    return list(dict.fromkeys(float(m.group().replace(",", ".")) for m in found if m))


def find_emails(text: str) -> list[str]:
    return _EMAIL.findall(text)


def find_order_ids(text: str) -> list[int]:
    """Order numbers in the customer's words: every 3–9 digit number that is not an amount of money
    ("249 euros", "€34.90"), in order, without repeats."""
    return list(dict.fromkeys(int(m) for m in _ORDER.findall(_MONEY.sub(" ", text))))
