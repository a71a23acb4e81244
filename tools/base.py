"""The Tool interface: what flows, agents and the LangChain adapters call, and what plugins implement.

Modelled on smolagents' ``Tool``: a small class declaring ``name``, ``description``, ``inputs`` (a JSON
schema of the keyword arguments), ``accepts`` (MIME types of files it can take) and ``output_type``.
Heavy work (loading a model) happens in :meth:`Tool.setup`, once, on the first call, never at import or
construction, so listing tools is cheap. Calls are validated against ``inputs`` before ``setup`` runs.

One tool instance serves every request of a process (a cached flow shares it between browser tabs and
API calls), so nothing that belongs to one request is stored on it: who the call is for (session,
verified customer, attachment, LoRA adapter) comes with each call as a :class:`ToolContext`, set by the
flow from its request and never by the model.

A tool registers through the ``mmagent.tools`` entry-point group (see :mod:`mmagent.tools.registry`);
built-ins use the same mechanism as third-party packages.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mmagent.errors import MMAgentError

if TYPE_CHECKING:
    from mmagent.config import Config

OUTPUT_TYPES = ("string", "object", "array", "number", "boolean", "any")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ToolError(MMAgentError, ValueError):
    """A tool was called with arguments that do not match its `inputs`, or a tool class is malformed."""


@dataclass
class Source:
    """Where part of a tool's answer came from, so a flow can cite it.

    `uri` is a file path or URI; `page` is 1-based (documents); `start`/`end` are seconds (audio, video);
    `score` is the tool's relevance or confidence (higher is better); `excerpt` is the quoted text.
    """

    uri: str
    page: int | None = None
    start: float | None = None
    end: float | None = None
    score: float | None = None
    excerpt: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    """What a tool call returns: `text` for the language model, `data` for code, `sources` for citations."""

    text: str
    data: Any = None
    sources: list[Source] = field(default_factory=list)


@dataclass(frozen=True)
class ToolContext:
    """Per-call facts a flow knows and the model must not choose: passed to :meth:`Tool.__call__`.

    `adapter`: the LoRA adapter of the request, for tools that call the model (None = the base model);
    `session`: the conversation; `customer_id`: the customer the flow verified in code (None = not
    verified); `attachment`: a file the user sent with this turn; `turn`: which turn of the conversation
    (the flow counts completed ones), so a tool that writes can recognise a turn retried after a crash."""

    session: str | None = None
    adapter: str | None = None
    customer_id: int | None = None
    attachment: str | None = None
    turn: int | None = None


class Tool(ABC):
    """Base class of every tool. Subclasses set the class attributes and implement :meth:`forward`.

    `inputs` is a JSON schema of type "object" whose properties are the keyword arguments; each property
    carries a "description" (the model reads it). `config` gives the tool its settings (e.g. ``config.asr``).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    inputs: ClassVar[dict[str, Any]]
    accepts: ClassVar[frozenset[str]] = frozenset()
    output_type: ClassVar[str] = "string"
    takes_context: ClassVar[bool] = False  # True: forward() also gets `context=` (a ToolContext)

    def __init__(self, config: "Config | None" = None) -> None:
        from mmagent.config import Config

        self.validate_class()
        self.config = config if config is not None else Config()
        self.is_initialized = False
        self._setup_lock = threading.Lock()

    @classmethod
    def validate_class(cls) -> None:
        """Check the declared attributes (cheap; runs at construction and in the contract test)."""
        import jsonschema

        where = f"tool class {cls.__module__}.{cls.__qualname__}"
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ToolError(
                f"{where}: `name` must be a lowercase identifier like 'memory_search'; got {name!r}."
            )
        if not isinstance(getattr(cls, "description", None), str) or not cls.description.strip():
            raise ToolError(
                f"{where}: `description` must be a non-empty string telling a model when to use it."
            )
        if cls.output_type not in OUTPUT_TYPES:
            raise ToolError(
                f"{where}: `output_type` must be one of {', '.join(OUTPUT_TYPES)}; got {cls.output_type!r}."
            )
        if not isinstance(cls.accepts, frozenset) or not all(
            isinstance(m, str) and "/" in m for m in cls.accepts
        ):
            raise ToolError(
                f"{where}: `accepts` must be a frozenset of MIME types like 'audio/wav'; got {cls.accepts!r}."
            )
        schema = getattr(cls, "inputs", None)
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise ToolError(
                f'{where}: `inputs` must be a JSON schema dict with "type": "object"; got {schema!r}.'
            )
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ToolError(f"{where}: `inputs` is not a valid JSON schema: {exc.message}.") from exc
        undocumented = [k for k, v in schema.get("properties", {}).items() if not v.get("description")]
        if undocumented:
            raise ToolError(
                f'{where}: input(s) {", ".join(undocumented)} need a "description" for the model.'
            )

    def setup(self) -> None:
        """Load heavy resources (models, indexes). Runs once, before the first call; default: nothing."""

    @abstractmethod
    def forward(self, **kwargs: Any) -> ToolResult:
        """Do the work with already validated arguments."""

    def validate_arguments(self, arguments: dict[str, Any]) -> None:
        """Raise ToolError naming every problem with `arguments` and the inputs this tool expects."""
        import jsonschema

        validator = jsonschema.validators.validator_for(self.inputs)(self.inputs)
        problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        if problems:
            found = "; ".join(_describe_error(e) for e in problems)
            raise ToolError(
                f"tool '{self.name}' got invalid arguments: {found}. Expected: {self.signature()}."
            )

    def signature(self) -> str:
        """Inputs as one readable line: `path` (string, required): ...; `language` (string): ..."""
        required = set(self.inputs.get("required", ()))
        parts = []
        for key, prop in self.inputs.get("properties", {}).items():
            kind = prop.get("type", "any")
            kind = " or ".join(kind) if isinstance(kind, list) else kind
            flag = ", required" if key in required else ""
            parts.append(f"`{key}` ({kind}{flag}): {prop.get('description', '')}")
        return "; ".join(parts) or "no arguments"

    def __call__(self, context: ToolContext | None = None, /, **kwargs: Any) -> ToolResult:
        """Validate `kwargs` (the model's arguments), set up once, run. `context` is positional-only so
        no tool input can be named like it; tools with `takes_context` get it as `forward(context=...)`."""
        self.validate_arguments(kwargs)
        if not self.is_initialized:
            with self._setup_lock:  # the UI and API may call one tool from several threads
                if not self.is_initialized:
                    self.setup()
                    self.is_initialized = True
        if self.takes_context:
            kwargs["context"] = context if context is not None else ToolContext()
        result = self.forward(**kwargs)
        if not isinstance(result, ToolResult):
            raise TypeError(
                f"tool '{self.name}'.forward returned {type(result).__name__}, not ToolResult (a bug)"
            )
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} accepts={sorted(self.accepts)}>"


def _describe_error(error: Any) -> str:
    """One jsonschema ValidationError as '`field`: message' (or just the message at top level)."""
    where = ".".join(str(p) for p in error.absolute_path)
    return f"`{where}`: {error.message}" if where else error.message
