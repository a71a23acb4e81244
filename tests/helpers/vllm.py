"""A real vLLM (CPU build, its own venv) serving the embedded 135M model's language tower and a LoRA on it.

vLLM cannot load the embedded checkpoint as a VLM (its MobileNet tower is mmagent's own), so the language
tower is written out as a plain causal-LM checkpoint (same weights, tokenizer and chat template); the LoRA is
random (`init_lora_weights=False`), so its answers differ from the base model's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def export_language_tower(vlm_dir: Path, out: Path) -> Path:
    """The embedded VLM's language model as a standalone checkpoint (`out`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    import mmagent.model.default_vlm.vision  # noqa: F401  registers the tower class

    vlm = AutoModelForImageTextToText.from_pretrained(vlm_dir, dtype=torch.float32)
    lm = AutoModelForCausalLM.from_config(vlm.config.text_config)
    prefix = "model.language_model."
    state = {"model." + k[len(prefix):]: v for k, v in vlm.state_dict().items() if k.startswith(prefix)}
    state["lm_head.weight"] = vlm.lm_head.weight
    missing, unexpected = lm.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    lm.save_pretrained(out)
    AutoTokenizer.from_pretrained(vlm_dir).save_pretrained(out)
    return out


def random_lora(model_dir: Path, out: Path, seed: int = 3) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` in its own process group (its engine runs in child
    processes), stopped with the whole group."""

    def __init__(self, python: str, model: Path, name: str, loras: dict[str, Path], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        args = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", name,
                "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "bfloat16", "--max-model-len", "2048",
                "--enable-lora", "--max-lora-rank", "8", "--lora-modules", *(f"{n}={p}" for n, p in loras.items()),
                # on CPU this fraction of the machine's memory must be free at start (default 0.92: refused on a
                # shared machine with 8 of 23 GiB free); a 135M model and a 1 GiB KV cache need little
                "--gpu-memory-utilization", "0.1"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MMAGENT_", "VIRTUAL_ENV"))}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB
        self.log = log
        self.process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def wait(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                errors = [line for line in self.log.read_text().splitlines() if "Error" in line or "ERROR" in line]
                raise RuntimeError(f"vLLM exited ({self.process.returncode}); its errors:\n" + "\n".join(errors[-12:]))
            try:
                if httpx.get(self.url + "/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise TimeoutError(f"vLLM did not answer at {self.url} within {timeout:.0f} s; log tail:\n"
                           f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
