"""A bounded localhost soak of a real `mmagent serve` process: mixed requests (chat, chat with an image,
embeddings, the qa, support, summarize and classify flows) from concurrent clients, then the server's open
file descriptors, threads, resident memory and per-request temporary folders compared before and after.

"Before" is taken after a warm-up round at the same concurrency, so lazily loaded parts (embedder, OCR,
flows, the server's thread pool) are already resident and what remains is growth per request.

    python benchmarks/soak_bench.py                          # 200 requests, 8 clients, embedded:smollm2-135m
    python benchmarks/soak_bench.py --quick --json soak.json  # 48 requests

Bounds (checked, and reported as targets): no failed request; open descriptors and threads back to
their warmed-up counts (at most +2 for timing); RSS growth at most --rss-bound-mb (default 150 MB).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("chat", "chat_image", "embeddings", "qa", "support", "summarize", "classify")
SLACK = 2  # descriptors/threads that may be mid-close when the snapshot is taken


@dataclass
class Snapshot:
    """What the server process holds: open descriptors, threads, resident memory, leftover temp folders."""

    fds: int
    threads: int
    rss_mb: float
    temp_folders: int


def snapshot(pid: int, tmpdir: Path) -> Snapshot:
    status = Path(f"/proc/{pid}/status").read_text()
    field = {line.split(":")[0]: line.split(":", 1)[1].strip() for line in status.splitlines()}
    return Snapshot(fds=len(os.listdir(f"/proc/{pid}/fd")), threads=int(field["Threads"]),
                    rss_mb=round(int(field["VmRSS"].split()[0]) / 1024, 1),
                    temp_folders=sum(1 for p in tmpdir.iterdir() if p.name.startswith("mmagent-")))


def settle(pid: int, tmpdir: Path, seconds: float = 3.0) -> Snapshot:
    """A snapshot once the counts stop moving (closing sockets and finishing threads take a moment)."""
    last = snapshot(pid, tmpdir)
    deadline = time.monotonic() + seconds * 4
    while time.monotonic() < deadline:
        time.sleep(seconds / 3)
        now = snapshot(pid, tmpdir)
        if (now.fds, now.threads) == (last.fds, last.threads):
            return now
        last = now
    return last


def image_url() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 80), "white")
    ImageDraw.Draw(image).text((10, 30), "Order 1001", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def request_for(i: int, picture: str, served: str) -> tuple[str, str, dict]:
    """The i-th request of the mix: (kind, path, JSON body). `served`: the model name GET /v1/models lists."""
    kind = KINDS[i % len(KINDS)]
    chat = {"model": served, "max_tokens": 8, "temperature": 0}
    if kind == "chat":
        return kind, "/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": f"Say hello ({i})."}]}
    if kind == "chat_image":
        content = [{"type": "image_url", "image_url": {"url": picture}}, {"type": "text", "text": "What is written?"}]
        return kind, "/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": content}]}
    if kind == "embeddings":
        return kind, "/v1/embeddings", {"input": [f"returns within 30 days ({i})", "a teapot"]}  # the memory embedder
    if kind == "qa":
        return kind, "/v1/flows/qa", {"question": f"What is a teapot? ({i})", "max_new_tokens": 8}
    if kind == "support":
        return kind, "/v1/flows/support", {"message": "Hi, I'm ana@example.com" if i % 2 else "What is your return window?",
                                           "session": f"s{i % 5}", "max_new_tokens": 8}
    if kind == "summarize":
        return kind, "/v1/flows/summarize", {"text": "Dana sends the catalogue on Friday. Sam fixes the checkout bug.",
                                             "words": 10}
    return kind, "/v1/flows/classify", {"labels": ["refund", "question"], "text": f"I want my money back ({i})"}


def send(client, base: str, item: tuple[str, str, dict]) -> tuple[str, float, str]:
    """One request; returns (kind, seconds, error or "")."""
    kind, path, body = item
    start = time.perf_counter()
    print(f"soak: {kind} started", file=sys.stderr, flush=True)
    try:
        response = client.post(base + path, json=body, timeout=600)
        error = "" if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"
        if not error and path.startswith("/v1/flows/"):
            events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
            if events[-1:] != ["[DONE]"] or '"error"' in "".join(events[-2:-1]):
                error = f"flow stream ended badly: {events[-2:]}"
    except Exception as exc:  # a dropped connection is a soak failure, reported with the rest
        error = f"{type(exc).__name__}: {exc}"
    return kind, time.perf_counter() - start, error


def start_server(model: str, folder: Path, tmpdir: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    from mmagent.serve.runner import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}
    env.update({"MMAGENT_PATHS_DATA": str(folder / "data"), "MMAGENT_MEMORY_PATH": str(folder / "memory"),
                "TMPDIR": str(tmpdir), "HF_HUB_OFFLINE": "1"})
    log = (folder / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", "import sys; from mmagent.cli import main; sys.exit(main())", "serve", "--model", model, "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mmagent serve exited ({process.returncode}); see {folder / 'server.log'}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("mmagent serve did not answer /health within 300 s")
        time.sleep(0.5)


def soak(model: str, requests: int, clients: int, folder: Path, rss_bound_mb: float) -> dict:
    """Run the soak against a fresh server under `folder`; returns the figures and the bound checks."""
    import httpx

    tmpdir = folder / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    process, base = start_server(model, folder, tmpdir)
    picture = image_url()
    try:
        with httpx.Client() as client, ThreadPoolExecutor(clients) as pool:
            served = next(m["id"] for m in client.get(base + "/v1/models").json()["data"] if not m.get("parent"))
            warm = list(pool.map(lambda i: send(client, base, request_for(i, picture, served)), range(clients + len(KINDS))))
            before = settle(process.pid, tmpdir)
            start = time.perf_counter()
            results = list(pool.map(lambda i: send(client, base, request_for(i, picture, served)), range(requests)))
            wall = time.perf_counter() - start
        after = settle(process.pid, tmpdir)
        alive = process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    errors = [f"{kind}: {err}" for kind, _, err in warm + results if err]
    per_kind = {k: sorted(s for kind, s, _ in results if kind == k) for k in KINDS}
    rows = [{"kind": k, "requests": len(v), "median_s": round(v[len(v) // 2], 2) if v else None,
             "max_s": round(v[-1], 2) if v else None} for k, v in per_kind.items()]
    growth = round(after.rss_mb - before.rss_mb, 1)
    targets = {"errors": {"value": len(errors), "target": 0, "met": not errors and alive},
               "fd_growth": {"value": after.fds - before.fds, "target": SLACK, "met": after.fds - before.fds <= SLACK},
               "thread_growth": {"value": after.threads - before.threads, "target": SLACK,
                                 "met": after.threads - before.threads <= SLACK},
               "rss_growth_mb": {"value": growth, "target": rss_bound_mb, "met": growth <= rss_bound_mb},
               "temp_folders_left": {"value": after.temp_folders, "target": 0, "met": after.temp_folders == 0}}
    return {"model": model, "requests": requests, "clients": clients, "seconds": round(wall, 1),
            "before": asdict(before), "after": asdict(after), "rows": rows, "errors": errors[:20], "targets": targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rss-bound-mb", type=float, default=150.0)
    parser.add_argument("--quick", action="store_true", help="48 requests")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    requests = 48 if args.quick else args.requests
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped soak still stops its server (finally:)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        figures = soak(args.model, requests, args.clients, Path(tmp), args.rss_bound_mb)
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    report = {"benchmark": "soak", "machine": f"{platform.machine()} {os.cpu_count()} cpu",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "load_before": load_before, "load_after": load_after, "ratios": {}, **figures}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    b, a = figures["before"], figures["after"]
    print(f"## Soak: mmagent serve, {requests} mixed requests, {args.clients} clients\n")
    print(f"{figures['model']}, commit {commit}, {report['date']}, load {load_before[0]:.1f} → {load_after[0]:.1f}; "
          f"{figures['seconds']} s\n")
    print("| | open fds | threads | RSS MB | temp folders |\n|---|---:|---:|---:|---:|")
    print(f"| after warm-up | {b['fds']} | {b['threads']} | {b['rss_mb']} | {b['temp_folders']} |")
    print(f"| after soak | {a['fds']} | {a['threads']} | {a['rss_mb']} | {a['temp_folders']} |\n")
    print("| request | n | median s | max s |\n|---|---:|---:|---:|")
    for row in figures["rows"]:
        print(f"| {row['kind']} | {row['requests']} | {row['median_s']} | {row['max_s']} |")
    print("\nTargets: " + "; ".join(f"{k} {v['value']} (bound {v['target']}, {'met' if v['met'] else 'MISSED'})"
                                    for k, v in figures["targets"].items()))
    for error in figures["errors"]:
        print(f"- error: {error}")
    return 0 if all(t["met"] for t in figures["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
