"""The Chat page: conversation history, attachments, voice input, streamed answers with sources.

A turn: the chat input's text and files are checked and stored (attachments.py); audio is transcribed
into an editable draft instead of being sent; documents go into memory (or into the summary, for the
summarize flow); then the chosen flow runs and its tokens stream with ``st.write_stream``. Any error
becomes a readable message in the conversation; the user's message is saved first, so nothing typed
is lost and "Retry" can send it again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import streamlit as st
from mmagent.ui import sidebar
from mmagent.ui.attachments import Attachment, accepted_suffixes, session_area, store_upload
from mmagent.ui.plain import plain
from mmagent.ui.resources import (
    GenerationStopped,
    backend_loaded,
    get_backend,
    get_config,
    get_flow,
    public,
    stoppable,
    transcribe,
)
from mmagent.ui.state import ChatMessage, Conversation, ConversationStore, location
from mmagent.ui.turns import CALL, Generation, TurnInput, TurnRecorder, build_request

from mmagent.errors import MMAgentError
from mmagent.flows.base import SourceEvent

log = logging.getLogger("mmagent.ui")
THUMB = 240
EXCERPT = 400  # characters of a source's text shown under an answer
GENERATING = "_generating"  # session key of the turn being generated (a turns.Generation)
RUN_STARTED = "_run_started"  # session key: time.perf_counter() when this script run began (the log's preamble)
STOP_WAIT = 60  # s a rerun waits for a stopped answer to end (one token and the flow's cleanup)


# ---- drawing -------------------------------------------------------------------------------------
def render_message(m: ChatMessage) -> None:
    """One turn; every text in it is shown as plain text (see ui/plain.py), never as live Markdown."""
    with st.chat_message(m.role):
        if m.kind == "error":
            st.error(public(m.text))
        elif m.kind == "note":
            st.info(public(m.text))
        else:
            st.text(m.text)  # no Markdown, no HTML: untrusted (the model's output, a transcript)
        if m.stopped:
            st.caption(f"Stopped after {m.seconds or 0:.1f} s" + ("." if m.text else ", before any text."))
        for path in m.images:
            if Path(path).is_file():
                st.image(path, width=THUMB)
        if m.files:
            st.caption("Attached: " + plain(", ".join(m.files)))
        render_extras(m)


def render_extras(m: ChatMessage) -> None:
    """Tickets, tool calls and sources under an answer (a hand-off is the page's banner, shown once)."""
    if m.tickets:
        st.caption("Tickets: " + ", ".join(f"#{t}" for t in m.tickets))
    if m.tools:
        calls = sum(line.startswith(CALL) for line in m.tools)
        with st.expander(f"Tool calls ({calls})"):
            st.code("\n".join(m.tools), language=None, wrap_lines=True)
    if m.sources:
        with st.expander(f"Sources ({len(m.sources)})", expanded=True):
            for event in m.sources:
                _source(event)


def _source(event: SourceEvent) -> None:
    s = event.source
    image = (s.metadata or {}).get("kind") == "image" and Path(s.uri).is_file()
    cols = st.columns([1, 4]) if image else [None, st.container()]
    if cols[0] is not None:
        cols[0].image(s.uri, width=96)
    score = f" · score {s.score:.2f}" if s.score is not None else ""
    where = f" · {location(s)}" if location(s) else ""
    cited = "" if event.cited else " · retrieved, not cited"
    cols[1].markdown(f"**\\[{event.index}\\]** {plain(Path(s.uri).name + where + score + cited)}")
    if s.excerpt:
        cols[1].caption(plain(s.excerpt[:EXCERPT] + ("…" if len(s.excerpt) > EXCERPT else "")))


def _banner(conv: Conversation) -> None:
    """The hand-off (once, as information) or the tickets of a customer-service conversation."""
    tickets = ", ".join(f"#{t}" for t in conv.tickets)
    if conv.flow == "support" and conv.handed_off:
        reason = next(m.handoff for m in conv.messages if m.handoff)
        st.info(f"This conversation was handed off to a human agent ({plain(reason)}; tickets: {tickets or 'none'}). "
                "They will reply; the assistant only confirms the hand-off from now on.",
                icon=":material/support_agent:")
    elif conv.flow == "support" and conv.tickets:
        st.info(f"Tickets created in this conversation: {tickets}")


# ---- a turn --------------------------------------------------------------------------------------
def _store_files(conv: Conversation, store: ConversationStore, files: list) -> tuple[list[Attachment], list[str]]:
    config = get_config()
    kept, errors = [], []
    folder = session_area().folder(conv.id)  # removed with the browser session (attachments.UploadArea)
    for f in files:
        try:
            kept.append(store_upload(f.name, f.getvalue(), folder, max_mb=config.limits.max_upload_mb,
                                     max_pixels=config.limits.max_image_pixels))
        except MMAgentError as exc:
            errors.append(str(exc))
    return kept, errors


def _fail(conv: Conversation, store: ConversationStore, text: str) -> None:
    message = conv.add(ChatMessage("assistant", text, kind="error", flow=conv.flow, adapter=conv.adapter))
    store.save(conv)
    render_message(message)


def run_turn(conv: Conversation, store: ConversationStore, turn: TurnInput) -> None:
    """Run the conversation's flow on `turn` (already saved as a user message), streaming the answer."""
    generation = Generation()
    st.session_state[GENERATING] = generation  # a rerun started by Stop (or any click) finds it there
    try:
        _run_turn(conv, store, turn, generation)
    finally:
        generation.done.set()


def _run_turn(conv: Conversation, store: ConversationStore, turn: TurnInput, generation: Generation) -> None:
    with st.chat_message("assistant"):
        recorder = None
        try:
            flow = get_flow(conv.flow, conv.adapter)
            request = build_request(conv.flow, turn, session=conv.id, collection=conv.collection, adapter=conv.adapter)
            recorder = TurnRecorder(flow.run(request), conv.flow, conv.adapter)
            with stoppable(generation.stop):
                _stream(recorder)
        except GenerationStopped:  # the flow ended on Stop before this thread was told to stop
            _stopped(conv, store, recorder, generation)
            return
        except MMAgentError as exc:
            text = str(exc)
        except Exception as exc:  # a model failure must not take the page down
            log.exception("turn failed")
            text = f"The model failed ({type(exc).__name__}: {exc}). The app is still running: retry, or check the server log."
        except BaseException:  # Streamlit stops or reruns this script (Stop, another click, a closed tab)
            if recorder is not None:
                _stopped(conv, store, recorder, generation)
            raise
        else:
            first = recorder.first_token_s
            preamble = recorder.started - st.session_state.get(RUN_STARTED, recorder.started)
            log.info("mmagent ui: %s answer: first token %s after the flow started, %.2f s in all; the flow started "
                     "%.3f s into the page's run", conv.flow, "never" if first is None else f"{first:.3f} s",
                     recorder.message.seconds or 0.0, preamble)
            conv.add(recorder.message)
            store.save(conv)
            st.rerun()  # draw sources, banner, sidebar title and status from the saved conversation
        st.error(public(text))
    conv.add(ChatMessage("assistant", text, kind="error", flow=conv.flow, adapter=conv.adapter))
    store.save(conv)


def _end_previous_turn() -> None:
    """A rerun while an answer is still being written (Stop, or any other click): Streamlit starts this run
    in a new thread and stops the old one only at its next element update, so end the generation here and
    wait until the old run has saved what it wrote, then draw the conversation with it."""
    generation = st.session_state.get(GENERATING)
    if generation is None or generation.done.is_set():
        return
    generation.request_stop()
    with st.spinner("Stopping the answer…"):
        if not generation.done.wait(STOP_WAIT):
            log.warning("mmagent ui: the stopped answer did not end within %d s", STOP_WAIT)


def _stream(recorder: TurnRecorder) -> None:
    """Draw the answer as it is generated, above a "Generating…" line with the elapsed time and Stop.

    Clicking Stop starts a rerun, which ends the generation (_end_previous_turn); this run is stopped at
    its next element update or by the flow's GenerationStopped, and run_turn saves what was written."""
    body = st.empty()  # first, where the saved answer's text is drawn after the rerun: no stale copy
    bar = st.empty()
    status, stop = bar.container().columns([5, 1], vertical_alignment="center")
    stop.button("Stop", key="stop_generation", icon=":material/stop_circle:", help="Stop generating this answer")
    shown = ""
    try:
        with status, st.spinner("Generating…", show_time=True):
            for piece in recorder.tokens():
                shown += piece
                body.text(shown + " ▌")
    except Exception:
        bar.empty()  # a failed turn: its error is drawn below; no Stop button left behind
        raise
    bar.empty()
    body.text(shown)


def _stopped(conv: Conversation, store: ConversationStore, recorder: TurnRecorder, generation: Generation) -> None:
    """Stop pressed mid-answer: end the flow (and with it the model's thread), keep what was written."""
    generation.request_stop()
    recorder.close()  # returns once the flow's worker has ended, i.e. the model thread has been joined
    message = conv.add(recorder.stopped())
    store.save(conv)
    log.info("mmagent ui: answer stopped after %.2f s; generation ended %.2f s after Stop",
             message.seconds or 0.0, time.perf_counter() - (generation.stopped_at or 0.0))


def submit(conv: Conversation, store: ConversationStore, text: str, files: list) -> None:
    """Handle one chat-input submission (text plus attached files)."""
    attachments, errors = _store_files(conv, store, files)
    images = [a for a in attachments if a.kind == "image"]
    audio = [a for a in attachments if a.kind == "audio"]
    documents = [a for a in attachments if a.kind == "document"]
    if audio:  # transcribe into an editable draft; images wait with it
        try:
            spoken = " ".join(transcribe(a.path) for a in audio).strip()
        except MMAgentError as exc:
            errors.append(str(exc))
            spoken = ""
        st.session_state["draft"] = {"text": " ".join(p for p in (text.strip(), spoken) if p),
                                     "images": [a.path for a in images], "files": [a.name for a in audio]}
        text, images = "", []
    user = ChatMessage("user", text.strip(), images=[a.path for a in images], files=[a.name for a in documents],
                       flow=conv.flow, adapter=conv.adapter)
    if user.text or user.images or user.files:
        render_message(conv.add(user))
        store.save(conv)
    for error in errors:
        _fail(conv, store, error)
    if errors:
        return  # attach the file again or press Retry; the message is kept above
    if documents and conv.flow != "summarize":
        _add_to_memory(conv, store, documents)
        documents = []
    if user.text or user.images or documents:
        run_turn(conv, store, TurnInput(user.text, user.images, [a.path for a in documents]))
    if st.session_state.get("draft"):
        st.rerun()


def _add_to_memory(conv: Conversation, store: ConversationStore, documents: list[Attachment]) -> None:
    from mmagent.ui.memory_page import ingest_files, summary_text

    collection = conv.collection or get_config().memory.collection
    try:
        summary = ingest_files(collection, [a.path for a in documents], [a.name for a in documents])
    except MMAgentError as exc:
        _fail(conv, store, str(exc))
        return
    note = conv.add(ChatMessage("assistant", summary_text(summary), kind="note"))
    if conv.collection is None:  # ask about the new documents from now on
        conv.collection = collection
        st.session_state["set_collection"] = collection  # the sidebar applies it before drawing its widget
    store.save(conv)
    render_message(note)


def _draft() -> TurnInput | None:
    """The transcript of a voice message, editable before it is sent; returns the turn when "Send" is clicked."""
    draft = st.session_state.get("draft")
    if not draft:
        return None
    with st.container(border=True):
        st.caption("Transcript of " + plain(", ".join(draft["files"]) or "your recording") + " — edit it, then send.")
        text = st.text_area("Transcript", draft["text"], key="draft_text", label_visibility="collapsed")
        left, right = st.columns(2)
        send = left.button("Send transcript", type="primary", width="stretch")
        discard = right.button("Discard", width="stretch")
    if send or discard:
        st.session_state.pop("draft")
        st.session_state.pop("draft_text", None)
    if discard:
        st.rerun()
    return TurnInput(text.strip(), list(draft["images"])) if send else None


def _voice() -> object | None:
    """A microphone recording (st.audio_input), when one was just made."""
    with st.popover("Record a question", icon=":material/mic:"):
        recording = st.audio_input("Record (your browser asks for the microphone)",
                                   key=f"mic_{st.session_state.get('mic_n', 0)}")
    if recording is not None:
        st.session_state["mic_n"] = st.session_state.get("mic_n", 0) + 1
        recording.name = "recording.wav"
    return recording


def _retry(conv: Conversation) -> TurnInput | None:
    """After an error: a button that sends the last user message again."""
    last = conv.messages[-1] if conv.messages else None
    users = [m for m in conv.messages if m.role == "user"]
    if last is not None and last.kind == "error" and users and st.button("Retry the last message", icon=":material/refresh:"):
        return TurnInput(users[-1].text, list(users[-1].images))
    return None


def _send(conv: Conversation, store: ConversationStore, turn: TurnInput) -> None:
    """Send an edited transcript: save it as the user's message, then answer it."""
    user = conv.add(ChatMessage("user", turn.text, images=turn.images, flow=conv.flow, adapter=conv.adapter))
    store.save(conv)
    render_message(user)
    run_turn(conv, store, turn)


def render() -> None:
    st.session_state[RUN_STARTED] = time.perf_counter()
    _end_previous_turn()
    config = get_config()
    store = ConversationStore.for_config(config)
    conv = sidebar.render(store)
    st.title("Chat")
    _banner(conv)
    area = st.container()  # the conversation; new turns are drawn here, above the controls
    with area:
        for m in conv.messages:
            render_message(m)
    retry, draft, recording = _retry(conv), _draft(), _voice()
    prompt = st.chat_input("Ask a question, or attach images, audio or documents", accept_file="multiple",
                           file_type=accepted_suffixes(), key="chat_input")
    if not backend_loaded():
        try:
            get_backend()
        except MMAgentError as exc:  # a wrong model.id or a broken download: say so, keep the page up
            st.error(f"The model could not be loaded: {plain(str(exc))}")
            return
        if not (prompt or recording):
            st.rerun()  # redraw the sidebar with the model's details
    with area:
        if retry is not None:
            run_turn(conv, store, retry)
        elif draft is not None:
            _send(conv, store, draft)
        elif recording is not None:
            submit(conv, store, "", [recording])
        elif prompt:
            submit(conv, store, prompt.text or "", list(prompt.files or []))
