"""The Memory page: choose or create a collection, upload files into it, list and delete documents.

Ingest is ``mmagent.memory.Ingestor`` run one file at a time, so a progress bar can move between
files; images are described by the same resident model the chat uses (one load per process).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import streamlit as st
from mmagent.ui.attachments import accepted_suffixes, session_area, store_upload
from mmagent.ui.resources import get_backend, get_config, public

from mmagent.errors import MMAgentError


@st.cache_data(ttl=10, show_spinner=False)
def collection_names(memory_path: str, url: str | None) -> list[str]:
    """Names of the collections in the store (cached briefly: the sidebar asks on every rerun)."""
    from mmagent.memory import list_collections

    return [c.name for c in list_collections(get_config().memory)]


def refresh_collections() -> None:
    collection_names.clear()


def known_collections() -> list[str]:
    """Existing collections plus ones created in this session that have no documents yet."""
    memory = get_config().memory
    try:
        names = collection_names(memory.path, memory.url)
    except MMAgentError as exc:
        st.error("Memory store unavailable: " + public(str(exc)))
        names = []
    return sorted(set(names) | set(st.session_state.get("new_collections", [])))


def ingest_files(collection: str, paths: list[str], labels: list[str] | None = None) -> Any:
    """Ingest stored files into `collection` with a progress bar; returns the merged IngestSummary."""
    from mmagent.memory import Ingestor, IngestSummary, open_memory
    from mmagent.memory.ingest import default_models
    from mmagent.memory.loaders import IMAGE_SUFFIXES

    config = get_config()
    memory = open_memory(config.memory, collection)
    if any(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths):
        get_backend()  # images are captioned by the resident model: load it behind the spinner first
    describe, transcribe, reasons = default_models(config)
    ingestor = Ingestor(memory, describe, transcribe, missing_reasons=reasons, max_text_mb=config.limits.max_text_mb)
    total = IngestSummary(collection)
    bar = st.progress(0.0, text=f"Adding {len(paths)} file(s) to '{collection}'…")
    for i, path in enumerate(paths):
        name = (labels or [])[i] if labels and i < len(labels) else Path(path).name
        bar.progress(i / len(paths), text=f"{i + 1}/{len(paths)}: {name}")
        one = ingestor.run([path], progress=False)
        total.files += one.files
        total.ingested += one.ingested
        total.updated += one.updated
        total.chunks += one.chunks
        total.skipped += one.skipped
        total.failed += one.failed
        total.seconds += one.seconds
    bar.progress(1.0, text=f"Done: {total.ingested} file(s), {total.chunks} new chunk(s) in '{collection}'.")
    refresh_collections()
    return total


def summary_text(summary: Any) -> str:
    head = (f"Added {summary.ingested} of {summary.files} file(s) to '{summary.collection}' "
            f"({summary.chunks} new chunk(s), {summary.seconds:.1f} s).")
    lines = [head]
    lines += [f"- skipped {Path(n.path).name}: {n.reason}" for n in summary.skipped]
    lines += [f"- failed {Path(n.path).name}: {n.reason}" for n in summary.failed]
    return "\n".join(lines)


def _choose_collection() -> str | None:
    names = known_collections()
    with st.form("new_collection", clear_on_submit=True):
        new = st.text_input("New collection name", placeholder="e.g. product-manuals")
        if st.form_submit_button("Create") and new.strip():
            from mmagent.memory.store import check_collection_name

            try:
                name = check_collection_name(new.strip())
            except MMAgentError as exc:
                st.error(public(str(exc)))
            else:
                st.session_state.setdefault("new_collections", []).append(name)
                st.session_state["memory_collection"] = name
                names = known_collections()
                st.success(f"Collection '{name}' is ready; add files to it below.")
    if not names:
        st.info("No collections yet: create one above.")
        return None
    current = st.session_state.get("memory_collection")
    index = names.index(current) if current in names else 0
    return st.selectbox("Collection", names, index=index, key="memory_collection")


def _upload(collection: str) -> None:
    config = get_config()
    files = st.file_uploader("Files to add (text, Markdown, HTML, PDF, images, audio)", type=accepted_suffixes(),
                             accept_multiple_files=True, key=f"mem_upload_{st.session_state.get('mem_upload_n', 0)}")
    if not files or not st.button(f"Add {len(files)} file(s) to '{collection}'", type="primary"):
        return
    folder = session_area().folder("memory")  # the collection keeps the text; the files go after ingest
    paths, labels = [], []
    for f in files:
        try:
            stored = store_upload(f.name, f.getvalue(), folder, max_mb=config.limits.max_upload_mb,
                                  max_pixels=config.limits.max_image_pixels)
        except MMAgentError as exc:
            st.error(public(str(exc)))
            continue
        paths.append(stored.path)
        labels.append(stored.name)
    if paths:
        try:
            summary = ingest_files(collection, paths, labels)
        except MMAgentError as exc:
            st.error(public(str(exc)))
            return
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        st.session_state["mem_last_summary"] = summary_text(summary)
        st.session_state["mem_upload_n"] = st.session_state.get("mem_upload_n", 0) + 1
        st.rerun()


def document_names(sources: list[str]) -> dict[str, str]:
    """Display name per stored source: its file name, numbered ("notes.md (2)") where names repeat."""
    names, seen = {}, Counter()
    for source in sources:
        name = Path(source).name
        seen[name] += 1
        names[source] = name if seen[name] == 1 else f"{name} ({seen[name]})"
    return names


def _documents(collection: str) -> None:
    from mmagent.memory import delete_collection, open_memory

    config = get_config()
    memory = open_memory(config.memory, collection)
    sources = memory.sources()
    st.subheader(f"Documents in '{collection}'")  # a checked collection name: no Markdown in it
    if not sources:
        st.caption("Empty: add files above.")
        return
    names = document_names(list(sources))  # where the server keeps a file is not shown
    st.dataframe([{"document": names[s], "chunks": n} for s, n in sources.items()], hide_index=True, width="stretch")
    chosen = st.multiselect("Documents to delete", list(sources), format_func=names.get)
    if chosen and st.button(f"Delete {len(chosen)} document(s)"):
        removed = sum(memory.delete(where={"source": s}) for s in chosen)
        st.session_state["mem_last_summary"] = f"Deleted {removed} chunk(s) of {len(chosen)} document(s)."
        st.rerun()
    with st.expander("Delete the whole collection"):
        if st.checkbox(f"Yes, delete '{collection}' and its {sum(sources.values())} chunk(s)") and st.button("Delete collection"):
            delete_collection(config.memory, collection)
            refresh_collections()
            st.session_state.pop("memory_collection", None)
            st.rerun()


def render() -> None:
    st.title("Memory")
    st.caption("Collections of documents the assistant can search (question answering and customer service).")
    collection = _choose_collection()
    if st.session_state.get("mem_last_summary"):
        st.info(public(st.session_state.pop("mem_last_summary")))
    if collection:
        _upload(collection)
        try:
            _documents(collection)
        except MMAgentError as exc:
            st.error(public(str(exc)))
