"""The `classify` tool, and the classification itself: a text and/or an image → one label of a set.

The 135M default model is weak at free generation, so the VLM is not asked to *write* a label: each
candidate label is scored by the log-likelihood of the assistant answering exactly that label
(`ModelBackend.score`, one batched forward pass); a softmax over the label scores is the confidence.
With a trained fusion classifier (`classifier=PATH`, or `flows.classifier` in the config) the classifier
predicts instead, in milliseconds, and the label set may be omitted (it knows its labels).

:func:`classify` lives here, below the flows, because both the tool and the `classify` flow run it:
the flow adds the graph, events and request checks; a model calling the tool gets the same prediction
`mmagent run classify` prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from mmagent.errors import MMAgentError
from mmagent.images import IMAGE_MIME_TYPES
from mmagent.tools.base import Source, Tool, ToolContext, ToolError, ToolResult

if TYPE_CHECKING:
    from mmagent.model.base import ModelBackend
    from mmagent.prompting import PromptSet

PROMPT_KEYS = ("system", "user", "user_image_only")


class ClassifyError(MMAgentError, ValueError):
    """A classification request that cannot be answered (e.g. labels a fusion classifier does not know)."""


@dataclass
class ClassifyRequest:
    labels: list[str]
    text: str = ""
    image: str | None = None
    classifier: str | None = None  # path of a trained mmagent.fusion classifier; None = score with the VLM
    calibrate: bool = True  # subtract each label's score on a content-free input (Zhao et al., 2021)
    prompts: str | None = None
    adapter: str | None = None  # LoRA adapter that scores the labels (None = the base model)


@dataclass
class Prediction:
    """The chosen label, its probability, and every label's probability (sums to 1)."""

    label: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)
    method: str = "vlm-likelihood"


def softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def classify_prompts(path: str | None = None) -> "PromptSet":
    """The shipped prompts/classify.yaml, or a user's edited copy at `path`."""
    from mmagent.prompting import load_prompts

    return load_prompts("classify", path, PROMPT_KEYS)


def classify_messages(request: ClassifyRequest, prompts: "PromptSet") -> list[dict[str, Any]]:
    """The conversation whose assistant reply is scored: the labels in the system prompt, the text fenced."""
    from mmagent.prompting import fence

    user = (prompts.text("user", text=fence(request.text, "input text")) if request.text.strip()
            else prompts.text("user_image_only"))
    return [{"role": "system", "content": prompts.text("system", labels=", ".join(request.labels))},
            {"role": "user", "content": user}]


def classify(request: ClassifyRequest, backend: "Callable[[], ModelBackend]",
             prompts: "PromptSet | None" = None) -> Prediction:
    """Predict `request`'s label: with its fusion classifier when it names one, else by label likelihood
    under `request.adapter`. `backend()` gives the model; it is called only when the VLM scores, so a
    fusion-only call loads none."""
    if request.classifier:
        return fusion_predict(request)
    model = backend()
    prompts = prompts or classify_prompts(request.prompts)
    images = [request.image] if request.image else []
    raw = model.score(classify_messages(request, prompts), request.labels, images=images, adapter=request.adapter)
    if request.calibrate:  # contextual calibration: remove the model's prior for each label
        empty = classify_messages(ClassifyRequest(request.labels, "N/A"), prompts)
        prior = model.score(empty, request.labels, adapter=request.adapter)
        raw = [r - p for r, p in zip(raw, prior)]
    probs = softmax(raw)
    best = max(range(len(probs)), key=probs.__getitem__)
    scores = {label: round(p, 6) for label, p in zip(request.labels, probs)}
    return Prediction(request.labels[best], round(probs[best], 6), scores)


def fusion_classifier(path: str) -> Any:
    """The trained classifier at `path` (loaded once per process; see FusionClassifier.load)."""
    from mmagent.fusion import FusionClassifier

    return FusionClassifier.load(path)


def fusion_predict(request: ClassifyRequest) -> Prediction:
    """Predict with a trained `mmagent.fusion.FusionClassifier`; its labels must match the request's."""
    model = fusion_classifier(request.classifier)
    out = model.predict(request.text, request.image)
    scores = dict(getattr(out, "scores", None) or {})
    known = list(getattr(model, "labels", None) or scores)
    if known and set(request.labels) - set(known):
        raise ClassifyError(
            f"classifier {request.classifier} knows labels {known}; the request asks for {request.labels}. "
            "Use the classifier's labels, or train one on yours."
        )
    if scores:
        kept = {k: v for k, v in scores.items() if k in request.labels}
        total = sum(kept.values()) or 1.0
        scores = {k: round(v / total, 6) for k, v in kept.items()}
        label = max(scores, key=scores.__getitem__)
        return Prediction(label, scores[label], scores, method="fusion")
    return Prediction(str(out.label), float(out.confidence), {str(out.label): float(out.confidence)}, method="fusion")


class ClassifyTool(Tool):
    name = "classify"
    description = (
        "Classify a text and/or an image into one label of `labels` (e.g. a question about an image → its "
        "answer, a message → its topic). Returns the label and its confidence; data holds every label's score."
    )
    inputs = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "the text to classify (may be empty when an image is given)"},
            "image": {"type": ["string", "null"], "minLength": 1, "description": "path of an image to classify"},
            "labels": {
                "type": ["array", "null"],
                "items": {"type": "string", "minLength": 1},
                "minItems": 2,
                "description": "the candidate labels; may be omitted with a trained fusion classifier",
            },
            "classifier": {
                "type": ["string", "null"],
                "description": "folder of a trained fusion classifier; omit to use the configured one or the VLM",
            },
        },
        "additionalProperties": False,
    }
    accepts = IMAGE_MIME_TYPES
    output_type = "string"
    takes_context = True  # the request's adapter

    def validate_arguments(self, arguments: dict[str, Any]) -> None:
        super().validate_arguments(arguments)
        if not (arguments.get("text") or "").strip() and not arguments.get("image"):
            raise ToolError(f"tool 'classify' needs `text`, `image`, or both. Expected: {self.signature()}.")
        if not arguments.get("labels") and not (arguments.get("classifier") or self.config.flows.classifier):
            raise ToolError(
                "tool 'classify' needs `labels` (at least two) unless a fusion classifier is given "
                f"(`classifier`, or flows.classifier in the config). Expected: {self.signature()}."
            )

    def forward(self, context: ToolContext, text: str = "", image: str | None = None,
                labels: list[str] | None = None, classifier: str | None = None, **_: Any) -> ToolResult:
        classifier = classifier or self.config.flows.classifier
        labels = list(labels or (fusion_classifier(classifier).labels if classifier else []))
        request = ClassifyRequest(labels, text, image, classifier, adapter=context.adapter)
        prediction = classify(request, self._backend)
        sources = [Source(uri=image, score=prediction.confidence)] if image else []
        return ToolResult(text=f"{prediction.label} ({prediction.confidence:.0%})", data=prediction, sources=sources)

    def _backend(self) -> "ModelBackend":
        """The process-wide model (loaded only when a call needs the VLM)."""
        from mmagent.model import load_backend

        return load_backend(self.config)
