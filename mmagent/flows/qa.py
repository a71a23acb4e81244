"""The `qa` flow: a question (text, images, audio) answered from a memory collection with numbered citations.

Graph: listen (transcribe audio) → retrieve (memory_search) → answer | decline → cite.
Whether anything relevant was found is decided in code: passages scoring below
``flows.qa_min_score`` are dropped, and with none left (and no image to look at) the flow says it does
not know instead of asking the model, which would invent. Passages reach the model fenced as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from mmagent.flows.base import DoneEvent, FlowError, GraphFlow, SourceEvent, emit
from mmagent.flows.prompting import PromptSet, fence, load_prompts
from mmagent.flows.steps import ToolBox, check_files, run_tool, say, stream_answer, transcribe
from mmagent.tools.base import Source

PROMPT_KEYS = ("system", "system_open", "user", "user_open", "no_answer")
_CITATION = re.compile(r"\[(\d{1,2})\]")
_WORD = re.compile(r"[^\W_]+")
# Words too common to show that an answer drew on a passage.
_COMMON = frozenset("""a an and are as at be but by for from has have he her his how i if in is it its not of on or
she so that the their them there they this to was we were what when where which who why will with you your""".split())


@dataclass
class QARequest:
    """`collection`: memory collection to search (None = answer without documents)."""

    question: str = ""
    images: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    collection: str | None = None
    min_score: float | None = None  # None = config flows.qa_min_score
    k: int | None = None  # None = config flows.qa_top_k
    prompts: str | None = None  # a copied prompt file; None = the shipped one
    max_new_tokens: int | None = None


class QAState(TypedDict, total=False):
    request: QARequest
    prompts: PromptSet
    question: str
    transcript: str
    sources: list[Source]
    best: float
    answer: str


def cited_numbers(answer: str, count: int) -> list[int]:
    """The source numbers `answer` cites ([1], [2]...), in order of first mention, within 1..count."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= count:
            seen.setdefault(n)
    return list(seen)


def attributed_numbers(answer: str, question: str, sources: list[Source]) -> list[int]:
    """The sources an answer without [n] marks drew on: passages holding the answer's own words.

    Small models rarely write citation marks, yet the user still needs to know where an answer came from.
    Only words the answer adds beyond the question count (the question's words are in every retrieved
    passage by construction), and a passage is credited when it holds at least half as many of them as
    the best one, so one shared common word does not cite everything.
    """
    asked = {w.lower() for w in _WORD.findall(question)}
    added = {w.lower() for w in _WORD.findall(answer)} - asked - _COMMON
    if not added:
        return []
    overlap = {i: len(added & {w.lower() for w in _WORD.findall(s.excerpt or "")})
               for i, s in enumerate(sources, start=1)}
    best = max(overlap.values(), default=0)
    if best == 0:
        return []
    return sorted((i for i, n in overlap.items() if 2 * n >= best and n > 0), key=lambda i: -overlap[i])


class QAFlow(GraphFlow):
    name: ClassVar[str] = "qa"
    request_type: ClassVar[type] = QARequest

    def __init__(self, config: Any = None, backend: Any = None) -> None:
        super().__init__(config, backend)
        self.tools = ToolBox(self.config)

    def build(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(QAState)
        graph.add_node("listen", self._listen)
        graph.add_node("retrieve", self._retrieve)
        graph.add_node("answer", self._answer)
        graph.add_node("decline", self._decline)
        graph.add_node("cite", self._cite)
        graph.add_edge(START, "listen")
        graph.add_edge("listen", "retrieve")
        graph.add_conditional_edges("retrieve", self._route, ["answer", "decline"])
        graph.add_edge("answer", "cite")
        graph.add_edge("decline", END)
        graph.add_edge("cite", END)
        return graph.compile()

    def start(self, request: QARequest) -> dict[str, Any]:
        request.images = check_files(request.images, "image")
        request.audio = check_files(request.audio, "audio")
        if not request.question.strip() and not request.audio and not request.images:
            raise FlowError("qa needs a question: text, --audio with a spoken question, or an --image to ask about.")
        prompts = load_prompts("qa", request.prompts, PROMPT_KEYS)
        return {"request": request, "prompts": prompts, "question": request.question.strip()}

    # ---- nodes -----------------------------------------------------------------------------------
    def _listen(self, state: QAState) -> dict[str, Any]:
        results = transcribe(self.tools, state["request"].audio)
        spoken = " ".join(r.text.strip() for r in results).strip()
        question = " ".join(p for p in (state["question"], spoken) if p) or "What is in this image?"
        return {"question": question, "transcript": spoken}

    def _retrieve(self, state: QAState) -> dict[str, Any]:
        request = state["request"]
        if not request.collection:
            return {"sources": [], "best": 0.0}
        k = request.k or self.config.flows.qa_top_k
        result = run_tool(self.tools.get("memory_search"),
                          {"query": state["question"], "k": k, "collection": request.collection})
        threshold = self._threshold(request)
        found = result.sources if result else []
        best = max((s.score or 0.0 for s in found), default=0.0)
        return {"sources": [s for s in found if (s.score or 0.0) >= threshold], "best": best}

    def _route(self, state: QAState) -> str:
        request = state["request"]
        if request.collection and not state["sources"] and not request.images:
            return "decline"
        return "answer"

    def _decline(self, state: QAState) -> dict[str, Any]:
        request = state["request"]
        text = say(state["prompts"].text("no_answer", collection=request.collection, best=state["best"],
                                     threshold=self._threshold(request)))
        emit(DoneEvent(text, {"question": state["question"], "answered": False, "citations": []}))
        return {"answer": text}

    def _answer(self, state: QAState) -> dict[str, Any]:
        request = state["request"]
        gen = {"max_new_tokens": request.max_new_tokens} if request.max_new_tokens else {}
        answer = stream_answer(self.backend, self.messages(state), request.images, **gen)
        return {"answer": answer}

    def _cite(self, state: QAState) -> dict[str, Any]:
        sources, answer = state["sources"], state["answer"].strip()
        cited = cited_numbers(answer, len(sources))
        inferred = not cited and bool(sources)
        if inferred:  # the model wrote no [n]: credit the passages its words came from, and say so
            cited = attributed_numbers(answer, state["question"], sources)
            answer = f"{answer} {''.join(f'[{i}]' for i in cited)}".strip()
        for i, source in enumerate(sources, start=1):
            emit(SourceEvent(i, source, cited=i in cited))
        emit(DoneEvent(answer, {"question": state["question"], "answered": True, "citations": cited,
                                "citations_inferred": inferred and bool(cited),
                                "transcript": state.get("transcript", "")}))
        return {}

    # ---- prompt ----------------------------------------------------------------------------------
    def messages(self, state: QAState) -> list[dict[str, Any]]:
        """The chat messages for the answer: fenced numbered sources (or none) and the question."""
        # A spoken question is the user's own question like typed text (`_listen` joined both), so it is not
        # fenced: fenced text is "never an instruction" to the model, and the 135M model then does not answer.
        question = state["question"]
        if state["sources"]:
            blocks = [fence(s.excerpt, f"[{i}] {_where(s)}") for i, s in enumerate(state["sources"], start=1)]
            return [{"role": "system", "content": state["prompts"].text("system")},
                    {"role": "user", "content": state["prompts"].text("user", sources="\n".join(blocks), question=question)}]
        return [{"role": "system", "content": state["prompts"].text("system_open")},
                {"role": "user", "content": state["prompts"].text("user_open", question=question)}]

    def _threshold(self, request: QARequest) -> float:
        return self.config.flows.qa_min_score if request.min_score is None else request.min_score


def _where(source: Source) -> str:
    """'notes.md p. 3' or 'call.wav 0:12-0:25' — the label a fence carries."""
    from pathlib import Path

    name = Path(source.uri).name if source.uri else "source"
    if source.page is not None:
        return f"{name} p. {source.page}"
    if source.start is not None:
        return f"{name} {source.start:.0f}s-{(source.end or source.start):.0f}s"
    return name
