"""What every flow shares: events, the `Flow` protocol, a LangGraph-running base class, the registry.

A flow is a LangGraph graph over the model core and tools. Its nodes report progress by writing
:class:`Event` objects to LangGraph's custom stream (``emit``), so `run(request)` is a lazy generator
that yields tokens while the model is still writing. Events are plain dataclasses; ``to_dict()`` gives
the JSON the CLI prints with ``--json`` (one event per line).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol, runtime_checkable

from mmagent.errors import MMAgentError
from mmagent.tools.base import Source

if TYPE_CHECKING:
    from mmagent.config import Config
    from mmagent.model.backend import HFVisionBackend


class FlowError(MMAgentError, ValueError):
    """A flow was asked for something it cannot do (unknown flow, missing input, bad label set...)."""


# ---- events ---------------------------------------------------------------------------------------
@dataclass
class Event:
    """Base of all events; `type` names the kind in JSON output."""

    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass
class TokenEvent(Event):
    """A piece of the answer text, in order."""

    text: str
    type: ClassVar[str] = "token"


@dataclass
class ToolCallEvent(Event):
    """A tool call the flow is about to run (after the allow-list and policy checks passed)."""

    name: str
    args: dict[str, Any]
    id: str
    type: ClassVar[str] = "tool_call"


@dataclass
class ToolResultEvent(Event):
    """What a tool call returned (`ok`), or why it was refused or failed (`error`)."""

    name: str
    id: str
    ok: bool
    text: str = ""
    error: str | None = None
    type: ClassVar[str] = "tool_result"


@dataclass
class SourceEvent(Event):
    """A source the answer used; `index` is the number the answer cites it by ([1], [2], ...)."""

    index: int
    source: Source
    cited: bool = True
    type: ClassVar[str] = "source"


@dataclass
class HandoffEvent(Event):
    """The conversation goes to a human; `ticket` is the escalation ticket id when one was filed."""

    reason: str
    ticket: int | None = None
    type: ClassVar[str] = "handoff"


@dataclass
class DoneEvent(Event):
    """The last event of every run: the whole answer and flow-specific results (label, scores...)."""

    answer: str
    data: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "done"


def emit(event: Event) -> None:
    """Send `event` to whoever is iterating the running graph (a no-op outside a graph run)."""
    from langgraph.config import get_stream_writer

    get_stream_writer()(event)


def answer_of(events: Iterator[Event]) -> DoneEvent:
    """Drain a run and return its DoneEvent (for callers that do not stream)."""
    done = None
    for event in events:
        if isinstance(event, DoneEvent):
            done = event
    if done is None:
        raise FlowError("the flow ended without a 'done' event (a bug)")
    return done


# ---- flows ----------------------------------------------------------------------------------------
@runtime_checkable
class Flow(Protocol):
    name: ClassVar[str]

    def run(self, request: Any) -> Iterator[Event]:
        """Run the flow on `request`, yielding events; the last one is a DoneEvent."""
        ...


class GraphFlow:
    """Base class: holds the config, loads the backend on first use, compiles and streams the graph.

    Subclasses set `name`, `request_type`, implement `build(graph_builder_cls)` returning a compiled
    graph, and `start(request)` returning the graph's input state.
    """

    name: ClassVar[str]
    request_type: ClassVar[type]

    def __init__(self, config: "Config | None" = None, backend: "HFVisionBackend | None" = None) -> None:
        from mmagent.config import load_config

        self.config = config or load_config()
        self._backend = backend
        self._graph: Any = None
        # One flow serves concurrent requests (UI tabs, server threads): the first two must not both load
        # the model or both compile the graph (the support graph opens a SQLite connection that would leak).
        self._init_lock = threading.RLock()  # re-entrant: building a graph may load the model

    @property
    def backend(self) -> "HFVisionBackend":
        if self._backend is None:
            with self._init_lock:
                if self._backend is None:
                    from mmagent.model import load_backend

                    self._backend = load_backend(self.config)
        return self._backend

    @property
    def graph(self) -> Any:
        if self._graph is None:
            with self._init_lock:
                if self._graph is None:
                    self._graph = self.build()
        return self._graph

    def build(self) -> Any:
        raise NotImplementedError

    def start(self, request: Any) -> dict[str, Any]:
        raise NotImplementedError

    def run_config(self, request: Any) -> dict[str, Any]:
        """LangGraph run configuration (thread id for checkpointed flows)."""
        return {}

    def run(self, request: Any) -> Iterator[Event]:
        if not isinstance(request, self.request_type):
            raise FlowError(
                f"flow '{self.name}' takes a {self.request_type.__name__}; got {type(request).__name__}."
            )
        state = self.start(request)
        yield from self.graph.stream(state, self.run_config(request), stream_mode="custom")


FLOWS: dict[str, str] = {
    "qa": "mmagent.flows.qa:QAFlow",
    "support": "mmagent.flows.support:SupportFlow",
    "summarize": "mmagent.flows.summarize:SummarizeFlow",
    "classify": "mmagent.flows.classify:ClassifyFlow",
}


def flow_class(name: str) -> type[GraphFlow]:
    """The flow class registered as `name` (imports only that flow's module)."""
    if name not in FLOWS:
        raise FlowError(f"unknown flow {name!r}; available: {', '.join(FLOWS)}.")
    module, _, attr = FLOWS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def get_flow(name: str, config: "Config | None" = None, backend: Any = None) -> GraphFlow:
    """An instance of flow `name` sharing `config` (and `backend`, when given)."""
    return flow_class(name)(config, backend)
