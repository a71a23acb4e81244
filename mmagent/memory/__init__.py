"""Persistent vector memory: Chroma collections pinned to their embedder, and file ingest.

Importing this package is cheap (no chromadb, no torch); the store and the embedder load on first use.

    from mmagent.memory import open_memory, Document
    memory = open_memory(config.memory, "notes")
    memory.add([Document("The invoice is due on 3 May.", {"source": "mail.txt"})])
    hits = memory.search("when is the invoice due?", k=3)
    summary = ingest(["docs/", "talk.flac"], memory, transcribe=...)  # see mmagent.memory.ingest
"""

from mmagent.memory.ingest import Ingestor, IngestSummary, ingest
from mmagent.memory.store import (
    CollectionInfo,
    Document,
    Hit,
    Memory,
    delete_collection,
    list_collections,
    open_memory,
    reset_memory,
)

__all__ = [
    "CollectionInfo",
    "Document",
    "Hit",
    "IngestSummary",
    "Ingestor",
    "Memory",
    "delete_collection",
    "ingest",
    "list_collections",
    "open_memory",
    "reset_memory",
]
