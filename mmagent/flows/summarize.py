"""The `summarize` flow: text, documents, audio transcripts and images → one summary in a chosen style.

Graph: load (read files: text/HTML/PDF pages, audio via ASR with times, images via caption + OCR) →
fits? → map (notes per group of chunks that fits the context window) → fits? (repeat map over the
notes) → final (streamed). Every chunk keeps its source (file, page, time span), so sources survive
the map-reduce and are reported after the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from mmagent.flows.base import DoneEvent, FlowError, GraphFlow, SourceEvent, emit
from mmagent.flows.prompting import PromptSet, fence, load_prompts
from mmagent.flows.steps import ToolBox, check_files, run_tool, stream_answer, whole_sentences, without_markup
from mmagent.tools.base import Source

STYLES = ("bullets", "abstract", "action_items")
PROMPT_KEYS = ("system", "user", "map_user", *(f"style_{s}" for s in STYLES))
PROMPT_OVERHEAD = 160  # tokens of system prompt, instructions and fence markers per call
MAX_LEVELS = 6


@dataclass
class SummarizeRequest:
    paths: list[str] = field(default_factory=list)
    text: str = ""  # text given directly (e.g. piped in)
    style: str = "bullets"
    words: int = 80  # length target of the summary
    prompts: str | None = None
    adapter: str | None = None  # LoRA adapter that writes the notes and the summary (None = the base model)


@dataclass
class Piece:
    """A stretch of input with where it came from."""

    text: str
    source: Source


class SummarizeState(TypedDict, total=False):
    request: SummarizeRequest
    prompts: PromptSet
    pieces: list[Piece]
    level: int
    map_calls: int


def group_pieces(pieces: list[Piece], budget: int, count: Any) -> list[list[Piece]]:
    """Consecutive pieces packed into groups of at most `budget` tokens (`count(text)` measures)."""
    groups: list[list[Piece]] = []
    used = 0
    for piece in pieces:
        size = count(piece.text) + 12  # the fence line of each piece
        if groups and used + size <= budget:
            groups[-1].append(piece)
            used += size
        else:
            groups.append([piece])
            used = size
    return groups


class SummarizeFlow(GraphFlow):
    name: ClassVar[str] = "summarize"
    request_type: ClassVar[type] = SummarizeRequest

    def __init__(self, config: Any = None, backend: Any = None) -> None:
        super().__init__(config, backend)
        self.tools = ToolBox(self.config)

    def build(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(SummarizeState)
        graph.add_node("load", self._load)
        graph.add_node("map", self._map)
        graph.add_node("final", self._final)
        graph.add_edge(START, "load")
        graph.add_conditional_edges("load", self._route, ["map", "final"])
        graph.add_conditional_edges("map", self._route, ["map", "final"])
        graph.add_edge("final", END)
        return graph.compile()

    def start(self, request: SummarizeRequest) -> dict[str, Any]:
        if request.style not in STYLES:
            raise FlowError(f"unknown summary style {request.style!r}; choose one of {', '.join(STYLES)}.")
        if not 5 <= request.words <= 2000:
            raise FlowError(f"--words must be between 5 and 2000; got {request.words}.")
        request.paths = check_files(request.paths, "input")
        if not request.paths and not request.text.strip():
            raise FlowError("summarize needs FILE arguments or text on standard input.")
        return {"request": request, "prompts": load_prompts("summarize", request.prompts, PROMPT_KEYS),
                "level": 0, "map_calls": 0}

    # ---- budget ----------------------------------------------------------------------------------
    def window(self) -> int:
        """Tokens the model reads at once: flows.context_tokens, else the model's context length."""
        if self.config.flows.context_tokens:
            return self.config.flows.context_tokens
        length = self.backend.info().context_length
        if length is None:
            raise FlowError(f"the model ({self.backend.info().model_id}) does not say how many tokens it reads at "
                            "once; set flows.context_tokens (e.g. --set flows.context_tokens=2048).")
        return length

    def budget(self, words: int) -> int:
        """Tokens of source text one call may take, after the prompt and the answer."""
        room = self.window() - PROMPT_OVERHEAD - self._max_new(words)
        if room < 64:
            raise FlowError(f"the model's window ({self.window()} tokens) leaves no room for input with a "
                            f"{words}-word summary; lower --words or raise flows.context_tokens.")
        return room

    def count(self, text: str) -> int:
        return self.backend.count_tokens(text)

    @staticmethod
    def _max_new(words: int) -> int:
        return int(words * 1.7) + 16

    # ---- nodes -----------------------------------------------------------------------------------
    def _load(self, state: SummarizeState) -> dict[str, Any]:
        from mmagent.memory.chunking import ChunkOptions, chunk_text

        request = state["request"]
        raw: list[Piece] = []
        if request.text.strip():
            raw.append(Piece(request.text.strip(), Source(uri="<stdin>", excerpt=request.text.strip()[:200])))
        for path in request.paths:
            raw.extend(self._read(Path(path)))
        if not raw:
            raise FlowError("the inputs hold no text to summarize (empty files, silent audio?).")
        size = max(32, min(self.budget(request.words), 1024))
        pieces = []
        for piece in raw:  # split long sections so that each fits a call on its own
            for chunk in chunk_text(piece.text, _SpanTokenizer(self.backend), ChunkOptions(size=size, overlap=0)):
                pieces.append(Piece(chunk, piece.source))
        return {"pieces": pieces}

    def _read(self, path: Path) -> list[Piece]:
        from mmagent.memory.loaders import LOADERS, kind_of

        kind = kind_of(path)
        if kind in LOADERS:
            return [Piece(s.text, Source(uri=str(path), page=s.page, excerpt=s.text[:200]))
                    for s in LOADERS[kind](path) if s.text.strip()]
        if kind == "audio":
            result = run_tool(self.tools.get("asr"), {"path": str(path)})
            return [Piece(s.excerpt, s) for s in result.sources if s.excerpt.strip()] if result else []
        if kind == "image":
            from mmagent.memory.ingest import ImageDescriber

            text = ImageDescriber(self.config)(path)
            return [Piece(text, Source(uri=str(path), excerpt=text[:200], metadata={"kind": "image"}))]
        raise FlowError(f"cannot summarize '{path.name}': unsupported file type '{path.suffix}'. "
                        "Supported: text, Markdown, HTML, PDF, audio and image files.")

    def _route(self, state: SummarizeState) -> str:
        request = state["request"]
        total = sum(self.count(p.text) + 12 for p in state["pieces"])
        if total <= self.budget(request.words) or len(state["pieces"]) == 1:
            return "final"
        if state["level"] >= MAX_LEVELS:
            raise FlowError(f"the input is still too long after {MAX_LEVELS} map-reduce rounds; summarize fewer files.")
        return "map"

    def _map(self, state: SummarizeState) -> dict[str, Any]:
        """One map round: notes of each group of pieces, each keeping the union of its sources."""
        request, prompts = state["request"], state["prompts"]
        groups = group_pieces(state["pieces"], self.budget(request.words), self.count)
        notes_words = max(20, min(request.words, 120))
        notes = []
        for group in groups:
            messages = [{"role": "system", "content": prompts.text("system")},
                        {"role": "user", "content": prompts.text("map_user", words=notes_words,
                                                                 documents=self._documents(group))}]
            text = "".join(self.backend.generate(messages, adapter=request.adapter, facts_from=_texts(group),
                                                 max_new_tokens=self._max_new(notes_words))).strip()
            sources = [s for p in group for s in _sources_of(p)]
            notes.append(Piece(text or group[0].text[:400], Source(uri="(notes)", excerpt=text[:200],
                                                                  metadata={"sources": sources})))
        return {"pieces": notes, "level": state["level"] + 1, "map_calls": state["map_calls"] + len(groups)}

    def _final(self, state: SummarizeState) -> dict[str, Any]:
        request, prompts = state["request"], state["prompts"]
        messages = [{"role": "system", "content": prompts.text("system")},
                    {"role": "user", "content": prompts.text("user", words=request.words,
                                                             style=prompts.text(f"style_{request.style}"),
                                                             documents=self._documents(state["pieces"]))}]
        summary = without_markup(whole_sentences(stream_answer(
            self.backend, messages, adapter=request.adapter, facts_from=_texts(state["pieces"]),
            max_new_tokens=self._max_new(request.words))))
        sources = _unique(s for p in state["pieces"] for s in _sources_of(p))
        for i, source in enumerate(sources, start=1):
            emit(SourceEvent(i, source, cited=False))
        emit(DoneEvent(summary, {"style": request.style, "words_target": request.words,
                                 "words": len(summary.split()), "map_calls": state["map_calls"],
                                 "levels": state["level"], "window_tokens": self.window()}))
        return {}

    @staticmethod
    def _documents(pieces: list[Piece]) -> str:
        """The pieces as fenced data, one fence per file (consecutive pieces of a file joined).

        Unnumbered: a summary does not cite, and a run of numbered fences ("[1] a.pdf p. 1", "[2] a.pdf
        p. 2") made the 135M default model continue the pattern ("<<<Data [3] ...") instead of summarizing.
        """
        blocks: list[tuple[str, list[str]]] = []
        for piece in pieces:
            label = _label(piece.source)
            if blocks and blocks[-1][0] == label:
                blocks[-1][1].append(piece.text)
            else:
                blocks.append((label, [piece.text]))
        return "\n".join(fence("\n\n".join(texts), label) for label, texts in blocks)


def _texts(pieces: list[Piece]) -> tuple[str, ...]:
    """What a summary's numbers, months and weekdays must come from (closed-world facts decoding,
    :mod:`mmagent.model.closed_facts`): the texts being summarized. Notes of a map round were written under
    the same rule from their own pieces, so the final summary over notes inherits it."""
    return tuple(p.text for p in pieces)


def _sources_of(piece: Piece) -> list[Source]:
    """The original sources behind a piece (notes carry the sources they were written from)."""
    return list(piece.source.metadata.get("sources") or [piece.source])


def _unique(sources: Any) -> list[Source]:
    seen: dict[tuple, Source] = {}
    for s in sources:
        seen.setdefault((s.uri, s.page, s.start, s.end), s)
    return list(seen.values())


def _label(source: Source) -> str:
    """The fence label of a piece: its file's name, or "notes" for map-round notes."""
    return "notes" if source.uri == "(notes)" else Path(source.uri).name


class _SpanTokenizer:
    """The backend's token spans in the shape `memory.chunking` reads from a tokenizer (its offset mapping):
    the summary's chunks are cut at the model's own token counts without touching its tokenizer."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __call__(self, text: str, **_: Any) -> dict[str, list[tuple[int, int]]]:
        return {"offset_mapping": self.backend.token_spans(text)}
