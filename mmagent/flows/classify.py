"""The `classify` flow: text and/or image → one label from a given set, with a confidence.

The 135M default model is weak at free generation, so the VLM is not asked to *write* a label: each
candidate label is scored by the log-likelihood of the assistant answering exactly that label (the
chat template's end-of-turn included, so "positive" is not a prefix win for "positive review"), in one
batched forward pass; a softmax over the label scores is the confidence. With ``classifier=PATH`` a
trained fusion classifier (`mmagent.fusion.FusionClassifier`) predicts instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence, TypedDict

from mmagent.flows.base import DoneEvent, FlowError, GraphFlow, emit
from mmagent.flows.prompting import PromptSet, fence, load_prompts
from mmagent.flows.steps import check_files, say
from mmagent.model.base import attach_images

PROMPT_KEYS = ("system", "user", "user_image_only")


@dataclass
class ClassifyRequest:
    labels: list[str]
    text: str = ""
    image: str | None = None
    classifier: str | None = None  # path of a trained mmagent.fusion classifier; None = score with the VLM
    calibrate: bool = True  # subtract each label's score on a content-free input (Zhao et al., 2021)
    prompts: str | None = None


@dataclass
class Prediction:
    """The chosen label, its probability, and every label's probability (sums to 1)."""

    label: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict)
    method: str = "vlm-likelihood"


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


def softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def label_log_likelihoods(backend: Any, messages: list[dict[str, Any]], labels: Sequence[str],
                          images: Sequence[Any] = ()) -> list[float]:
    """Sum of log-probabilities of each label (plus the end-of-turn) as the assistant's reply."""
    import torch

    messages = attach_images(messages, images)
    prompt, pil_images = backend.render(messages)
    tok = backend.tokenizer
    if pil_images:
        prompt_ids = backend.processor(text=[prompt], images=pil_images, return_tensors="pt")
    else:
        prompt_ids = tok([prompt], return_tensors="pt", add_special_tokens=False)
    base = prompt_ids["input_ids"][0].tolist()
    continuations = [tok(_reply(backend, messages, prompt, label), add_special_tokens=False)["input_ids"]
                     for label in labels]
    width = len(base) + max(len(c) for c in continuations)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(labels), width), pad, dtype=torch.long)
    mask = torch.zeros((len(labels), width), dtype=torch.long)
    for row, cont in enumerate(continuations):
        ids[row, : len(base) + len(cont)] = torch.tensor(base + cont)
        mask[row, : len(base) + len(cont)] = 1
    extra = {k: torch.cat([v] * len(labels)) for k, v in prompt_ids.items() if k not in ("input_ids", "attention_mask")}
    lock = getattr(backend, "_lock", None)  # generation and scoring share one resident model
    with (lock if lock is not None else _nullcontext(), torch.inference_mode(),
          backend.adapters.selected(backend.adapters.active) as model):
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       **{k: v.to(model.device) for k, v in extra.items()}).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    scores = []
    for row, cont in enumerate(continuations):
        positions = torch.arange(len(base) - 1, len(base) - 1 + len(cont))
        scores.append(float(logprobs[row, positions, torch.tensor(cont)].sum()))
    return scores


def _reply(backend: Any, messages: list[dict[str, Any]], prompt: str, label: str) -> str:
    """The text the template renders for an assistant turn answering `label` (up to its end-of-turn)."""
    full, _ = backend.render([*_text_only(messages), {"role": "assistant", "content": label}], add_generation_prompt=False)
    text_prompt, _ = backend.render(_text_only(messages))
    if full.startswith(text_prompt):
        return full[len(text_prompt):].rstrip("\n")
    return label + (backend.tokenizer.eos_token or "")


def _text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with image parts dropped (the reply's rendering does not depend on them; no OCR rerun)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [p for p in content if p.get("type") != "image"]
        out.append(dict(m, content=content))
    return out


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


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
            request.labels = list(_fusion_classifier(request.classifier).labels)
        request.labels = parse_labels(request.labels)
        if request.image:
            request.image = check_files([request.image], "image")[0]
        if not request.text.strip() and not request.image:
            raise FlowError("classify needs text, an --image, or both.")
        return {"request": request, "prompts": load_prompts("classify", request.prompts, PROMPT_KEYS)}

    def predict(self, request: ClassifyRequest) -> Prediction:
        """Run the flow and return the Prediction (for evals: accuracy, precision, recall, F1)."""
        for event in self.run(request):
            if isinstance(event, DoneEvent):
                return Prediction(**event.data["prediction"])
        raise FlowError("classify ended without a prediction (a bug)")

    def messages(self, state: ClassifyState) -> list[dict[str, Any]]:
        request, prompts = state["request"], state["prompts"]
        user = (prompts.text("user", text=fence(request.text, "input text")) if request.text.strip()
                else prompts.text("user_image_only"))
        return [{"role": "system", "content": prompts.text("system", labels=", ".join(request.labels))},
                {"role": "user", "content": user}]

    def _score(self, state: ClassifyState) -> dict[str, Any]:
        request = state["request"]
        if request.classifier:
            return {"prediction": _fusion_predict(request)}
        images = [request.image] if request.image else []
        raw = label_log_likelihoods(self.backend, self.messages(state), request.labels, images)
        if request.calibrate:  # contextual calibration: remove the model's prior for each label
            empty = self.messages({"request": ClassifyRequest(request.labels, "N/A"), "prompts": state["prompts"]})
            prior = label_log_likelihoods(self.backend, empty, request.labels)
            raw = [r - p for r, p in zip(raw, prior)]
        probs = softmax(raw)
        best = max(range(len(probs)), key=probs.__getitem__)
        scores = {label: round(p, 6) for label, p in zip(request.labels, probs)}
        return {"prediction": Prediction(request.labels[best], round(probs[best], 6), scores)}

    def _report(self, state: ClassifyState) -> dict[str, Any]:
        p = state["prediction"]
        say(p.label)
        emit(DoneEvent(p.label, {"prediction": {"label": p.label, "confidence": p.confidence,
                                                "scores": p.scores, "method": p.method}}))
        return {}


def _fusion_classifier(path: str) -> Any:
    """The trained classifier at `path` (loaded once per process; see FusionClassifier.load)."""
    from mmagent.fusion import FusionClassifier

    return FusionClassifier.load(path)


def _fusion_predict(request: ClassifyRequest) -> Prediction:
    """Predict with a trained `mmagent.fusion.FusionClassifier`; its labels must match the request's."""
    model = _fusion_classifier(request.classifier)
    out = model.predict(request.text, request.image)
    scores = dict(getattr(out, "scores", None) or {})
    known = list(getattr(model, "labels", None) or scores)
    if known and set(request.labels) - set(known):
        raise FlowError(
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
