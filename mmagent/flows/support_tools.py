"""The `support` flow's business database (a shipped SQLite demo) and its three tools.

The tools are ordinary :class:`mmagent.tools.base.Tool` classes, so they validate their arguments the
same way, but they are not registered as global tools: they belong to this flow and its database.
Every call is checked against the policy (`support_policy.py`) *before* it reaches these classes.
Who a call is for (verified customer, session, photo) arrives with each call as a
:class:`~mmagent.tools.base.ToolContext` built from the graph state: the tool instances are shared by
every session of a cached flow, so they hold no per-customer state.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmagent.errors import MMAgentError
from mmagent.tools.base import Source, Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    from mmagent.config import Config

DB_NAME = "support_demo.sqlite"


class SupportDataError(MMAgentError, LookupError):
    """An order or customer the support tools were asked about does not exist."""


@dataclass
class Order:
    id: int
    customer_id: int
    item: str
    amount: float
    currency: str
    status: str
    ordered_on: str
    delivered_on: str | None

    def describe(self) -> str:
        delivered = f", delivered {self.delivered_on}" if self.delivered_on else ""
        return (f"Order {self.id}: {self.item}, {self.amount:.2f} {self.currency}, status {self.status}, "
                f"ordered {self.ordered_on}{delivered}.")


@dataclass
class Customer:
    id: int
    name: str
    email: str
    city: str


def demo_db_path(config: "Config") -> Path:
    """The demo database, created from the shipped seed on first use."""
    path = Path(config.paths.data).expanduser() / DB_NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = (resources.files("mmagent.flows") / "data" / "support_seed.sql").read_text(encoding="utf-8")
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(partial)) as db:
            db.executescript(seed)
            db.commit()
        partial.replace(path)  # atomic: a crash mid-seed never leaves a half-built database
    return path


class SupportDB:
    """Small typed queries over the demo database (one short-lived connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._has_turns = False

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        db.row_factory = sqlite3.Row
        if not self._has_turns:  # a database seeded before tickets recorded their turn
            if "turn" not in {row[1] for row in db.execute("PRAGMA table_info(tickets)")}:
                try:
                    db.execute("ALTER TABLE tickets ADD COLUMN turn INTEGER")
                    db.commit()
                except sqlite3.OperationalError as exc:  # another connection added it first
                    if "duplicate column" not in str(exc):
                        raise
            self._has_turns = True
        return db

    def today(self) -> date:
        """The date the shop's rules count to: the demo database's own day (its orders are from November
        2026, so the demo and its evals do not age), else — a real database — the real date."""
        with closing(self._connect()) as db:
            try:
                row = db.execute("SELECT today FROM shop").fetchone()
            except sqlite3.OperationalError:  # no shop table: a real database, or a demo seeded before it
                row = None
        return date.fromisoformat(row[0]) if row else date.today()

    def customer_by_email(self, email: str) -> Customer | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM customers WHERE lower(email) = lower(?)", (email.strip(),)).fetchone()
        return Customer(**dict(row)) if row else None

    def order(self, order_id: int) -> Order | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM orders WHERE id = ?", (int(order_id),)).fetchone()
        return Order(**dict(row)) if row else None

    def add_ticket(self, **fields: Any) -> int:
        """Open a ticket; returns its id.

        A conversation's call (`session` and `turn` given, as the flow does) is idempotent: it gets back the
        ticket its turn already filed, or the session's open ticket of the same kind for the same order
        (escalations: the session's open one), instead of a second one. So a turn retried after a crash —
        the ticket committed, the conversation's checkpoint not — or a customer asking again files nothing
        twice. The check and the insert share one write transaction, so two processes cannot both insert."""
        keys = ("customer_id", "order_id", "kind", "summary", "amount", "attachment", "session", "turn")
        values = [fields.get(k) for k in keys]
        with closing(self._connect()) as db:
            db.isolation_level = None  # the explicit transaction below
            db.execute("BEGIN IMMEDIATE")
            try:
                ticket = _filed_already(db, fields) or int(db.execute(
                    f"INSERT INTO tickets ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})", values).lastrowid)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return ticket

    def tickets(self, session: str | None = None) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            query, args = ("SELECT * FROM tickets WHERE session = ? ORDER BY id", (session,)) if session else \
                ("SELECT * FROM tickets ORDER BY id", ())
            return [dict(r) for r in db.execute(query, args)]


def _filed_already(db: sqlite3.Connection, fields: dict[str, Any]) -> int | None:
    """The open ticket (or escalation, as `fields` asks) of the session that this call would duplicate:
    one its turn filed, or one of the same kind for the same order. None outside a conversation."""
    if fields.get("session") is None or fields.get("turn") is None:
        return None
    escalation = fields.get("kind") == "escalation"
    row = db.execute("SELECT id FROM tickets WHERE session = ? AND status = 'open' AND (kind = 'escalation') = ? "
                     "AND (turn = ? OR ? OR (kind = ? AND order_id IS ?)) ORDER BY id LIMIT 1",
                     (fields["session"], escalation, fields["turn"], escalation, fields.get("kind"),
                      fields.get("order_id"))).fetchone()
    return int(row[0]) if row else None


class _SupportTool(Tool):
    """Base: the tools share the demo database; the flow passes the call's ToolContext (not the model)."""

    takes_context = True

    def __init__(self, config: "Config | None" = None, db: SupportDB | None = None) -> None:
        super().__init__(config)
        self.db = db or SupportDB(demo_db_path(self.config))


class LookupOrderTool(_SupportTool):
    name = "lookup_order"
    description = "Look up one of the customer's orders by its number: item, amount, status, delivery date."
    inputs = {
        "type": "object",
        "properties": {"order_id": {"type": "integer", "minimum": 1, "description": "the order number, e.g. 1001"}},
        "required": ["order_id"],
        "additionalProperties": False,
    }

    def forward(self, order_id: int, **_: Any) -> ToolResult:  # the policy already checked ownership
        order = self.db.order(order_id)
        if order is None:
            raise SupportDataError(f"there is no order {order_id}; ask the customer to check the order number.")
        return ToolResult(order.describe(), data=asdict(order),
                          sources=[Source(uri=f"orders/{order.id}", excerpt=order.describe())])


class CreateTicketTool(_SupportTool):
    name = "create_ticket"
    description = ("Open a support ticket for one of the customer's orders: a refund request, a damaged item, "
                   "a delivery problem or another issue.")
    inputs = {
        "type": "object",
        "properties": {
            "order_id": {"type": "integer", "minimum": 1, "description": "the order number"},
            "kind": {"type": "string", "enum": ["refund", "damaged", "delivery", "other"],
                     "description": "what the ticket is about"},
            "summary": {"type": "string", "minLength": 3, "maxLength": 300, "description": "the problem in one sentence"},
            "amount": {"type": "number", "minimum": 0, "description": "refund amount in the order's currency (refunds only)"},
        },
        "required": ["order_id", "kind", "summary"],
        "additionalProperties": False,
    }

    def forward(self, order_id: int, kind: str, summary: str, context: ToolContext, amount: float | None = None,
                **_: Any) -> ToolResult:
        order = self.db.order(order_id)
        if order is None:
            raise SupportDataError(f"there is no order {order_id}; ask the customer to check the order number.")
        ticket = self.db.add_ticket(customer_id=order.customer_id, order_id=order.id, kind=kind, summary=summary,
                                    amount=amount, attachment=context.attachment, session=context.session,
                                    turn=context.turn)
        money = f" for {amount:.2f} {order.currency}" if amount is not None else ""
        return ToolResult(f"Ticket {ticket} opened ({kind}{money}) for order {order.id}.", data={"ticket": ticket})


class EscalateTool(_SupportTool):
    name = "escalate_to_human"
    description = "Hand the conversation to a human agent, with the reason."
    inputs = {
        "type": "object",
        "properties": {"reason": {"type": "string", "minLength": 3, "maxLength": 300,
                                  "description": "why a human should take over"}},
        "required": ["reason"],
        "additionalProperties": False,
    }

    def forward(self, reason: str, context: ToolContext, **_: Any) -> ToolResult:
        ticket = self.db.add_ticket(customer_id=context.customer_id, order_id=None, kind="escalation",
                                    summary=reason, attachment=context.attachment, session=context.session,
                                    turn=context.turn)
        return ToolResult(f"Escalation ticket {ticket} opened; a human agent will reply.", data={"ticket": ticket})


def support_tools(config: "Config") -> dict[str, _SupportTool]:
    db = SupportDB(demo_db_path(config))
    return {cls.name: cls(config, db) for cls in (LookupOrderTool, CreateTicketTool, EscalateTool)}
