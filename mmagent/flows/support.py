"""The `support` flow: customer service over a knowledge base and the demo business database.

Graph (one run = one customer turn; the conversation persists per session id in a LangGraph SQLite
checkpointer at ``<paths.data>/support_sessions.sqlite``, so it survives a restart)::

    intake ─┬─ handoff (customer asked for a person) ─────────────────────────────┐
            ├─ waiting (a human already has the session) ──────────────────────────┤
            ├─ identity (an email was given: verified or not, in code) ────────────┤
            ├─ plan ⇄ guard ─ act (tool call proposed by the model, checked by the  │
            │          policy, run) ── handoff after repeated failure or when the   ├─ END
            │          policy forbids the action                                    │
            └─ retrieve ─ answer (the model answers from fenced help-centre passages)┘

Request-scoped state: one flow instance (and its tool instances) serves every session — the UI caches
it across browser tabs — so who a turn is for travels in the graph state: the verified `customer_id`
(checkpointed per session), and the turn's session, photo and LoRA adapter in `request`. Tools get them
per call as a `ToolContext` built from that state, never as an attribute set on a shared tool.

Privilege separation: the planning step (the only one whose output can run a tool) sees the customer's
own words and the verification state, never retrieved documents; those reach only the answering step,
fenced as data. Identity, ownership, refund limits and escalation are decided by :class:`Policy` in code.
"""

from __future__ import annotations

import copy
import logging
import operator
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypedDict

from mmagent.flows.base import DoneEvent, FlowError, GraphFlow, HandoffEvent, SourceEvent, ToolResultEvent, emit
from mmagent.flows.grounding import NO_SPAN_REPLY, extract_span, is_factual, sentence_of, shown
from mmagent.flows.prompting import PromptSet, fence, load_prompts
from mmagent.flows.steps import ToolBox, check_files, run_tool, say, stream_guarded, transcribe
from mmagent.flows.support_policy import Policy, find_amounts, find_emails, find_order_ids
from mmagent.flows.support_tools import SupportDB, demo_db_path, support_tools
from mmagent.tools.base import ToolContext

PROMPT_KEYS = ("system", "plan", "answer", "knowledge", "voice", "reply_need_identity", "reply_verified",
               "reply_unknown_email", "reply_tool_done", "reply_refused", "reply_handoff", "reply_handed_off",
               "reply_withheld")
OPTIONAL_KEYS = ("answer_extract", "reply_not_found")  # added later: an older copy takes the shipped text
SESSIONS_DB = "support_sessions.sqlite"
log = logging.getLogger(__name__)
HISTORY_TURNS = 6


@dataclass
class SupportRequest:
    """One customer message. `images`: photos (e.g. of a damaged product); `audio`: voice messages."""

    message: str = ""
    session: str = "default"
    images: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    collection: str | None = None  # knowledge base; None = config flows.support_collection
    policy: str | None = None  # policy YAML; None = config flows.support_policy or the shipped one
    prompts: str | None = None
    constrain_tool_calls: bool = True  # grammar-constrained tool calls (off only to test the failure path)
    max_new_tokens: int | None = None
    adapter: str | None = None  # LoRA adapter that plans and answers this turn (None = the base model)


class SupportState(TypedDict, total=False):
    # kept across turns by the checkpointer
    history: Annotated[list[dict[str, str]], operator.add]
    customer_id: int | None
    escalation_ticket: int | None
    # this turn (primitives only: the checkpointer stores them)
    request: dict[str, Any]
    message: str
    emails: list[str]
    failures: int
    call: dict[str, Any] | None
    kb: list[str]
    reason: str
    next: str


class SupportFlow(GraphFlow):
    name: ClassVar[str] = "support"
    request_type: ClassVar[type] = SupportRequest

    def __init__(self, config: Any = None, backend: Any = None) -> None:
        super().__init__(config, backend)
        self.tools = ToolBox(self.config)
        self.db_path = demo_db_path(self.config)
        self.db = SupportDB(self.db_path)
        self.actions = support_tools(self.config)
        self._prompts: dict[str | None, PromptSet] = {}
        self._policies: dict[str | None, Policy] = {}
        self._conn: sqlite3.Connection | None = None

    # ---- graph -----------------------------------------------------------------------------------
    def build(self) -> Any:
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(SupportState)
        nodes = {"intake": self._intake, "identity": self._identity, "plan": self._plan, "guard": self._guard,
                 "act": self._act, "handoff": self._handoff, "waiting": self._waiting,
                 "retrieve": self._retrieve, "answer": self._answer}
        for name, fn in nodes.items():
            graph.add_node(name, fn)
        graph.add_edge(START, "intake")
        for name in ("intake", "plan", "guard", "act"):
            graph.add_conditional_edges(name, _next)
        graph.add_edge("retrieve", "answer")
        for name in ("identity", "handoff", "waiting", "answer"):
            graph.add_edge(name, END)
        path = Path(self.config.paths.data).expanduser() / SESSIONS_DB
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False)
        return graph.compile(checkpointer=SqliteSaver(self._conn))

    def start(self, request: SupportRequest) -> dict[str, Any]:
        request.images = check_files(request.images, "image")
        request.audio = check_files(request.audio, "audio")
        if not request.message.strip() and not request.audio and not request.images:
            raise FlowError("support needs a message: text, --audio (a voice message) or an --image.")
        if not request.session.strip():
            raise FlowError("support needs a --session id to keep the conversation under.")
        self._prompt_set(request.prompts)  # fail on a bad prompt or policy file before the model loads
        self._policy(request.policy)
        return {"request": asdict(request), "failures": 0, "call": None, "reason": "", "emails": [], "kb": []}

    def run_config(self, request: SupportRequest) -> dict[str, Any]:
        return {"configurable": {"thread_id": request.session}}

    def history(self, session: str) -> list[dict[str, str]]:
        """The stored conversation of `session` (empty when unknown)."""
        snapshot = self.graph.get_state({"configurable": {"thread_id": session}})
        return list(snapshot.values.get("history", [])) if snapshot and snapshot.values else []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn, self._graph = None, None

    # ---- nodes -----------------------------------------------------------------------------------
    def _intake(self, state: SupportState) -> dict[str, Any]:
        request = state["request"]
        spoken = " ".join(r.text.strip() for r in transcribe(self.tools, request["audio"])).strip()
        parts = [request["message"].strip()]
        if spoken:
            parts.append(self._p(state).text("voice", transcript=spoken))
        message = "\n".join(p for p in parts if p) or "(photo only)"
        policy = self._policy(request["policy"])
        if state.get("escalation_ticket"):
            step = "waiting"
        elif policy.asks_for_human(request["message"] + " " + spoken):
            step = "handoff"
        elif find_emails(message) and not policy.wants_action(_without_emails(message)):
            step = "identity"
        else:  # a model with its own tool template decides itself whether to call (auto); else code decides
            # the help centre answers a question about the rules, whatever its words — unless an order named
            # earlier makes it a follow-up about that order ("order 1001 …" … "where is it now?")
            asks = policy.asks_general_question(message) and not conversation_orders(state)
            step = "plan" if not asks and (policy.wants_action(message) or self._model_decides()) else "retrieve"
        update = {"message": message, "next": step, "history": [{"role": "user", "content": message}],
                  "reason": "the customer asked for a person" if step == "handoff" else ""}
        update.update(self._verify(state, message))
        return update

    def _verify(self, state: SupportState, message: str) -> dict[str, Any]:
        """Identity check in code: an email written by the customer that matches an account."""
        emails = find_emails(message)
        for email in emails:
            customer = self.db.customer_by_email(email)
            if customer is not None:
                return {"customer_id": customer.id, "emails": emails}
        return {"emails": emails}

    def _identity(self, state: SupportState) -> dict[str, Any]:
        customer_id = state.get("customer_id")
        customer = self.db.customer_by_email(state["emails"][0]) if state["emails"] else None
        if customer is not None and customer.id == customer_id:
            return self._finish(state, self._p(state).text("reply_verified", name=customer.name.split()[0]))
        return self._finish(state, self._p(state).text("reply_unknown_email", email=state["emails"][0]))

    def _plan(self, state: SupportState) -> dict[str, Any]:
        from mmagent.orchestration.calls import propose_tool_calls

        request, policy = state["request"], self._policy(state["request"]["policy"])
        named = conversation_orders(state)
        tools = [_only_orders(self.actions[n], named) for n in policy.allowed_tools if n in self.actions]
        choice = "auto" if self._model_decides() else "required"
        proposal = propose_tool_calls(self.backend, self.plan_messages(state), tools, choice=choice,
                                      constrain=request["constrain_tool_calls"], stop_on_text=True,
                                      adapter=request["adapter"])
        if choice == "auto" and not proposal.calls and not proposal.invalid and named:
            # The customer wrote an order number and the model chose to answer in words: it would answer
            # about an account it has not looked at (Qwen 0.5B replied "you have successfully refunded order
            # 1022" with no tool run). An order the customer names is acted on through a tool, so ask again
            # with a call required; the policy still decides whether that call may run.
            choice = "required"
            proposal = propose_tool_calls(self.backend, self.plan_messages(state), tools, choice=choice,
                                          constrain=request["constrain_tool_calls"], stop_on_text=True,
                                          adapter=request["adapter"])
        for bad in proposal.invalid:
            _refused(bad.name or "?", bad.id, f"invalid tool call: {bad.error}", request["session"])
        if proposal.calls:
            call = proposal.calls[0]
            return {"call": {"name": call.name, "args": call.args, "id": call.id}, "next": "guard"}
        if choice == "auto" and not proposal.invalid:  # the model chose to answer: from the help centre
            return {"next": "retrieve"}
        if not proposal.invalid:
            emit(ToolResultEvent("?", "none", ok=False, error="the model proposed no tool call"))
        return self._failed(state, "the assistant could not form a valid tool call")

    def _guard(self, state: SupportState) -> dict[str, Any]:
        call, policy = state["call"], self._policy(state["request"]["policy"])
        tool = self.actions.get(call["name"])
        if tool is None:
            _refused(call["name"], call["id"], "unknown tool", state["request"]["session"])
            return self._failed(state, f"unknown tool {call['name']}")
        try:
            tool.validate_arguments(call["args"])
        except Exception as exc:  # ToolError: the arguments do not match the tool's schema
            _refused(call["name"], call["id"], str(exc), state["request"]["session"])
            return self._failed(state, "invalid tool arguments")
        if call["name"] == "create_ticket":  # the refund amount is the customer's word, not the model's
            call = {**call, "args": policy.bind_amount(call["args"], conversation_amounts(state))}
        decision = policy.check(call["name"], call["args"], state.get("customer_id"), self.db,
                                named_orders=conversation_orders(state), today=self.db.today())
        if decision.verdict == "allow":
            return {"next": "act", "call": call}
        _refused(call["name"], call["id"], f"policy: {decision.reason}", state["request"]["session"])
        if decision.verdict == "identify":
            return {"next": "__end__", **self._say_and_finish(state, "reply_need_identity")}
        if decision.verdict in ("confirm", "deny"):  # ask which order (never act on a guess), or say the rule
            return {"next": "__end__", **self._finish(state, self._p(state).text("reply_refused", reason=decision.reason))}
        if decision.verdict == "handoff":
            return {"next": "handoff", "reason": decision.reason}
        if call["name"] == "escalate_to_human":  # unjustified escalation: answer normally instead
            return {"next": "retrieve"}
        return self._failed(state, decision.reason)

    def _act(self, state: SupportState) -> dict[str, Any]:
        call, request = state["call"], state["request"]
        result = run_tool(self.actions[call["name"]], call["args"], call["id"], raise_errors=False,
                          context=tool_context(state))
        if result is None:
            return self._failed(state, f"{call['name']} failed")
        for i, source in enumerate(result.sources, start=1):
            emit(SourceEvent(i, source))
        return {"next": "__end__", **self._finish(state, self._p(state).text("reply_tool_done", result=result.text),
                                                  {"tool": call["name"], "result": result.data})}

    def _failed(self, state: SupportState, reason: str) -> dict[str, Any]:
        failures = state.get("failures", 0) + 1
        limit = self._policy(state["request"]["policy"]).after_failures
        if failures >= limit:
            return {"failures": failures, "next": "handoff", "reason": f"{failures} failed attempts: {reason}"}
        return {"failures": failures, "next": "plan"}

    def _handoff(self, state: SupportState) -> dict[str, Any]:
        reason = state.get("reason") or "the assistant could not help"
        result = run_tool(self.actions["escalate_to_human"], {"reason": reason[:300]}, context=tool_context(state))
        ticket = int(result.data["ticket"]) if result else None
        emit(HandoffEvent(reason, ticket))
        text = self._p(state).text("reply_handoff", reason=reason, ticket=ticket)
        return {"escalation_ticket": ticket, **self._finish(state, text, {"handoff": reason, "ticket": ticket})}

    def _waiting(self, state: SupportState) -> dict[str, Any]:
        ticket = state["escalation_ticket"]
        return self._finish(state, self._p(state).text("reply_handed_off", ticket=ticket), {"ticket": ticket})

    def _retrieve(self, state: SupportState) -> dict[str, Any]:
        name = state["request"]["collection"] or self.config.flows.support_collection
        if not name:
            return {"kb": []}
        result = run_tool(self.tools.get("memory_search"), {"query": state["message"], "k": 3, "collection": name})
        flows = self.config.flows  # relevance as the qa flow decides it: on the hybrid ranking
        passages = [s for hit, s in zip(result.data, result.sources) if hit.relevant(flows.qa_min_score,
                                                                                  flows.qa_keyword_floor)] if result else []
        for i, source in enumerate(passages, start=1):
            emit(SourceEvent(i, source, cited=False))
        return {"kb": [s.excerpt for s in passages]}

    def _answer(self, state: SupportState) -> dict[str, Any]:
        """A factual question is answered with the help-centre sentence that holds the quoted answer (or "not
        found"); anything else (a greeting, a complaint) is answered in free text from the fenced articles."""
        prompts, request = self._p(state), state["request"]
        if is_factual(state["message"]):
            return self._quote(state)
        gen = {"max_new_tokens": request["max_new_tokens"]} if request["max_new_tokens"] else {}
        text, leaked = stream_guarded(self.backend, self.answer_messages(state), prompts.text("system"),
                                      request["images"], adapter=request["adapter"], **gen)
        if leaked:
            text = say(prompts.text("reply_withheld"))
        return self._finish(state, text.strip(), {"withheld": leaked}, spoken=True)

    def _quote(self, state: SupportState) -> dict[str, Any]:
        """The article sentence holding an extractive answer: nothing a small model could invent (a price,
        a phone number) reaches the customer as the shop's word."""
        prompts, request = self._p(state), state["request"]
        passages = [shown(t) for t in state.get("kb") or []]
        span = extract_span(self.backend, self.answer_messages(state, extract=True), passages, state["message"],
                            images=request["images"], adapter=request["adapter"]) if passages else None
        text = sentence_of(span, passages) if span else prompts.text("reply_not_found")
        return self._finish(state, text, {"quoted": span is not None})

    # ---- prompts ---------------------------------------------------------------------------------
    def plan_messages(self, state: SupportState) -> list[dict[str, Any]]:
        """What the tool-planning step reads: the customer's words and state — never retrieved text."""
        prompts, request = self._p(state), state["request"]
        plan = prompts.text("plan", verified="yes" if state.get("customer_id") else "no",
                            orders=", ".join(map(str, conversation_orders(state))) or "none",
                            photo="yes" if request["images"] else "no", message=state["message"])
        return [{"role": "system", "content": prompts.text("system")},
                *state.get("history", [])[-HISTORY_TURNS - 1:-1], {"role": "user", "content": plan}]

    def answer_messages(self, state: SupportState, extract: bool = False) -> list[dict[str, Any]]:
        """What the answering step reads: help-centre passages fenced as data, then the customer.
        `extract`: ask for the shortest phrase the articles state (or "unknown"), see :meth:`_quote`."""
        prompts = self._p(state)
        kb = state.get("kb") or []
        knowledge = prompts.text("knowledge", passages="\n".join(fence(t, f"article {i}") for i, t in
                                                                enumerate(kb, 1))) if kb else ""
        ask = (prompts.text("answer_extract", knowledge=knowledge, message=state["message"], none=NO_SPAN_REPLY)
               if extract else prompts.text("answer", knowledge=knowledge, message=state["message"]))
        return [{"role": "system", "content": prompts.text("system")}, *state.get("history", [])[-HISTORY_TURNS - 1:-1],
                {"role": "user", "content": ask}]

    # ---- helpers ---------------------------------------------------------------------------------
    def _finish(self, state: SupportState, text: str, data: dict[str, Any] | None = None,
                spoken: bool = False) -> dict[str, Any]:
        """Say `text` (unless already streamed), record it in the history, and end the turn."""
        if not spoken:
            say(text)
        emit(DoneEvent(text, {"session": state["request"]["session"], "customer_id": state.get("customer_id"),
                              **(data or {})}))
        return {"history": [{"role": "assistant", "content": text}]}

    def _model_decides(self) -> bool:
        from mmagent.orchestration.calls import decides_tool_calls

        return decides_tool_calls(self.backend)

    def _say_and_finish(self, state: SupportState, key: str) -> dict[str, Any]:
        return self._finish(state, self._p(state).text(key))

    def _p(self, state: SupportState) -> PromptSet:
        return self._prompt_set(state["request"]["prompts"])

    def _prompt_set(self, path: str | None) -> PromptSet:
        if path not in self._prompts:
            self._prompts[path] = load_prompts("support", path, PROMPT_KEYS, optional=OPTIONAL_KEYS)
        return self._prompts[path]

    def _policy(self, path: str | None) -> Policy:
        path = path or self.config.flows.support_policy
        if path not in self._policies:
            self._policies[path] = Policy.load(path)
        return self._policies[path]


def tool_context(state: SupportState) -> ToolContext:
    """Who this turn's tool call is for, from the graph state (the verified customer, not the model's say)."""
    request = state["request"]
    return ToolContext(session=request["session"], adapter=request["adapter"],
                       customer_id=state.get("customer_id"),
                       attachment=request["images"][0] if request["images"] else None,
                       turn=sum(m.get("role") == "assistant" for m in state.get("history", [])))


def conversation_orders(state: SupportState) -> list[int]:
    """The order numbers the customer wrote: in this message, else in their latest earlier message that
    named any ("order 1001 arrived cracked" … "ana@example.com" … "yes, refund it" acts on 1001).
    Only the customer's own words count: never the assistant's replies or tool results."""
    return _latest_written(state, find_order_ids)


def conversation_amounts(state: SupportState) -> list[float]:
    """The amounts of money the customer wrote, found the way :func:`conversation_orders` finds orders."""
    return _latest_written(state, find_amounts)


def _latest_written(state: SupportState, find: Any) -> list[Any]:
    earlier = [m["content"] for m in state.get("history", []) if m.get("role") == "user"]
    for text in [state.get("message", ""), *reversed(earlier)]:
        found = find(text)
        if found:
            return found
    return []


def _next(state: SupportState) -> str:
    """Conditional-edge router: each deciding node names the next step in `next`."""
    return state["next"]


def _only_orders(tool: Any, orders: list[int]) -> Any:
    """`tool` as the planner sees it: its `order_id` limited to the order numbers the customer wrote.

    The call is decoded under a grammar from this schema, so the model cannot write an order number
    nobody mentioned (the 135M default model copied "order 1001" as 1002). Which orders the customer may
    touch, and refund limits, stay the policy's decision; the tool itself is unchanged."""
    properties = tool.inputs.get("properties", {})
    if not orders or "order_id" not in properties:
        return tool
    narrowed = copy.copy(tool)
    order_id = {**properties["order_id"], "enum": sorted(set(orders))}
    narrowed.inputs = {**tool.inputs, "properties": {**properties, "order_id": order_id}}
    return narrowed


def _without_emails(text: str) -> str:
    import re

    return re.sub(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", " ", text)


def _refused(name: str, call_id: str, reason: str, session: Any) -> None:
    """A tool call that will not run: shown to the caller as a failed result and logged for the operator
    (a refused call is what an injection attempt or a policy breach looks like from outside)."""
    log.warning("support session %s: refused tool call %s (%s): %s", session, name, call_id, reason)
    emit(ToolResultEvent(name, call_id, ok=False, error=reason))
