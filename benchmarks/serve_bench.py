"""`mmagent serve` under load: requests/s and p50/p95 latency at 1, 4 and 8 concurrent clients against
sequential in-process calls, with requests spread over the base model and two LoRA adapters.

The embedded default model serves; two random LoRA adapters (r=8 on the language model's q/v) are made
in a temporary folder. Every request is greedy with the same token budget; the in-process answers are
the reference each HTTP answer is compared with (a batched row may differ from its one-at-a-time answer
only by float rounding of padded positions, counted as "differ").

    python benchmarks/serve_bench.py                     # prints JSON; --results appends a table to RESULTS.md
    python benchmarks/serve_bench.py --model embedded:smollm2-135m --requests 48 --tokens 32 --dtype bfloat16 --results
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("base", "a", "b")
TOPICS = ["my order 1001", "a cracked teapot", "the returns page", "a router reset", "a late parcel",
          "the warranty", "a refund", "the invoice", "a blue square", "a red circle", "the office cat", "a ticket"]


def make_adapters(backend, folder: Path) -> dict[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    paths = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        base = AutoModelForImageTextToText.from_pretrained(backend.path)
        lora = LoraConfig(r=8, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False)
        get_peft_model(base, lora).save_pretrained(folder / name)
        paths[name] = str(folder / name)
    return paths


def workload(n: int) -> list[tuple[str, list[dict]]]:
    return [(MODELS[i % 3], [{"role": "user", "content": f"Write two sentences about {TOPICS[i % len(TOPICS)]} "
                                                         f"(request {i})."}]) for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(label: str, latencies: list[float], wall: float, same: int) -> dict:
    return {"condition": label, "requests": len(latencies), "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 3), "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(percentile(latencies, 0.95), 3), "same_as_in_process": same}


def sequential(backend, work, tokens: int) -> tuple[dict, list[str]]:
    answers, latencies = [], []
    started = time.perf_counter()
    for model, messages in work:
        t0 = time.perf_counter()
        answers.append(backend.complete(messages, adapter=None if model == "base" else model, max_new_tokens=tokens))
        latencies.append(time.perf_counter() - t0)
    return summary("sequential in-process (no server)", latencies, time.perf_counter() - started, len(work)), answers


def over_http(url: str, work, tokens: int, clients: int, reference: list[str]) -> dict:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=1200)

    def one(i: int) -> tuple[float, str]:
        model, messages = work[i]
        t0 = time.perf_counter()
        answer = client.chat.completions.create(model=model, messages=messages, max_tokens=tokens, temperature=0)
        return time.perf_counter() - t0, answer.choices[0].message.content

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(len(work))))
    wall = time.perf_counter() - started
    same = sum(text == want for (_, text), want in zip(results, reference))
    return summary(f"mmagent serve, {clients} concurrent client{'s' if clients > 1 else ''}",
                   [r[0] for r in results], wall, same)


def machine() -> str:
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, nproc {os.cpu_count()}, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}"


def run(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend
    from mmagent.serve.app import create_app
    from mmagent.serve.limits import ServeSettings
    from mmagent.serve.runner import BackgroundServer

    overrides = {"model.id": args.model, "model.dtype": args.dtype, "model.repetition_penalty": 1.0, "model.max_new_tokens": args.tokens}
    probe = HFVisionBackend(load_config(overrides=overrides, env={}))
    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    adapters = make_adapters(probe, folder)
    del probe
    config = load_config(overrides={**overrides, **{f"adapters.{k}": v for k, v in adapters.items()}}, env={})
    backend = HFVisionBackend(config)
    work = workload(args.requests)
    backend.complete(work[0][1], max_new_tokens=2)  # warm-up
    rows = []
    seq, reference = sequential(backend, work, args.tokens)
    rows.append(seq)
    app = create_app(config, ServeSettings(served_name="base", max_batch=args.max_batch), backend=backend)
    with BackgroundServer(app) as server:
        over_http(server.url, work[:3], args.tokens, 3, reference[:3])  # warm-up of the HTTP path
        for clients in args.clients:
            rows.append(over_http(server.url, work, args.tokens, clients, reference))
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "model": f"{config.model.id} = {Path(backend.path).name} ({backend.info().precision})",
            "requests": args.requests, "max_new_tokens": args.tokens, "max_batch": args.max_batch,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "rows": rows}


def markdown(result: dict) -> str:
    lines = [
        "## `mmagent serve`: batched requests with mixed adapters vs sequential in-process calls",
        "",
        f"`python benchmarks/serve_bench.py --requests {result['requests']} --tokens {result['max_new_tokens']} "
        f"--results` — {result['date']}; {result['machine']}; load average (1/5/15 min) "
        f"{'/'.join(map(str, result['load_average_before']))} before, "
        f"{'/'.join(map(str, result['load_average_after']))} after (the machine is shared with other work).",
        "",
        f"model: {result['model']}; {result['requests']} greedy requests of {result['max_new_tokens']} new tokens, "
        f"spread evenly over the base model and two LoRA adapters; batches of at most {result['max_batch']}.",
        "",
        "| condition | requests/s | p50 latency s | p95 latency s | wall s | answers equal to in-process |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['condition']} | {r['requests_per_s']:.2f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | "
                     f"{r['seconds']:.1f} | {r['same_as_in_process']}/{r['requests']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", default="default", help="model.id (e.g. embedded:smollm2-135m); default: the embedded default")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--results", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.results:
        with open(HERE / "RESULTS.md", "a") as out:
            out.write("\n" + markdown(result))
        print(markdown(result))


if __name__ == "__main__":
    main()
