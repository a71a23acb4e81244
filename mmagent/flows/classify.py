"""The `classify` flow: text and/or image → one label from a given set, with a confidence.

The prediction itself is :func:`mmagent.tools.classify.classify` (label log-likelihoods through
`ModelBackend.score` with contextual calibration, or a trained fusion classifier with ``classifier=PATH``),
shared with the `classify` tool; the flow checks the request, runs it as a graph and reports it as events.
The request names its adapter (`ClassifyRequest.adapter`), so one cached flow serves any adapter.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence, TypedDict

from mmagent.flows.base import DoneEvent, FlowError, GraphFlow, emit
from mmagent.flows.steps import check_files, say
from mmagent.prompting import PromptSet
from mmagent.tools.classify import (PROMPT_KEYS, ClassifyRequest, Prediction, classify, classify_messages,
                                    classify_prompts, fusion_classifier)

__all__ = ["PROMPT_KEYS", "ClassifyFlow", "ClassifyRequest", "Prediction", "parse_labels"]


class ClassifyState(TypedDict, total=False):
    request: ClassifyRequest
    prompts: PromptSet
    prediction: Prediction


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """'a,b,c' or a list → distinct non-empty labels; at least two."""
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    out = list(dict.fromkeys(x.strip() for x in items if x and x.strip()))
    if len(out) < 2:
        raise FlowError(f"classify needs at least two distinct labels (e.g. --labels positive,negative); got {out}.")
    return out


class ClassifyFlow(GraphFlow):
    name: ClassVar[str] = "classify"
    request_type: ClassVar[type] = ClassifyRequest

    def build(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(ClassifyState)
        graph.add_node("score", self._score)
        graph.add_node("report", self._report)
        graph.add_edge(START, "score")
        graph.add_edge("score", "report")
        graph.add_edge("report", END)
        return graph.compile()

    def start(self, request: ClassifyRequest) -> dict[str, Any]:
        if not request.labels and request.classifier:  # a fusion classifier knows its label set
            request.labels = list(fusion_classifier(request.classifier).labels)
        request.labels = parse_labels(request.labels)
        if request.image:
            request.image = check_files([request.image], "image")[0]
        if not request.text.strip() and not request.image:
            raise FlowError("classify needs text, an --image, or both.")
        return {"request": request, "prompts": classify_prompts(request.prompts)}

    def predict(self, request: ClassifyRequest) -> Prediction:
        """Run the flow and return the Prediction (for evals: accuracy, precision, recall, F1)."""
        for event in self.run(request):
            if isinstance(event, DoneEvent):
                return Prediction(**event.data["prediction"])
        raise FlowError("classify ended without a prediction (a bug)")

    def messages(self, state: ClassifyState) -> list[dict[str, Any]]:
        """The conversation the labels are scored as replies to (finetune builds its examples from it)."""
        return classify_messages(state["request"], state["prompts"])

    def _score(self, state: ClassifyState) -> dict[str, Any]:
        return {"prediction": classify(state["request"], lambda: self.backend, state["prompts"])}

    def _report(self, state: ClassifyState) -> dict[str, Any]:
        p = state["prediction"]
        say(p.label)
        emit(DoneEvent(p.label, {"prediction": {"label": p.label, "confidence": p.confidence,
                                                "scores": p.scores, "method": p.method}}))
        return {}
