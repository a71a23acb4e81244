"""The `qa` flow: a question (text, images, audio) answered from a memory collection with numbered citations.

Graph: listen (transcribe audio) → retrieve (memory_search) → answer | decline → cite.
Whether anything relevant was found is decided in code, on the hybrid ranking (dense + BM25): a passage
is kept when its cosine reaches ``flows.qa_min_score`` or BM25 ranks it first with at least
``flows.qa_keyword_floor`` of the question's keyword weight (``Hit.relevant``). With none left (and no
image to look at) the flow says it does not know instead of asking the model, which would invent.
Passages reach the model fenced as data.

Two ways to answer (``mode``, default ``flows.qa_mode``):

- ``extractive``: decoding is constrained to a verbatim span of the passages
  (:mod:`mmagent.model.extractive`), so the answer is quoted text with a known passage and offsets and
  its citation is exact (:mod:`mmagent.flows.grounding`). Besides a span, the model may reply "unknown":
  a near-miss question (the passage is about the right product but not the asked fact) passes every
  retrieval gate, and only the model can tell that the passage does not say. The span is shown
  through the ``extractive_answer`` template ("{span} [n]"),
  not re-phrased by a second generation: a second pass doubles the wait and gives a small model the
  chance to add back the facts the constraint kept out. A span that is empty or only function words
  means the passages do not hold the answer: the flow says it does not know.
- ``generative``: free text from the fenced passages; when the model writes no [n], the passages its
  words came from are credited (``citations_inferred``), never one whose facts disagree with it.

``auto`` picks extractive for factual questions (:func:`is_factual`: who, when, where, which, how
many/much/long..., what — not why/how/yes-no or requests to explain) and generative otherwise; a yes/no
question is first asked for a quote, and when the model says the passages hold none the flow declines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from mmagent.flows.base import DoneEvent, FlowError, GraphFlow, SourceEvent, emit
from mmagent.flows.prompting import PromptSet, fence, load_prompts
from mmagent.flows.grounding import NO_SPAN_REPLY, extract_span, is_factual, is_yes_no, shown
from mmagent.flows.steps import ToolBox, check_files, run_tool, say, stream_answer, transcribe
from mmagent.tools.base import Source

PROMPT_KEYS = ("system", "system_open", "user", "user_open", "no_answer")
# Keys added later: a prompt file copied before them falls back to the shipped text.
OPTIONAL_KEYS = ("system_extract", "extractive_answer", "no_span")
MODES = ("auto", "extractive", "generative")
DEFAULT_IMAGE_QUESTION = "What is in this image?"
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
    mode: str | None = None  # extractive | generative | auto; None = config flows.qa_mode
    adapter: str | None = None  # LoRA adapter that answers (None = the base model)


class QAState(TypedDict, total=False):
    request: QARequest
    prompts: PromptSet
    question: str
    transcript: str
    asked: bool  # the user typed or spoke a question (not only an image)
    sources: list[Source]
    best: float
    answer: str
    span: Any  # extractive mode: the quoted mmagent.model.extractive.Span (None = generative, or none found)
    extractive: bool


def cited_numbers(answer: str, count: int) -> list[int]:
    """The source numbers `answer` cites ([1], [2]...), in order of first mention, within 1..count."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= count:
            seen.setdefault(n)
    return list(seen)


def resolve_mode(mode: str, question: str, has_sources: bool) -> str:
    """'extractive' or 'generative' for this question: extractive needs passages to quote from."""
    if mode not in MODES:
        raise FlowError(f"qa mode must be one of {', '.join(MODES)}; got {mode!r}.")
    if not has_sources:
        return "generative"
    if mode == "auto":
        return "extractive" if is_factual(question) else "generative"
    return mode


def attributed_numbers(answer: str, question: str, sources: list[Source]) -> list[int]:
    """The sources an answer without [n] marks drew on: passages holding the answer's own words.

    Small models rarely write citation marks, yet the user still needs to know where an answer came from.
    Only words the answer adds beyond the question count (the question's words are in every retrieved
    passage by construction), and a passage is credited when it holds at least half as many of them as
    the best one, so one shared common word does not cite everything. A passage whose numbers, dates or
    names disagree with the answer's (it says 12 euros, the answer 15) is never credited, however many
    words they share: that credit would make an invented fact look sourced.
    """
    from mmagent.facts import disagrees

    asked = {w.lower() for w in _WORD.findall(question)}
    added = {w.lower() for w in _WORD.findall(answer)} - asked - _COMMON
    if not added:
        return []
    overlap = {i: len(added & {w.lower() for w in _WORD.findall(s.excerpt or "")})
               for i, s in enumerate(sources, start=1) if not disagrees(answer, s.excerpt or "")}
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
        if request.mode is not None and request.mode not in MODES:
            raise FlowError(f"qa mode must be one of {', '.join(MODES)}; got {request.mode!r}.")
        prompts = load_prompts("qa", request.prompts, PROMPT_KEYS, optional=OPTIONAL_KEYS)
        return {"request": request, "prompts": prompts, "question": request.question.strip()}

    # ---- nodes -----------------------------------------------------------------------------------
    def _listen(self, state: QAState) -> dict[str, Any]:
        results = transcribe(self.tools, state["request"].audio)
        spoken = " ".join(r.text.strip() for r in results).strip()
        question = " ".join(p for p in (state["question"], spoken) if p)
        return {"question": question or DEFAULT_IMAGE_QUESTION, "transcript": spoken, "asked": bool(question)}

    def _retrieve(self, state: QAState) -> dict[str, Any]:
        """Search the collection and keep the relevant passages (decided in code, see the module doc).

        An image with no typed or spoken question is not searched for: the stand-in question "What is in
        this image?" is about the picture, and any passage it matched would be unrelated to it. With an
        image, a passage must also point towards the question (cosine > 0) whatever the threshold."""
        request = state["request"]
        if not request.collection or (request.images and not state.get("asked", True)):
            return {"sources": [], "best": 0.0}
        k = request.k or self.config.flows.qa_top_k
        result = run_tool(self.tools.get("memory_search"),
                          {"query": state["question"], "k": k, "collection": request.collection})
        if result is None or not result.sources:
            return {"sources": [], "best": 0.0}
        threshold = self._threshold(request)
        floor = self.config.flows.qa_keyword_floor
        kept = [s for hit, s in zip(result.data, result.sources)
                if hit.relevant(threshold, floor) and (hit.score > 0.0 or not request.images)]
        return {"sources": kept, "best": max(s.score or 0.0 for s in result.sources)}

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
        chosen = request.mode or self.config.flows.qa_mode
        mode = resolve_mode(chosen, state["question"], bool(state["sources"]))
        if mode == "extractive":
            return self._extract(state)
        if chosen == "auto" and state["sources"] and is_yes_no(state["question"]):
            # answerability first: a yes/no question about a detail the passages do not mention passes every
            # retrieval gate, and free text then answers it anyway; asked for a quote, the model can say "unknown"
            quoted = self._extract(state)
            if quoted["span"] is None:
                return quoted
        gen = {"max_new_tokens": request.max_new_tokens} if request.max_new_tokens else {}
        answer = stream_answer(self.backend, self.messages(state), request.images, adapter=request.adapter, **gen)
        return {"answer": answer, "extractive": False, "span": None}

    def _extract(self, state: QAState) -> dict[str, Any]:
        """Decode a verbatim span of the passages (as the prompt shows them), or none (see grounding)."""
        request = state["request"]
        passages = [shown(s.excerpt) for s in state["sources"]]
        span = extract_span(self.backend, self.messages(state, system="system_extract", none=NO_SPAN_REPLY),
                            passages, state["question"], images=request.images, adapter=request.adapter,
                            max_new_tokens=request.max_new_tokens)
        return {"answer": span.text if span else "", "extractive": True, "span": span}

    def _cite(self, state: QAState) -> dict[str, Any]:
        if state.get("extractive"):
            return self._cite_span(state)
        sources, answer = state["sources"], state["answer"].strip()
        cited = cited_numbers(answer, len(sources))
        inferred = not cited and bool(sources)
        if inferred:  # the model wrote no [n]: credit the passages its words came from, and say so
            cited = attributed_numbers(answer, state["question"], sources)
            answer = f"{answer} {''.join(f'[{i}]' for i in cited)}".strip()
        for i, source in enumerate(sources, start=1):
            emit(SourceEvent(i, source, cited=i in cited))
        emit(DoneEvent(answer, {"question": state["question"], "answered": True, "citations": cited,
                                "citations_inferred": inferred and bool(cited), "mode": "generative",
                                "transcript": state.get("transcript", "")}))
        return {}

    def _cite_span(self, state: QAState) -> dict[str, Any]:
        """The quoted span with its exact citation, or "I don't know" when nothing quotable was found."""
        sources, span, prompts = state["sources"], state.get("span"), state["prompts"]
        data = {"question": state["question"], "mode": "extractive", "citations_inferred": False,
                "transcript": state.get("transcript", "")}
        if span is None:  # the passages found are still shown (uncited): the reply speaks of them
            text = say(prompts.text("no_span", collection=state["request"].collection))
            for i, source in enumerate(sources, start=1):
                emit(SourceEvent(i, source, cited=False))
            emit(DoneEvent(text, {**data, "answered": False, "citations": []}))
            return {}
        n = span.passage + 1
        text = say(prompts.text("extractive_answer", span=span.text, n=n))
        for i, source in enumerate(sources, start=1):
            emit(SourceEvent(i, source, cited=i == n))
        emit(DoneEvent(text, {**data, "answered": True, "citations": [n],
                              "span": {"text": span.text, "source": n, "start": span.start, "end": span.end}}))
        return {}

    # ---- prompt ----------------------------------------------------------------------------------
    def messages(self, state: QAState, system: str = "system", **fill: str) -> list[dict[str, Any]]:
        """The chat messages for the answer: fenced numbered sources (or none) and the question.
        `system`: the prompt key of the system message when there are sources; `fill`: its placeholders."""
        # A spoken question is the user's own question like typed text (`_listen` joined both), so it is not
        # fenced: fenced text is "never an instruction" to the model, and the 135M model then does not answer.
        question = state["question"]
        if state["sources"]:
            blocks = [fence(s.excerpt, f"[{i}] {_where(s)}") for i, s in enumerate(state["sources"], start=1)]
            return [{"role": "system", "content": state["prompts"].text(system, **fill)},
                    {"role": "user", "content": state["prompts"].text("user", sources="\n".join(blocks), question=question)}]
        system = state["prompts"].text("system_open")
        if state["request"].images:  # about a picture: stay with its labels and text (as `mmagent chat` does)
            from mmagent.prompting import chat_system

            system = chat_system(question, True, system)
        return [{"role": "system", "content": system},
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
