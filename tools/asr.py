"""The `asr` tool: speech in an audio file → text with timed segments (a thin wrapper over mmagent.asr)."""

from __future__ import annotations

from typing import Any

from mmagent.tools.base import Source, Tool, ToolResult

from mmagent.audio import AUDIO_MIME_TYPES, AUDIO_SUFFIXES


class AsrTool(Tool):
    name = "asr"
    description = (
        "Transcribe the speech in an audio file ("
        + ", ".join(s.lstrip(".") for s in sorted(AUDIO_SUFFIXES))
        + ") to text. Returns the transcript; each timed segment is a source. "
        "Silence gives an empty transcript."
    )
    inputs = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1, "description": "path of the audio file to transcribe"},
            "language": {
                "type": ["string", "null"],
                "description": "language code such as 'en'; omit to use the configured or detected language",
            },
        },
        "required": ["path"],
        "additionalProperties": False,
    }
    accepts = AUDIO_MIME_TYPES
    output_type = "string"

    def setup(self) -> None:
        from mmagent.asr import Transcriber

        self.transcriber = Transcriber(self.config.asr)
        self.transcriber.load()

    def forward(self, path: str, language: str | None = None, **_: Any) -> ToolResult:
        transcript = self.transcriber.transcribe(path, language=language, progress=False)
        sources = [
            Source(
                uri=transcript.path,
                start=s.start,
                end=s.end,
                excerpt=s.text,
                metadata={"language": transcript.language},
            )
            for s in transcript.segments
        ]
        return ToolResult(text=transcript.text, data=transcript, sources=sources)
