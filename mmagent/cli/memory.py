"""`mmagent ingest` and `mmagent memory list|show|search|delete|reset`: the vector memory from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from mmagent.cli import app
from mmagent.cli.options import ConfigOpt, SetOpt, build_config
from mmagent.errors import MemoryStoreError

memory_app = typer.Typer(
    help="Vector memory collections: list, show, search, delete, reset.", no_args_is_help=True
)
app.add_typer(memory_app, name="memory")

CollectionOpt = typer.Option(None, "--collection", "-c", help="Collection name (default: memory.collection).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of text.")
YesOpt = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _confirm(question: str) -> None:
    """Ask; anything but yes stops the command with status 1 (nothing deleted)."""
    if not typer.confirm(question, default=False):
        typer.echo("aborted; nothing deleted")
        raise typer.Exit(1)


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders: .txt .md .html .pdf, images, audio."),
    collection: Optional[str] = CollectionOpt,
    chunk_size: int = typer.Option(200, "--chunk-size", help="Chunk length in embedder tokens."),
    chunk_overlap: int = typer.Option(40, "--chunk-overlap", help="Tokens shared by neighbouring chunks."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress",
        help="Show the files-done bar on stderr (default: only on a terminal).",
    ),
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Add files to a memory collection. Unchanged files are skipped; one bad file does not stop the rest.

    Exits with status 1 when any file failed (the summary says which and why), 2 when the store cannot be
    written (disk full, read-only). An interrupted run is finished by running it again.
    """
    from mmagent.memory import open_memory
    from mmagent.memory.chunking import ChunkOptions
    from mmagent.memory.ingest import Ingestor, default_models

    cfg = build_config(config, set_, memory__collection=collection)
    chunking = ChunkOptions(chunk_size, chunk_overlap)
    describe, transcribe, reasons = default_models(cfg)
    memory = open_memory(cfg.memory)
    ingestor = Ingestor(memory, describe, transcribe, chunking, reasons, max_text_mb=cfg.limits.max_text_mb)
    summary = ingestor.run(paths, progress)
    if as_json:
        _echo_json(summary.to_dict())
    else:
        typer.echo(
            f"collection {summary.collection}: {summary.files} file(s), {summary.ingested} ingested "
            f"({summary.updated} updated), "
            f"{summary.chunks} chunk(s) added, {len(summary.skipped)} skipped, {len(summary.failed)} failed "
            f"in {summary.seconds:.1f} s"
        )
        for title, notes in (("skipped", summary.skipped), ("failed", summary.failed)):
            if notes:
                typer.echo(f"{title}:")
                for note in notes:
                    typer.echo(f"  {note.path}: {note.reason}")
    if summary.failed:
        raise typer.Exit(1)


@memory_app.command("list")
def list_(
    as_json: bool = JsonOpt, config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt
) -> None:
    """Collections with their size and the embedder they are pinned to."""
    from mmagent.memory import list_collections

    cfg = build_config(config, set_)
    infos = list_collections(cfg.memory)
    if as_json:
        _echo_json([_info_dict(i) for i in infos])
        return
    if not infos:
        typer.echo(f"no collections in {cfg.memory.url or cfg.memory.path}")
    for info in infos:
        embedder = (
            f"{info.embedder.name} ({info.embedder.dimension}d)" if info.embedder else "no embedder recorded"
        )
        typer.echo(f"{info.name}\t{info.count} chunk(s)\t{embedder}")


def _info_dict(info: Any) -> dict[str, Any]:
    pin = info.embedder
    return {
        "name": info.name,
        "count": info.count,
        "embedder": None
        if pin is None
        else {"name": pin.name, "dimension": pin.dimension, "weights_sha256": pin.weights_sha256},
    }


@memory_app.command()
def show(
    name: str = typer.Argument(..., help="Collection name."),
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """One collection: size, embedder pin, and chunks per source file."""
    from mmagent.memory import list_collections, open_memory

    cfg = build_config(config, set_)
    infos = {i.name: i for i in list_collections(cfg.memory)}
    if name not in infos:
        raise MemoryStoreError(
            f"collection {name!r} does not exist (collections: {', '.join(infos) or 'none'})."
        )
    sources = open_memory(cfg.memory, name).sources()  # reads metadata only: no model loads
    if as_json:
        _echo_json({**_info_dict(infos[name]), "sources": sources})
        return
    info = _info_dict(infos[name])
    typer.echo(f"collection {name}: {info['count']} chunk(s)")
    if info["embedder"]:
        e = info["embedder"]
        typer.echo(
            f"embedder: {e['name']}, {e['dimension']} dimensions, weights sha256 {e['weights_sha256']}"
        )
    for source, count in sources.items():
        typer.echo(f"  {count:6d}  {source}")


@memory_app.command()
def search(
    words: list[str] = typer.Argument(
        ..., metavar="[NAME] QUERY",
        help="Collection name (like show and delete; default: -c or memory.collection), then what to look for, "
             "in words (also finds images by description).",
    ),
    collection: Optional[str] = CollectionOpt,
    k: int = typer.Option(5, "--k", "-k", help="Number of hits.", min=1),
    kind: Optional[str] = typer.Option(
        None, "--kind", help="Only this kind: text | html | pdf | image | audio."
    ),
    where: Optional[str] = typer.Option(
        None, "--where", help="Chroma metadata filter as JSON, e.g. '{\"page\": 2}'."
    ),
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Search a collection: `mmagent memory search NAME "query"`; prints hits best first with score and source."""
    from mmagent.memory import open_memory

    query, collection = _search_words(words, collection)
    cfg = build_config(config, set_, memory__collection=collection)
    filters = []
    if where:
        try:
            filters.append(json.loads(where))
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--where") from exc
    if kind:
        filters.append({"kind": kind})
    condition = filters[0] if len(filters) == 1 else {"$and": filters} if filters else None
    hits = open_memory(cfg.memory).search(query, k=k, where=condition)
    if as_json:
        _echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        typer.echo("no hits")
    for rank, hit in enumerate(hits, start=1):
        where_in = f" {hit.location}" if hit.location else ""
        typer.echo(f"{rank}. [{hit.score:.3f}] {hit.source}{where_in} ({hit.kind})")
        typer.echo("   " + " ".join(hit.text.split())[:300])


def _search_words(words: list[str], collection: Optional[str]) -> tuple[str, Optional[str]]:
    """`search NAME QUERY` or `search QUERY` (with -c NAME or the configured collection)."""
    if len(words) == 1:
        return words[0], collection
    if len(words) == 2 and collection is None:
        return words[1], words[0]
    shown = " ".join(repr(w) for w in words)
    raise typer.BadParameter(
        f"expected NAME \"QUERY\" or \"QUERY\" with -c NAME; got {shown}{' with -c ' + collection if collection else ''}. "
        "Quote a query of several words.",
        param_hint="NAME QUERY",
    )


@memory_app.command()
def delete(
    name: str = typer.Argument(..., help="Collection name."),
    source: Optional[list[Path]] = typer.Option(
        None, "--source", help="Only chunks of this file (repeatable)."
    ),
    ids: Optional[list[str]] = typer.Option(None, "--id", help="Only the chunk with this id (repeatable)."),
    yes: bool = YesOpt,
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
) -> None:
    """Delete a whole collection (asks first), or only some of its chunks (--source, --id)."""
    from mmagent.memory import delete_collection, open_memory

    cfg = build_config(config, set_)
    if not source and not ids:
        if not yes:
            _confirm(f"Delete the whole collection {name!r}?")
        delete_collection(cfg.memory, name)
        typer.echo(f"deleted collection {name}")
        return
    memory = open_memory(cfg.memory, name)  # deleting needs no embedder: no model loads
    removed = memory.delete(ids=ids) if ids else 0
    for path in source or []:
        removed += memory.delete(where={"source": str(path.expanduser().resolve())})
    typer.echo(f"deleted {removed} chunk(s) from {name}")


@memory_app.command()
def reset(yes: bool = YesOpt, config: Optional[Path] = ConfigOpt, set_: Optional[list[str]] = SetOpt) -> None:
    """Delete every collection in the store (asks first unless --yes)."""
    from mmagent.memory import reset_memory

    cfg = build_config(config, set_)
    if not yes:
        _confirm(f"Delete ALL collections in {cfg.memory.url or cfg.memory.path}?")
    names = reset_memory(cfg.memory)
    typer.echo(f"deleted {len(names)} collection(s){': ' + ', '.join(names) if names else ''}")
