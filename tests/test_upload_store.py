"""Uploads live in a per-session temporary area that goes away (session end, idle expiry, process exit, and
after a kill -9 the next process's sweep), and no surface reads a server path a client names: the HTTP
server takes images as data URLs only and has no path fields, whatever a request tries."""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_config

from mmagent.ui.attachments import PREFIX, UploadArea, UploadError, expire_idle, store_upload, sweep_stale

CHILD = """
import sys, time
from mmagent.ui.attachments import UploadArea, store_upload
area = UploadArea(sys.argv[1])
store_upload("notes.md", b"hello", area.folder("abc123"), max_mb=1, max_pixels=10)
print(area.path, flush=True)
if sys.argv[2] == "wait":
    time.sleep(600)
"""


def child(root: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode], stdout=subprocess.PIPE, text=True)


def test_an_area_holds_uploads_until_closed(tmp_path, cat_photo):
    area = UploadArea(tmp_path)
    stored = store_upload("../../cat.JPG", cat_photo.read_bytes(), area.folder("0123456789ab"), max_mb=5,
                          max_pixels=10**8)
    assert Path(stored.path).is_relative_to(area.path) and area.path.name.startswith(f"{PREFIX}{os.getpid()}-")
    assert Path(stored.path).read_bytes() == cat_photo.read_bytes()
    area.close()
    assert not area.path.exists() and area.closed
    with pytest.raises(UploadError, match="session ended"):
        area.folder("0123456789ab")


@pytest.mark.parametrize("name", ["../x", "/etc", "a/b", "", ".", "x" * 65])
def test_sub_folders_are_names_the_app_makes(tmp_path, name):
    with pytest.raises(UploadError, match="not one this app makes"):
        UploadArea(tmp_path).folder(name)


def test_a_dropped_session_state_removes_its_area(tmp_path):
    """Streamlit drops a session's state after the tab is gone: the area's finalizer removes the folder."""
    state = {"area": UploadArea(tmp_path)}
    path = state["area"].path
    store_upload("a.txt", b"x", state["area"].folder("memory"), max_mb=1, max_pixels=10)
    del state
    gc.collect()
    assert not path.exists()


def test_an_idle_area_expires(tmp_path):
    idle, busy = UploadArea(tmp_path), UploadArea(tmp_path)
    idle.used -= 3600
    assert expire_idle(max_idle=1800) >= 1
    assert idle.closed and not idle.path.exists() and busy.path.is_dir()
    busy.close()


def test_the_area_goes_at_process_exit(tmp_path):
    process = child(tmp_path, "exit")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out.strip()
    assert not Path(out.strip()).exists()
    assert not list(tmp_path.iterdir())


def test_a_killed_process_area_is_swept_by_the_next(tmp_path):
    process = child(tmp_path, "wait")
    path = Path(process.stdout.readline().strip())
    mine = UploadArea(tmp_path)  # a live process's area is never swept
    assert (path / "abc123" / "notes.md").parent.parent.exists() or path.is_dir()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert path.is_dir()  # kill -9: no exit handler ran
    assert sweep_stale(tmp_path) == [path]
    assert not path.exists() and mine.path.is_dir()
    mine.close()


def test_the_ui_keeps_no_upload_under_the_data_folder():
    """The chat and memory pages store uploads through the session area only (no lasting upload folder)."""
    ui = Path(__file__).resolve().parents[1] / "ui"
    for page in ("chat.py", "memory_page.py"):
        text = (ui / page).read_text(encoding="utf-8")
        assert "session_area().folder(" in text and "paths.data" not in text.split("def _upload", 1)[-1], page


# ---- the HTTP server reads no path a client names --------------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_llava_dir, tmp_path_factory):
    from mmagent.model.backend import HFVisionBackend
    from mmagent.serve.app import create_app
    from mmagent.serve.limits import ServeSettings
    from mmagent.serve.runner import BackgroundServer

    config = tiny_config(tiny_llava_dir, **{"paths.data": str(tmp_path_factory.mktemp("paths-data")),
                                            "memory.path": str(tmp_path_factory.mktemp("paths-mem"))})
    with BackgroundServer(create_app(config, ServeSettings(served_name="tiny"), backend=HFVisionBackend(config))) as s:
        yield s


SECRET = "/etc/hostname"


def _chat(url: str) -> dict:
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "hi"}]
    return {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", _chat(SECRET)),
    ("/v1/chat/completions", _chat("file://" + SECRET)),
    ("/v1/chat/completions", _chat("data:image/png;base64," + base64.b64encode(SECRET.encode()).decode())),
    ("/v1/flows/summarize", {"paths": [SECRET]}),
    ("/v1/flows/summarize", {"text": "x", "prompts": SECRET}),
    ("/v1/flows/qa", {"question": "x", "images": [SECRET]}),
    ("/v1/flows/qa", {"question": "x", "audio": [SECRET]}),
    ("/v1/flows/support", {"message": "x", "session": "s", "policy": SECRET}),
    ("/v1/flows/classify", {"labels": ["a", "b"], "image": "file://" + SECRET}),
])
def test_a_server_path_named_by_a_client_is_refused(server, path, body):
    import httpx

    response = httpx.post(server.url + path, json=body, timeout=60)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert Path(SECRET).read_text().strip() not in response.text if Path(SECRET).is_file() else True


def test_a_collection_name_that_climbs_is_refused_before_any_search(server):
    """A collection is a name checked against Chroma's rules, never a folder: the search is refused."""
    import httpx

    text = httpx.post(server.url + "/v1/flows/qa", json={"question": "x", "collection": "../../etc"}, timeout=60).text
    results = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    search = [e for e in results if e.get("type") == "tool_result" and e.get("name") == "memory_search"]
    assert search and not search[0]["ok"] and "collection name" in search[0]["error"], text[:500]


def test_an_inline_image_is_written_to_a_per_request_folder_that_is_removed(server, tmp_path, monkeypatch):
    """The qa flow gets a data-URL image as a file in a fresh temporary folder, removed when the run ends."""
    import shutil
    import tempfile

    import httpx
    from PIL import Image

    from mmagent.serve import flows_api

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the server runs in this process
    removed: list[tuple[Path, list[str]]] = []
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):  # record what the run held, then remove it for real
        removed.append((Path(path), sorted(p.name for p in Path(path).iterdir())))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(flows_api.shutil, "rmtree", rmtree)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = httpx.post(server.url + "/v1/flows/qa", json={"question": "what colour?", "images": [url],
                                                             "max_new_tokens": 2}, timeout=120)
    assert response.status_code == 200 and response.text.rstrip().endswith("[DONE]")
    deadline = time.monotonic() + 10
    while not removed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(p.parent, p.name.startswith("mmagent-serve-"), files) for p, files in removed] == \
        [(tmp_path, True, ["image-0.png"])]
    assert not list(tmp_path.iterdir())
