"""The `memory_search` tool: find stored passages, transcripts and photos relevant to a question.

A thin wrapper over :class:`mmagent.memory.Memory`, ranking as ``memory.search`` says (hybrid: dense +
BM25 by reciprocal rank; each hit keeps its cosine score and keyword evidence in `data`). Retrieved text is data from the user's files, not
instructions: it is returned quoted, with its source, so a flow can cite it.
"""

from __future__ import annotations

from typing import Any

from mmagent.tools.base import Source, Tool, ToolResult

KINDS = ["text", "html", "pdf", "image", "audio"]


class MemorySearchTool(Tool):
    name = "memory_search"
    description = (
        "Search the user's stored documents, PDFs, audio transcripts and photos (by description) for passages "
        "relevant to a query. Returns the best matches with their source file, page or time, and score."
    )
    inputs = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "what to look for, in words"},
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "description": "how many matches to return (default 5)",
            },
            "kind": {
                "type": ["string", "null"],
                "enum": KINDS + [None],
                "description": "only this kind of source: " + ", ".join(KINDS) + " (image = find photos)",
            },
            "collection": {
                "type": ["string", "null"],
                "description": "collection to search; omit for the configured default",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    output_type = "string"

    def setup(self) -> None:
        self._memories: dict[str, Any] = {}  # collection name -> Memory (the embedder loads on first search)

    def forward(
        self, query: str, k: int = 5, kind: str | None = None, collection: str | None = None, **_: Any
    ) -> ToolResult:
        name = collection or self.config.memory.collection
        if name not in self._memories:
            from mmagent.memory import open_memory

            self._memories[name] = open_memory(self.config.memory, name)
        hits = self._memories[name].search(query, k=k, where={"kind": kind} if kind else None,
                                           mode=self.config.memory.search)
        sources = [
            Source(
                uri=h.source or h.id,
                page=h.page,
                start=h.start,
                end=h.end,
                score=h.score,
                excerpt=h.text,
                metadata={"kind": h.kind, "id": h.id, "collection": name, "keyword_rank": h.keyword_rank,
                          "coverage": h.coverage},
            )
            for h in hits
        ]
        if not hits:
            return ToolResult(text=f"No stored passages in collection '{name}' match {query!r}.", data=hits)
        lines = [f"{len(hits)} passage(s) from collection '{name}' (quoted data from the user's files):"]
        for i, h in enumerate(hits, start=1):
            where = f", {h.location}" if h.location else ""
            keywords = f", keyword rank {h.keyword_rank}" if h.keyword_rank is not None else ""
            lines.append(
                f'[{i}] {h.source}{where} ({h.kind}, score {h.score:.2f}{keywords}): "{" ".join(h.text.split())}"'
            )
        return ToolResult(text="\n".join(lines), data=hits, sources=sources)
