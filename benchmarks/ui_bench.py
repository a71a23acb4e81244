"""UI: time to first token seen in the browser against the backend's own time to first token for the
same question, interleaved (target: browser ≤ 1.2× backend).

`mmagent ui` runs in its own process; headless Chromium (Playwright, Debian's /usr/bin/chromium) types a
question and presses Enter; a MutationObserver in the page stamps the moment the first answer text (the
streaming cursor ▌) appears, on the page's own clock from the Enter key. Between browser turns, this
process runs the same qa flow on the same model and question and stamps (a) the first token out of
`backend.generate` (the backend's own first token, measured from that call) and (b) the first token event
out of the flow (from `flow.run`). The UI process logs the same turn's first token out of the flow
(`mmagent ui: ... first token X s after the flow started`): the model's first token as it happened in that
process, beside the browser drawing on the same 2 cores. The target ratio is browser ÷ that same-turn figure
(what the UI adds on top of the model's first token in that process); browser ÷ the separate process's
backend is reported too (it also counts the browser's rendering slowing the model down, which a browser
on another machine does not). Each browser turn starts 1 s after the previous answer settled, as a person
typing would: a question sent within ~0.3 s of the previous answer waits for the page's redraw after it.

    python benchmarks/ui_bench.py --quick --json benchmarks/out/ui.json   # embedded:smollm2-135m, 2 rounds
    python benchmarks/ui_bench.py                                          # the default model, 6 rounds
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import contract

CHROMIUM = "/usr/bin/chromium"
QUESTIONS = ["Name one colour of the sky.", "What is a teapot for?", "Say hello to a new customer.",
             "What is two plus two?", "Name a fruit that is yellow.", "What do bees make?",
             "Name a large animal.", "What is rain made of?"]
FIRST_TEXT_JS = """() => {
  window.__t = {enter: null, first: null};
  const box = document.querySelector('[data-testid="stChatInput"] textarea');
  box.addEventListener('keydown', e => { if (e.key === 'Enter' && window.__t.enter === null) window.__t.enter = performance.now(); }, true);
  const before = document.querySelectorAll('[data-testid="stChatMessage"]').length;
  const seen = () => {
    const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
    for (let i = before; i < msgs.length; i++) {
      if (msgs[i].textContent.includes('\u258c') && window.__t.first === null) window.__t.first = performance.now();
    }
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(model: str, tokens: int, folder: Path) -> tuple[subprocess.Popen, str]:
    """`mmagent ui` on a free localhost port with `model`; returns once its health check answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}
    env.update(MMAGENT_PATHS_DATA=str(folder / "data"), MMAGENT_MEMORY_PATH=str(folder / "memory"),
               MMAGENT_MODEL_MAX_NEW_TOKENS=str(tokens), MMAGENT_MODEL_ID=model, HF_HUB_OFFLINE="1")
    log = (folder / "ui.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mmagent")), "ui", "--port", str(port)],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`mmagent ui` exited with {proc.returncode}: {(folder / 'ui.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"`mmagent ui` did not answer at {url} within 120 s")


def stop_ui(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


SETTLE_S = 1.0  # pause before each question: see the module docstring
SAME_TURN = "browser / same turn's first token in the UI process"  # the target's ratio
UI_FIRST = re.compile(r"mmagent ui: \w+ answer: first token ([0-9.]+) s after the flow started")
UI_PREAMBLE = re.compile(r"the flow started ([0-9.]+) s into the page's run")


def browser_turn(page, question: str, folder: Path, answers: int, timeout_s: float) -> float:
    """Seconds from Enter to the first answer text drawn in the page (the page's own clock); returns once
    the answer (the conversation's `answers`-th) is saved and drawn, so the next turn cannot stop it."""
    time.sleep(SETTLE_S)
    page.evaluate(FIRST_TEXT_JS)
    box = page.locator('[data-testid="stChatInput"] textarea')
    box.fill(question)
    box.press("Enter")
    page.wait_for_function("() => window.__t.first !== null", timeout=timeout_s * 1000)
    stamps = page.evaluate("() => window.__t")
    deadline = time.monotonic() + timeout_s
    while _saved_answers(folder) < answers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"answer {answers} to {question!r} was not saved within {timeout_s} s")
        time.sleep(0.3)
    page.wait_for_function("() => !document.body.innerText.includes('\u258c')", timeout=timeout_s * 1000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout_s * 1000)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=timeout_s * 1000)
    return (stamps["first"] - stamps["enter"]) / 1000


def ui_first_tokens(folder: Path) -> list[float]:
    """The UI process's own first-token seconds, one per answered turn, in order (from its log)."""
    return [float(m.group(1)) for m in UI_FIRST.finditer((folder / "ui.log").read_text(errors="replace"))]


def ui_preambles(folder: Path) -> list[float]:
    """Seconds from the start of each answered turn's script run to its flow's start (the page's own work:
    sidebar, history, the user's message), in order, from the UI's log."""
    return [float(m.group(1)) for m in UI_PREAMBLE.finditer((folder / "ui.log").read_text(errors="replace"))]


def _saved_answers(folder: Path) -> int:
    """Assistant answers in the UI's saved conversation (written once an answer has ended)."""
    files = list((folder / "data" / "ui" / "conversations").glob("*.json"))
    if not files:
        return 0
    try:
        messages = json.loads(files[0].read_text())["messages"]
    except (json.JSONDecodeError, KeyError):  # caught mid-write
        return 0
    return sum(m["role"] == "assistant" for m in messages)


class FirstToken:
    """The backend, stamping when its `generate` was called and when its first piece came out."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.called = self.first = None

    def generate(self, messages, **kwargs):
        self.called, self.first = time.perf_counter(), None
        for piece in self._backend.generate(messages, **kwargs):
            if self.first is None:
                self.first = time.perf_counter()
            yield piece

    def __getattr__(self, name):
        return getattr(self._backend, name)


def in_process(model: str, tokens: int, folder: Path):
    """A function running the qa flow on `question` in this process: (backend first token s, flow first token s)."""
    from mmagent.config import load_config
    from mmagent.flows.base import TokenEvent, get_flow
    from mmagent.flows.qa import QARequest
    from mmagent.model import load_backend

    config = load_config(overrides={"model.id": model, "model.max_new_tokens": tokens,
                                    "memory.path": str(folder / "memory-bench"), "paths.data": str(folder / "data-bench")},
                         env={})
    backend = FirstToken(load_backend(config))
    flow = get_flow("qa", config, backend)

    def run(question: str) -> tuple[float, float]:
        started, flow_first = time.perf_counter(), None
        for event in flow.run(QARequest(question=question)):
            if flow_first is None and isinstance(event, TokenEvent):
                flow_first = time.perf_counter()
        return backend.first - backend.called, flow_first - started

    return run


def measure(model: str, tokens: int, rounds: int, timeout_s: float) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        folder = Path(tmp)
        proc, url = start_ui(model, tokens, folder)
        try:
            baseline = in_process(model, tokens, folder)
            baseline("Warm up.")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                page.locator('[data-testid="stChatInput"]').wait_for(timeout=timeout_s * 1000)
                browser_turn(page, "Warm up.", folder, 1, timeout_s)  # loads the model in the UI process
                for i in range(rounds):
                    question = QUESTIONS[i % len(QUESTIONS)]
                    order = ("browser", "backend") if i % 2 == 0 else ("backend", "browser")
                    row = {"round": i + 1, "question": question}
                    for what in order:
                        if what == "browser":
                            row["browser_s"] = round(browser_turn(page, question, folder, i + 2, timeout_s), 3)
                            row["ui_flow_s"] = ui_first_tokens(folder)[i + 1]  # [0]: the warm-up turn
                            row["ui_preamble_s"] = ui_preambles(folder)[i + 1]
                        else:
                            backend_s, flow_s = baseline(question)
                            row["backend_s"], row["flow_s"] = round(backend_s, 3), round(flow_s, 3)
                    rows.append(row)
                browser.close()
        finally:
            stop_ui(proc)
    return rows


def main() -> int:
    parser = contract.arguments(__doc__, "embedded:smollm2-135m, 2 rounds of 4-token answers")
    parser.add_argument("--model", default="default", help="model.id for the UI and the in-process baseline")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=8, help="max new tokens per answer (only the first is timed)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run_all's timeout: stop the UI server (finally)
    if args.quick:
        args.model, args.rounds, args.tokens = "embedded:smollm2-135m", 2, 4
    report = contract.Report("ui", quick=args.quick)
    if not Path(CHROMIUM).is_file():
        report.target("UI", None, "≤ 1.2× backend first token", None, reason=f"not run: no {CHROMIUM}")
        report.write(args.json)
        print(f"Not run: no {CHROMIUM} (apt-get install chromium).")
        return 0
    report.rows = measure(args.model, args.tokens, args.rounds, timeout_s=180)
    browser, backend, flow = (contract.median([r[k] for r in report.rows]) for k in ("browser_s", "backend_s", "flow_s"))
    same_turn = contract.median([r["browser_s"] / r["ui_flow_s"] for r in report.rows])
    ui_flow = contract.median([r["ui_flow_s"] for r in report.rows])
    report.ratios = {SAME_TURN: round(same_turn, 3),
                     "browser / backend": round(browser / backend, 3), "browser / flow": round(browser / flow, 3),
                     "flow / backend": round(flow / backend, 3), "UI process flow / this process's flow": round(ui_flow / flow, 3)}
    report.target("UI", round(browser, 3), "≤ 1.2× backend first token", same_turn <= 1.2, unit="s",
                  baseline=f"the same turn's first token out of the flow in the UI process {ui_flow:.3f} s (median); "
                           f"in a separate process: backend.generate {backend:.3f} s, qa flow {flow:.3f} s "
                           f"(browser ÷ backend {browser / backend:.2f}×)",
                  ratio=round(same_turn, 3))
    report.notes.update(model=args.model, rounds=args.rounds, max_new_tokens=args.tokens)
    report.write(args.json)
    print(markdown(report, browser, ui_flow, backend, flow))
    return 0


def markdown(report: contract.Report, browser: float, ui_flow: float, backend: float, flow: float) -> str:
    n = report.notes
    return "\n".join([
        f"model {n['model']}, {n['rounds']} questions (qa flow, no collection), each asked in the browser and in "
        f"this process, order alternating; load average {'/'.join(map(str, report.load_before))} before.",
        "",
        contract.table(report.rows, [("round", "round"), ("question", "question"), ("browser_s", "browser s"),
                                     ("ui_flow_s", "UI process flow s"), ("ui_preamble_s", "page run before the flow s"),
                                     ("flow_s", "flow s"), ("backend_s", "backend s")]),
        "",
        f"Medians: browser {browser:.3f} s, UI process flow {ui_flow:.3f} s, "
        f"flow {flow:.3f} s, backend {backend:.3f} s; browser ÷ the same turn's UI-process first token "
        f"{report.ratios[SAME_TURN]:.2f}× (median per turn; target ≤ 1.2×), "
        f"browser ÷ backend {browser / backend:.2f}×, flow ÷ backend {flow / backend:.2f}×.",
        "",
        "Reading: browser − UI process flow is what the UI adds (Streamlit's rerun on submit, the websocket, "
        "drawing), of which 'page run before the flow' is the page's own script work (sidebar, history, saving the "
        "question) before the flow starts; UI process flow − flow is the model's first token slowed by the browser and Streamlit sharing "
        "the 2 cores; flow − backend is the qa flow's own work before the model's first token (prompt, graph).",
    ])


if __name__ == "__main__":
    sys.exit(main())
