"""Model-core benchmark: load time, first-token latency, decode speed and memory per precision, and
adapter switching versus a full reload. Each precision runs in a fresh process.

    python benchmarks/model_bench.py            # all precisions; prints a Markdown table
    python benchmarks/model_bench.py --one 4bit # one precision, JSON (used by the driver)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = [{"role": "user", "content": "What is in this picture? Describe it in detail."}]
PHOTO = Path(__file__).resolve().parents[1] / "mmagent" / "assets" / "cat.jpg"


def measure(quantization: str, new_tokens: int = 48) -> dict:
    started = time.perf_counter()
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    imported = time.perf_counter()
    backend = HFVisionBackend(load_config(overrides={"model.quantization": quantization}))
    loaded = time.perf_counter()
    backend.complete(QUESTION, images=[PHOTO], max_new_tokens=2)  # warm-up: OCR engine, kernels
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        first, pieces = None, []
        for piece in backend.generate(QUESTION, images=[PHOTO], max_new_tokens=new_tokens, repetition_penalty=1.0):
            first = first or time.perf_counter() - t0
            pieces.append(piece)
        total = time.perf_counter() - t0
        tokens = len(backend.tokenizer("".join(pieces), add_special_tokens=False).input_ids)
        runs.append({"first_token_s": first, "tokens": tokens, "decode_tok_s": (tokens - 1) / (total - first)})
    best = max(runs, key=lambda r: r["decode_tok_s"])
    return {
        "quantization": quantization,
        "precision": backend.info().precision,
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_token_s": min(r["first_token_s"] for r in runs),
        "decode_tok_s": best["decode_tok_s"],
        "tokens": best["tokens"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def adapter_switching() -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    config = load_config()
    backend = HFVisionBackend(config)
    tmp = Path(tempfile.mkdtemp())
    for name, seed in (("a", 1), ("b", 2)):  # random LoRA adapters on the language tower's attention
        torch.manual_seed(seed)
        base = AutoModelForImageTextToText.from_pretrained(backend.path)
        lora = LoraConfig(r=8, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False)
        get_peft_model(base, lora).save_pretrained(tmp / name)
        backend.adapters.load(name, tmp / name)
    short = {"max_new_tokens": 1}
    backend.generate_ids(QUESTION, adapter="a", **short)
    t0 = time.perf_counter()
    switches = 20
    for i in range(switches):
        backend.generate_ids(QUESTION, adapter="ab"[i % 2], **short)
    per_switch_request = (time.perf_counter() - t0) / switches
    t0 = time.perf_counter()
    for _ in range(switches):
        backend.generate_ids(QUESTION, adapter="a", **short)
    same_adapter_request = (time.perf_counter() - t0) / switches
    t0 = time.perf_counter()
    config.adapters = {"b": str(tmp / "b")}
    reloaded = HFVisionBackend(config)
    reloaded.generate_ids(QUESTION, adapter="b", **short)
    full_reload = time.perf_counter() - t0
    return {
        "switch_overhead_ms": (per_switch_request - same_adapter_request) * 1000,
        "request_with_switch_ms": per_switch_request * 1000,
        "request_same_adapter_ms": same_adapter_request * 1000,
        "full_reload_s": full_reload,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", choices=["none", "8bit", "4bit", "adapters"])
    args = parser.parse_args()
    if args.one:
        result = adapter_switching() if args.one == "adapters" else measure(args.one)
        print(json.dumps(result))
        return
    rows = []
    for q in ("none", "8bit", "4bit", "adapters"):
        out = subprocess.run([sys.executable, __file__, "--one", q], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"Machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}")
    print("\n| quantization | precision | load (s) | first token (s) | decode (tok/s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for r in rows[:3]:
        print(f"| {r['quantization']} | {r['precision']} | {r['load_s']:.1f} | {r['first_token_s']:.2f} | "
              f"{r['decode_tok_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    a = rows[3]
    print(f"\nAdapter switch: {a['switch_overhead_ms']:.1f} ms extra per request "
          f"({a['request_with_switch_ms']:.0f} ms with a switch vs {a['request_same_adapter_ms']:.0f} ms without, "
          f"1-token requests); full reload of base + adapter: {a['full_reload_s']:.1f} s.")


if __name__ == "__main__":
    main()
