"""The `classify` tool: put a text and/or an image into one of a set of labels.

It runs the `classify` flow, so a model calling the tool gets exactly what `mmagent run classify`
prints: with a trained fusion classifier (the `classifier` argument, or `flows.classifier` in the
config) the classifier predicts in milliseconds; without one the VLM scores each label. The label set
may be omitted when a fusion classifier is used (it knows its labels).
"""

from __future__ import annotations

from typing import Any

from mmagent.tools.base import Source, Tool, ToolError, ToolResult

from mmagent.images import IMAGE_MIME_TYPES


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

    def validate_arguments(self, arguments: dict[str, Any]) -> None:
        super().validate_arguments(arguments)
        if not (arguments.get("text") or "").strip() and not arguments.get("image"):
            raise ToolError(f"tool 'classify' needs `text`, `image`, or both. Expected: {self.signature()}.")
        if not arguments.get("labels") and not (arguments.get("classifier") or self.config.flows.classifier):
            raise ToolError(
                "tool 'classify' needs `labels` (at least two) unless a fusion classifier is given "
                f"(`classifier`, or flows.classifier in the config). Expected: {self.signature()}."
            )

    def setup(self) -> None:
        from mmagent.flows.classify import ClassifyFlow

        self.flow = ClassifyFlow(self.config)  # the VLM loads only if a call needs it

    def forward(self, text: str = "", image: str | None = None, labels: list[str] | None = None,
                classifier: str | None = None, **_: Any) -> ToolResult:
        from mmagent.flows.classify import ClassifyRequest

        classifier = classifier or self.config.flows.classifier
        prediction = self.flow.predict(ClassifyRequest(list(labels or []), text, image, classifier))
        sources = [Source(uri=image, score=prediction.confidence)] if image else []
        return ToolResult(text=f"{prediction.label} ({prediction.confidence:.0%})", data=prediction, sources=sources)
