"""README.md is a contract: every fenced ```bash and ```python block runs here as a user would run it
(issue 17), on the embedded default model, in a temporary folder holding the files the examples name
(photo.jpg, documents, recordings made with espeak-ng, ...).

A README example that cannot run here says so in the README itself, in an HTML comment right above its
block, with the reason (shown as the skip reason)::

    <!-- readme-test: skip (needs internet) -->                     the whole block
    <!-- readme-test: skip "mmagent ui" (runs until stopped) -->     lines matching the pattern (fnmatch)
    <!-- readme-test: slow "mmagent eval --suite *" (minutes) -->    lines run only by `pytest -m slow`

Each block is one test id; a block with slow lines gets a second id, marked slow, that runs all its
lines in order. Every line of a shell block runs on its own (so a failure names the line) and must exit
0 without a traceback. ```yaml blocks are copied verbatim as mmagent.yaml and must pass
`mmagent doctor --offline`. Answers are kept short with MMAGENT_MODEL_MAX_NEW_TOKENS.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, require_binary

README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r'^<!--\s*readme-test:\s*(skip|slow)\s*(?:"([^"]+)")?\s*\((.*)\)\s*-->\s*$')
MAX_NEW_TOKENS = "8"
# Verbs whose README examples cannot run in the default run, and why (every other verb must run there).
VERBS_NOT_RUN = {"ui": "starts a server that runs until stopped; tests/test_ui_browser.py drives it",
                 "serve": "starts a server that runs until stopped; tests/test_serve.py drives it"}


@dataclass
class Rule:
    kind: str  # skip | slow
    pattern: str | None  # None: the whole block
    reason: str


@dataclass
class Block:
    number: int
    line: int  # 1-based line of the opening fence in README.md
    section: str
    lang: str
    code: str
    rules: list[Rule] = field(default_factory=list)

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")[:40]
        return f"{self.number:02d}-{slug}-{self.lang}"

    def whole_block_skip(self) -> str | None:
        return next((r.reason for r in self.rules if r.kind == "skip" and r.pattern is None), None)

    def commands(self) -> list[tuple[str, Rule | None]]:
        """Each shell line with the rule that applies to it (None: runs in the default run)."""
        out = []
        for line in self.code.splitlines():
            command = normalise(line)
            if command:
                out.append((line, next((r for r in self.rules if r.pattern and fnmatch.fnmatchcase(command, r.pattern)), None)))
        return out


def normalise(line: str) -> str:
    """A shell line without its comment and with single spaces: what the patterns match."""
    return " ".join(shlex.split(line, comments=True))


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    section, pending, lang, start, body = "", [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if lang is not None:
            if line.startswith("```"):
                if lang in ("bash", "python", "yaml"):
                    blocks.append(Block(len(blocks) + 1, start, section, lang, "\n".join(body) + "\n", pending))
                lang, pending = None, []
            else:
                body.append(line)
            continue
        fence = FENCE.match(line)
        directive = DIRECTIVE.match(line.strip())
        if fence:
            lang, start, body = fence.group(1) or "text", number, []
        elif directive:
            pending.append(Rule(directive.group(1), directive.group(2), directive.group(3)))
        elif line.startswith("<!-- readme-test"):
            raise ValueError(f"README.md:{number}: malformed readme-test comment: {line!r}")
        elif line.strip():
            pending = []  # a directive belongs to the block right below it
            if line.startswith("#"):
                section = line.lstrip("#").strip()
    return blocks


BLOCKS = parse(README.read_text(encoding="utf-8"))


def _params():
    for block in BLOCKS:
        if block.lang == "yaml":
            continue
        skip = block.whole_block_skip()
        if skip:
            yield pytest.param(block, False, id=block.name, marks=pytest.mark.skip(reason=skip))
            continue
        commands = block.commands()
        slow = [rule.reason for _, rule in commands if rule and rule.kind == "slow"]
        fast = [line for line, rule in commands if rule is None]
        if block.lang == "python" or fast:  # several examples, each loading its models in a new process
            yield pytest.param(block, False, id=block.name, marks=pytest.mark.timeout(1800))
        elif not slow:
            reasons = "; ".join(sorted({rule.reason for _, rule in commands if rule}))
            yield pytest.param(block, False, id=block.name, marks=pytest.mark.skip(reason=reasons))
        if slow:  # whole suites and several model loads: longer than the suite's per-test timeout
            yield pytest.param(block, True, id=f"{block.name}-all", marks=[pytest.mark.slow, pytest.mark.timeout(3600)])


# ---- the folder the examples run in ----------------------------------------------------------------
DOCS = {
    "router.md": "# Router help\n\nHow do I reset the router? Hold the reset button on the back for ten seconds "
                 "until the light blinks orange, then wait two minutes for it to restart.\n",
    "returns.txt": "Returns: a cracked or broken teapot can be returned within 30 days for a full refund.\n",
    "office.md": "The office cat sleeps on the printer in the afternoon and greets visitors at the door.\n",
}
SPEECH = {
    "meeting.m4a": "Welcome to the weekly meeting. We agreed to ship the new router firmware on Friday.",
    "a.wav": "The router light blinks orange after a reset.",
    "b.mp3": "Please send the invoice by Monday.",
    "question.wav": "How do I reset the router?",
    "call.wav": "Hello, this is Dana. Action item: call the customer back tomorrow about the cracked teapot.",
    "calls/call1.wav": "My teapot arrived cracked. Can I get a refund?",
}


def _speech(espeak: str, text: str, path: Path) -> Path:
    """espeak-ng speech, re-encoded with PyAV when the name asks for mp3 or m4a (sox writes neither)."""
    import av
    import numpy as np

    from mmagent.audio import iter_audio_blocks

    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".wav")
    subprocess.run([espeak, "-w", str(wav), text], check=True, capture_output=True)
    codec = {".mp3": "libmp3lame", ".m4a": "aac"}.get(path.suffix)
    if codec:
        pcm = (np.clip(np.concatenate(list(iter_audio_blocks(wav))), -1, 1) * 32767).astype(np.int16)[None, :]
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=16_000, layout="mono")
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = 16_000
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
        wav.unlink()
    return path


def _images(root: Path, cat: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    for name in ("photo.jpg", "review.jpg", "before.jpg", "photos/cat.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cat, root / name)
    ImageOps.mirror(Image.open(cat)).save(root / "after.jpg")
    shape = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(shape).ellipse((12, 12, 52, 52), fill="red")
    shape.save(root / "shape.png")
    receipt = Image.new("RGB", (480, 200), "white")
    draw = ImageDraw.Draw(receipt)
    font = ImageFont.load_default(size=32)
    draw.text((20, 30), "TEA SHOP", fill="black", font=font)
    draw.text((20, 110), "TOTAL 12.50", fill="black", font=font)
    receipt.save(root / "receipt.png")


def _no_op_adapter(model_dir: Path, out: Path) -> None:
    """A peft LoRA folder for the default model that changes nothing (B = 0), standing in for a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from mmagent.model.default_vlm import vision  # noqa: F401  registers the embedded vision tower

    base = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)")
    get_peft_model(base, config).save_pretrained(out)


def _squad(root: Path) -> None:
    context = "The office cat sleeps on the printer."
    qas = [{"id": "q1", "question": "Where does the cat sleep?", "answers": [{"text": "on the printer", "answer_start": 22}]}]
    data = {"version": "1.1", "data": [{"title": "Office", "paragraphs": [{"context": context, "qas": qas}]}]}
    (root / "dev-v1.1.json").write_text(json.dumps(data))
    (root / "preds.json").write_text(json.dumps({"q1": "the printer"}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, small_model_dir, cache_dir, cat_photo):
    """The folder every example runs in, and the environment it runs with."""
    from helpers.memory import write_pdf

    from mmagent.config import MemoryConfig
    from mmagent.memory import Document, open_memory

    espeak = require_binary("espeak-ng")
    root = tmp_path_factory.mktemp("readme")
    _images(root, cat_photo)
    for name, text in DOCS.items():
        (root / "docs" / name).parent.mkdir(exist_ok=True)
        (root / "docs" / name).write_text(text)
    write_pdf(root / "manual.pdf", ["Router manual\nTo reset the router, hold the reset button for ten seconds.",
                                    "Warranty\nThe router has a two-year warranty."])
    write_pdf(root / "minutes.pdf", ["Minutes of the support team meeting\nAction items: Sam updates the returns "
                                     "page by Friday.\nDana calls the customer about order 1001."])
    for name, text in SPEECH.items():
        _speech(espeak, text, root / name)
    _squad(root)
    for folder in ("adapters/support", "runs/vlm-easy-vqa"):
        _no_op_adapter(small_model_dir, root / folder)
    data = root / ".data"
    memory = MemoryConfig(path=str(data / "mmagent" / "memory"))
    # collections the examples name, so each block also runs alone (the ingest example adds to support-kb)
    for collection in ("support-kb", "handbook"):
        open_memory(memory, collection).add(Document(text, {"source": str(root / "docs" / name), "kind": "text"})
                                            for name, text in DOCS.items())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "XDG_DATA_HOME": str(data),
        "MMAGENT_PATHS_CACHE": str(cache_dir),
        "MMAGENT_MODEL_MAX_NEW_TOKENS": MAX_NEW_TOKENS,
        # the smallest embedded model, so the whole README runs in minutes: it tests the commands, not the
        # default model's answers (those: tests/test_default_choice.py); --model in a block still wins
        "MMAGENT_MODEL_ID": "embedded:smollm2-135m",
    })
    return root, env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], root: Path, env: dict[str, str], what: str) -> float:
    """Run one example; prints wall and CPU seconds (CPU time is what the budget is: wall time depends on
    what else the machine runs)."""
    started, cpu = time.perf_counter(), _cpu()
    result = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=900,
                            stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    print(f"[{seconds:5.1f} s, cpu {_cpu() - cpu:5.1f} s] {what}\n{result.stdout[-600:]}")
    assert result.returncode == 0, f"{what}\nexit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, f"{what}\n{result.stderr[-4000:]}"
    return seconds


@pytest.mark.embedded_model
@pytest.mark.parametrize("block, all_lines", list(_params()))
def test_readme_block(block: Block, all_lines: bool, workspace):
    root, env = workspace
    where = f"README.md:{block.line} ({block.section})"
    if block.lang == "python":
        _run([sys.executable, "-c", block.code], root, env, f"{where} python block")
        return
    ran = 0
    for line, rule in block.commands():
        if rule is not None and (rule.kind == "skip" or not all_lines):
            print(f"[ {rule.kind} ] {line.strip()}  ({rule.reason})")
            continue
        _run(["bash", "-o", "pipefail", "-c", line], root, env, f"{where}: {line.strip()}")
        ran += 1
    assert ran, f"{where}: no line ran; mark the block skipped with its reason instead"


@pytest.mark.embedded_model
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "yaml"], ids=lambda b: b.name)
def test_readme_config_works_when_copied(block: Block, workspace, tmp_path):
    """Issue 17: the sample named an adapter folder that does not exist, so a copied sample broke `chat`."""
    root, env = workspace
    (tmp_path / "mmagent.yaml").write_text(block.code)
    _run(["mmagent", "doctor", "--offline"], tmp_path, env, f"README.md:{block.line} copied as mmagent.yaml")


# ---- the marks themselves -------------------------------------------------------------------------
def test_every_mark_applies_to_a_line_and_gives_a_reason():
    for block in BLOCKS:
        lines = [normalise(line) for line in block.code.splitlines()]
        for rule in block.rules:
            assert rule.reason.strip(), f"README.md:{block.line}: a readme-test mark without a reason"
            if rule.pattern:
                assert any(fnmatch.fnmatchcase(c, rule.pattern) for c in lines if c), (
                    f"README.md:{block.line}: the mark {rule.pattern!r} matches no line of its block (stale?)")


def test_the_default_run_covers_every_verb():
    """Each CLI verb has a README example that runs without `-m slow` (or a stated reason it cannot)."""
    from mmagent.cli import _register, app

    _register()
    verbs = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    covered = set()
    for block in BLOCKS:
        if block.lang != "bash" or block.whole_block_skip():
            continue
        for line, rule in block.commands():
            words = shlex.split(line, comments=True)
            if rule is None:
                covered |= {words[i + 1] for i, w in enumerate(words[:-1]) if w == "mmagent"}
    missing = verbs - covered - set(VERBS_NOT_RUN)
    assert not missing, f"verbs with no README example in the default run: {sorted(missing)}"
