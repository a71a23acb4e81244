"""Request-scoped state: one backend and one (cached) flow serve interleaved requests from several threads —
as the UI and the API do for several users — and each request gets exactly its own adapter's greedy
output and acts for exactly its own customer. Real tiny model, real flow, real SQLite; nothing mocked."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from conftest import tiny_config

from mmagent.model.backend import HFVisionBackend

PROMPT = [{"role": "user", "content": "Describe the weather in one sentence."}]
ADAPTERS = (None, "a", "b")
ROUNDS = 3


def config(tiny_llava_dir, tiny_adapters, tmp_path=None):
    overrides = {"paths.data": str(tmp_path / "data"), "memory.path": str(tmp_path / "memory")} if tmp_path else {}
    cfg = tiny_config(tiny_llava_dir, **overrides)
    cfg.adapters.update({name: str(path) for name, path in tiny_adapters.items()})
    return cfg


@pytest.fixture(scope="module")
def backend(tiny_llava_dir, tiny_adapters):
    return HFVisionBackend(config(tiny_llava_dir, tiny_adapters))


def in_threads(work: Callable[[int, threading.Barrier], Any], count: int) -> list[Any]:
    """Run `work(i, barrier)` in `count` threads at once; re-raise the first failure; results in order."""
    barrier = threading.Barrier(count, timeout=300)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:  # noqa: BLE001  reported below, in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), name=f"request-{i}") for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if errors:
        raise errors[0]
    return results


def test_interleaved_requests_get_their_own_adapters_greedy_output(backend):
    expected = {a: "".join(backend.generate(PROMPT, adapter=a, max_new_tokens=8)) for a in ADAPTERS}
    assert len(set(expected.values())) == 3, expected  # the adapters really answer differently
    scores = {a: backend.score(PROMPT, ["sunny", "rain"], adapter=a) for a in ADAPTERS}
    batches = {a: backend.generate_batch([PROMPT, PROMPT[:0] + [{"role": "user", "content": "Hi"}]], adapter=a,
                                         max_new_tokens=6) for a in ADAPTERS}

    def work(i: int, barrier: threading.Barrier) -> list[tuple]:
        adapter = ADAPTERS[i % 3]
        seen = []
        for _ in range(ROUNDS):
            barrier.wait()  # every round starts together, so the requests interleave
            pieces = backend.generate(PROMPT, adapter=adapter, max_new_tokens=8)
            seen.append(("generate", adapter, "".join(pieces)))
            seen.append(("score", adapter, backend.score(PROMPT, ["sunny", "rain"], adapter=adapter)))
            seen.append(("batch", adapter, backend.generate_batch(
                [PROMPT, [{"role": "user", "content": "Hi"}]], adapter=adapter, max_new_tokens=6)))
        return seen

    for seen in in_threads(work, 6):
        for kind, adapter, got in seen:
            want = {"generate": expected, "score": scores, "batch": batches}[kind][adapter]
            if kind == "score":
                assert got == pytest.approx(want, abs=1e-4), (kind, adapter)
            else:
                assert got == want, (kind, adapter)
    assert "".join(backend.generate(PROMPT, max_new_tokens=8)) == expected[None]  # no adapter left behind


# ---- the support flow: one instance, as the UI caches it, shared by every session ----------------------
SESSIONS = {"tab-ana": ("ana@example.com", 1, None), "tab-ben": ("ben@example.com", 2, "a"),
            "tab-chloe": ("chloe@example.com", 3, "b")}
QUESTION = "Hello, thanks for your help today."  # no tool trigger, not a factual question: the model writes


def support_turns(flow: Any, session: str, email: str, adapter: str | None,
                  between: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Verify by email, say something the model answers in free text, ask for a person (an escalation ticket)."""
    from mmagent.flows.base import DoneEvent, HandoffEvent
    from mmagent.flows.support import SupportRequest

    out: dict[str, Any] = {}
    for step, message in (("verify", email), ("answer", QUESTION), ("handoff", "I want to talk to a human")):
        between()
        request = SupportRequest(message=message, session=session, adapter=adapter, max_new_tokens=8)
        for event in flow.run(request):
            if isinstance(event, DoneEvent):
                out[step] = event
            elif isinstance(event, HandoffEvent):
                out["ticket"] = event.ticket
    return out


def test_a_shared_support_flow_keeps_each_sessions_customer_and_adapter(tiny_llava_dir, tiny_adapters, backend,
                                                                        tmp_path):
    from mmagent.flows.support import SupportFlow

    flow = SupportFlow(config(tiny_llava_dir, tiny_adapters, tmp_path), backend)
    try:
        reference = {adapter: support_turns(flow, f"ref-{session}", email, adapter)["answer"].answer
                     for session, (email, _, adapter) in SESSIONS.items()}
        assert len(set(reference.values())) == 3, reference  # each adapter answers differently

        names = list(SESSIONS)

        def work(i: int, barrier: threading.Barrier) -> dict[str, Any]:
            email, _, adapter = SESSIONS[names[i]]
            return support_turns(flow, names[i], email, adapter, between=barrier.wait)

        for session, got in zip(names, in_threads(work, len(names))):
            _, customer, adapter = SESSIONS[session]
            assert got["verify"].data["customer_id"] == customer, session
            assert got["answer"].answer == reference[adapter], session  # its own adapter's greedy answer
            assert got["handoff"].data["customer_id"] == customer, session
            [ticket] = flow.db.tickets(session=session)
            assert (ticket["id"], ticket["kind"], ticket["customer_id"]) == (got["ticket"], "escalation", customer)
        assert not any(hasattr(tool, "context") for tool in flow.actions.values())  # nothing per-request on tools
    finally:
        flow.close()


def test_one_tool_instance_acts_for_each_callers_context(tmp_path):
    """The support tools take who the call is for per call: threads sharing one instance never mix it."""
    from mmagent.config import Config
    from mmagent.flows.support_tools import support_tools
    from mmagent.tools.base import ToolContext

    cfg = Config()
    cfg.paths.data = str(tmp_path)
    ticket = support_tools(cfg)["create_ticket"]

    def work(i: int, barrier: threading.Barrier) -> list[int]:
        context = ToolContext(session=f"s{i}", customer_id=i + 1, attachment=f"photo-{i}.jpg")
        made = []
        for _ in range(5):
            barrier.wait()
            made.append(ticket(context, order_id=1001, kind="damaged", summary=f"cracked, caller {i}").data["ticket"])
        return made

    made = in_threads(work, 3)
    for i, ids in enumerate(made):
        rows = ticket.db.tickets(session=f"s{i}")
        assert [r["id"] for r in rows] == ids
        assert {(r["attachment"], r["summary"]) for r in rows} == {(f"photo-{i}.jpg", f"cracked, caller {i}")}
