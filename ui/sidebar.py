"""The chat page's sidebar: conversations (new, reopen, delete, export), flow, adapter, collection, model.

The chosen flow, adapter and collection are stored on the conversation, so reopening it after a
restart brings its settings back with its messages.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import streamlit as st
from mmagent.ui.memory_page import known_collections
from mmagent.ui.plain import plain
from mmagent.ui.resources import adapter_names, backend_loaded, get_backend, get_flow, load_stats
from mmagent.ui.state import Conversation, ConversationStore
from mmagent.ui.turns import FLOW_LABELS

NO_ADAPTER = "none (base model)"
NO_COLLECTION = "none (no documents)"  # short enough for the sidebar's width: labels must not be cut
RECENT = 15  # conversations listed in the sidebar


def current_conversation(store: ConversationStore) -> Conversation:
    """The conversation this browser tab shows (the newest saved one on a fresh tab)."""
    conv = st.session_state.get("conversation")
    if conv is None:
        saved = store.list()
        conv = saved[0] if saved else Conversation()
        st.session_state["conversation"] = conv
    return conv


def conversation_labels(conversations: list[Conversation], now: float | None = None) -> dict[str, str]:
    """Sidebar label per conversation id: its first words and when it started ("14:05", "3 Dec 14:05"),
    with seconds added where two would otherwise read the same."""
    today = time.localtime(now if now is not None else time.time())[:3]

    def label(c: Conversation, fmt: str) -> str:
        started = time.localtime(c.created)
        day = "" if started[:3] == today else time.strftime("%d %b ", started).lstrip("0")
        return f"{c.title} · {day}{time.strftime(fmt, started)}"

    labels = {c.id: label(c, "%H:%M") for c in conversations}
    counts = Counter(labels.values())
    return {c.id: label(c, "%H:%M:%S") if counts[labels[c.id]] > 1 else labels[c.id] for c in conversations}


def _conversations(store: ConversationStore, conv: Conversation) -> Conversation:
    st.subheader("Conversations")
    if st.button("New conversation", icon=":material/add:", width="stretch"):
        conv = Conversation()  # the defaults, not the previous conversation's flow, adapter and collection
        st.session_state["conversation"] = conv
    saved = store.list()
    if conv.id not in {c.id for c in saved}:
        saved = [conv, *saved]
    labels = conversation_labels(saved[:RECENT])
    for c in saved[:RECENT]:
        if st.button(plain(labels[c.id]), key=f"open_{c.id}", disabled=c.id == conv.id, width="stretch"):
            st.session_state["conversation"] = store.load(c.id)
            st.rerun()
    cols = st.columns(3)
    # the files are made when clicked, not on every page run (each run before an answer is time the user waits)
    cols[0].download_button(".md", conv.to_markdown, file_name=f"conversation-{conv.id}.md",
                            mime="text/markdown", width="stretch")
    cols[1].download_button(".json", lambda: json.dumps(conv.to_dict(), ensure_ascii=False, indent=1),
                            file_name=f"conversation-{conv.id}.json", mime="application/json", width="stretch")
    if cols[2].button("Delete", width="stretch", disabled=not conv.messages):
        store.delete(conv.id)
        st.session_state["conversation"] = Conversation()
        st.rerun()
    return conv


def _settings(store: ConversationStore, conv: Conversation) -> None:
    st.subheader("Assistant")
    labels = list(FLOW_LABELS)
    names = list(FLOW_LABELS.values())
    label = st.selectbox("Flow", labels, index=names.index(conv.flow) if conv.flow in names else 0,
                         key=f"flow_{conv.id}")
    adapters = [NO_ADAPTER, *adapter_names()]
    current = conv.adapter if conv.adapter in adapters else NO_ADAPTER
    adapter = st.selectbox("Adapter", adapters, index=adapters.index(current), key=f"adapter_{conv.id}",
                           help="LoRA adapters from the `adapters:` section of mmagent.yaml; switching keeps the base model loaded.")
    collections = [NO_COLLECTION, *known_collections()]
    pending = st.session_state.pop("set_collection", None)
    if pending in collections:
        st.session_state[f"collection_{conv.id}"] = pending
    now = conv.collection if conv.collection in collections else NO_COLLECTION
    key = f"collection_{conv.id}"
    collection = st.selectbox("Memory collection", collections, key=key,
                              help="The documents the assistant searches before it answers (Memory page).",
                              **({} if key in st.session_state else {"index": collections.index(now)}), disabled=FLOW_LABELS[label] == "summarize")
    new = (FLOW_LABELS[label], None if adapter == NO_ADAPTER else adapter,
           None if collection == NO_COLLECTION else collection)
    if new != (conv.flow, conv.adapter, conv.collection):
        conv.flow, conv.adapter, conv.collection = new
        if conv.messages:
            store.save(conv)
    if backend_loaded():
        get_flow(conv.flow, conv.adapter)  # ready the chosen flow and adapter now (timed as a switch)


def _model_status() -> None:
    st.subheader("Model")
    stats = load_stats()
    if not backend_loaded():
        st.caption("Not loaded yet.")
        return
    info = get_backend().info()
    switch = (f" · last adapter switch {stats.last_switch_seconds * 1000:.1f} ms"
              if stats.last_switch_seconds is not None else "")
    st.caption(f"`{info.model_id}` · {info.precision} · {info.device} · adapters: {', '.join(info.adapters) or 'none'}")
    st.caption(f"Model loads: {stats.loads} (took {stats.load_seconds:.1f} s){switch}")


def render(store: ConversationStore) -> Conversation:
    """Draw the sidebar; returns the conversation to show, with its settings applied."""
    conv = current_conversation(store)
    with st.sidebar:
        conv = _conversations(store, conv)
        _settings(store, conv)
        _model_status()
    return conv
