"""End to end in a real browser: `mmagent ui` on a localhost port with the embedded default model and a
random LoRA adapter, driven by headless Chromium through Playwright (Debian's chromium; no download).

Uploads the shipped cat photo, asks about it, waits for the streamed answer, switches the adapter, asks
again, and checks that the base model loaded exactly once. Screenshots go to tmp_path, and also to
$MMAGENT_UI_SCREENSHOTS when set (that is how docs/ui-chat.png is made). Timings are printed (-s).
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

pytestmark = pytest.mark.default_model
ANSWER_TIMEOUT = 150  # s per answer on 2 busy CPU cores


@pytest.fixture(scope="module")
def random_adapter(default_model_dir, tmp_path_factory) -> Path:
    """A random-weights LoRA on the default model's language tower (changes answers, proves switching)."""
    from helpers.tiny import build_lora_adapter

    from mmagent.model.default_vlm import vision  # noqa: F401  registers the embedded vision tower

    return build_lora_adapter(default_model_dir, tmp_path_factory.mktemp("adapter") / "random", seed=3)


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
               MMAGENT_PATHS_CACHE=str(cache_dir), MMAGENT_MODEL_MAX_NEW_TOKENS="16", HF_HUB_OFFLINE="1")
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


def ask(page, text: str, attach: Path | None = None) -> None:
    chat = page.locator('[data-testid="stChatInput"]')
    if attach is not None:
        chat.locator('input[type="file"]').set_input_files(str(attach))
        page.get_by_text(attach.name).first.wait_for(timeout=20_000)  # the attachment chip
    chat.locator("textarea").fill(text)
    chat.locator("textarea").press("Enter")


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MMAGENT_UI_SCREENSHOTS"):
        target = Path(os.environ["MMAGENT_UI_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_chat_in_a_real_browser(server, tmp_path, cat_photo):
    chromium = require_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
    url, log, started = server
    timings: dict[str, float] = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.locator('[data-testid="stChatInput"]').wait_for(timeout=60_000)
        timings["cold start to first render"] = time.perf_counter() - started
        loaded = page.get_by_text(re.compile(r"Model loads: 1 \(took [\d.]+ s\)"))
        loaded.wait_for(timeout=120_000)
        timings["model load"] = float(re.search(r"took ([\d.]+) s", loaded.inner_text()).group(1))

        t = time.perf_counter()
        ask(page, "What animal is in this photo?", attach=cat_photo)
        conv = wait_answers(tmp_path, 1)
        timings["first answer"] = time.perf_counter() - t
        first = conv["messages"][-1]
        assert first["kind"] == "text" and first["text"] and first["adapter"] is None
        assert conv["messages"][0]["images"], "the photo was not attached to the question"
        page.get_by_text(first["text"][:20]).first.wait_for(timeout=20_000)  # streamed into the page
        assert page.locator('[data-testid="stChatMessage"] img').count() >= 1  # the photo, inline
        shot(page, tmp_path, "ui-chat.png")  # docs/ui-chat.png: the base model's answer about the photo

        page.locator('[data-testid="stSelectbox"]').filter(has_text="Adapter").click()
        page.get_by_role("option", name="random").click()
        t = time.perf_counter()
        ask(page, "What animal is in this photo?", attach=cat_photo)
        conv = wait_answers(tmp_path, 2)
        timings["answer after adapter switch"] = time.perf_counter() - t
        second = conv["messages"][-1]
        assert second["kind"] == "text" and second["adapter"] == "random"
        switch = page.get_by_text(re.compile(r"last adapter switch [\d.]+ ms"))
        switch.wait_for(timeout=30_000)
        timings["adapter switch"] = float(re.search(r"switch ([\d.]+) ms", switch.inner_text()).group(1)) / 1000
        assert page.get_by_text(re.compile(r"Model loads: 1 ")).count() == 1
        shot(page, tmp_path, "ui-adapter-switch.png")
        browser.close()
    server_log = log.read_text()
    assert len(re.findall(r"model loaded in", server_log)) == 1, server_log  # the base never reloaded
    assert "adapter switch to random" in server_log
    assert timings["adapter switch"] < timings["model load"] / 10
    timings["e2e total"] = time.perf_counter() - started
    print("\nUI timings (s): " + ", ".join(f"{k} {v:.4g}" for k, v in timings.items()))
