"""`mmagent serve` under load: requests/s and p50/p95 latency at 1, 4 and 8 concurrent clients against
sequential in-process calls, with requests spread over the base model and two LoRA adapters.

The embedded default model serves; two random LoRA adapters (r=8 on the language model's q/v) are made
in a temporary folder. Every request is greedy with the same token budget; the in-process answers are
the reference each HTTP answer is compared with (a batched row may differ from its one-at-a-time answer
only by float rounding of padded positions, counted as "differ"). Scaling = requests/s over HTTP at N
clients ÷ requests/s of the sequential in-process calls measured in the same run.

    python benchmarks/serve_bench.py --quick --json benchmarks/out/serve.json   # 135M model, 4 requests of 8 tokens, 4 clients
    python benchmarks/serve_bench.py                                            # default model, 24 requests of 32 tokens, 2 rounds
    python benchmarks/serve_bench.py --model embedded:smollm2-135m --requests 48 --tokens 32 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import contract

MODELS = ("base", "a", "b")
TOPICS = ["my order 1001", "a cracked teapot", "the returns page", "a router reset", "a late parcel",
          "the warranty", "a refund", "the invoice", "a blue square", "a red circle", "the office cat", "a ticket"]


def make_adapters(backend, folder: Path) -> dict[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    paths = {}
    base = AutoModelForImageTextToText.from_pretrained(backend.path)
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        lora = LoraConfig(r=8, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False)
        model = get_peft_model(base, lora)
        model.save_pretrained(folder / name)
        base = model.unload()  # the same base for the next adapter, without a second load
        paths[name] = str(folder / name)
    return paths


def workload(n: int) -> list[tuple[str, list[dict]]]:
    return [(MODELS[i % 3], [{"role": "user", "content": f"Write two sentences about {TOPICS[i % len(TOPICS)]} "
                                                         f"(request {i})."}]) for i in range(n)]


def summary(label: str, runs: list[tuple[list[float], float, list[str]]], reference: list[str]) -> dict:
    """One condition's row from its rounds: medians over rounds of requests/s and p50/p95 latency."""
    n = len(runs[0][0])
    return {"condition": label, "requests": n, "rounds": len(runs),
            "seconds": round(statistics.median(wall for _, wall, _ in runs), 2),
            "requests_per_s": round(statistics.median(n / wall for _, wall, _ in runs), 3),
            "p50_s": round(statistics.median(statistics.median(lat) for lat, _, _ in runs), 3),
            "p95_s": round(statistics.median(contract.percentile(lat, 0.95) for lat, _, _ in runs), 3),
            "same_as_in_process": min(sum(a == b for a, b in zip(texts, reference)) for _, _, texts in runs)}


def sequential(backend, work, tokens: int) -> tuple[list[float], float, list[str]]:
    answers, latencies = [], []
    started = time.perf_counter()
    for model, messages in work:
        t0 = time.perf_counter()
        answers.append(backend.complete(messages, adapter=None if model == "base" else model, max_new_tokens=tokens))
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started, answers


def over_http(url: str, work, tokens: int, clients: int) -> tuple[list[float], float, list[str]]:
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
    return [r[0] for r in results], time.perf_counter() - started, [r[1] for r in results]


def run(args: argparse.Namespace, report: contract.Report) -> None:
    """Sequential in-process calls and each client count over HTTP, interleaved for `args.rounds` rounds."""
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend
    from mmagent.serve.app import create_app
    from mmagent.serve.limits import ServeSettings
    from mmagent.serve.runner import BackgroundServer

    overrides = {"model.id": args.model, "model.dtype": args.dtype, "model.repetition_penalty": 1.0, "model.max_new_tokens": args.tokens}
    probe = HFVisionBackend(load_config(overrides=overrides, env={}))
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as folder:
        adapters = make_adapters(probe, Path(folder))
        del probe
        config = load_config(overrides={**overrides, **{f"adapters.{k}": v for k, v in adapters.items()}}, env={})
        backend = HFVisionBackend(config)
        work = workload(args.requests)
        backend.complete(work[0][1], max_new_tokens=2)  # warm-up
        settings = ServeSettings(served_name="base", max_batch=args.max_batch, timeout=3600)  # measure, do not refuse
        app = create_app(config, settings, backend=backend)
        with BackgroundServer(app) as server:
            over_http(server.url, work[:3], args.tokens, 3)  # warm-up of the HTTP path
            conditions = {"sequential in-process (no server)": lambda: sequential(backend, work, args.tokens)}
            for clients in args.clients:
                conditions[f"mmagent serve, {clients} concurrent client{'s' if clients > 1 else ''}"] = (
                    lambda c=clients: over_http(server.url, work, args.tokens, c))
            runs = contract.interleaved(conditions, args.rounds)
    reference = next(iter(runs.values()))[0][2]
    rows = [summary(label, r, reference) for label, r in runs.items()]
    seq = rows[0]
    report.rows = rows
    report.notes.update(model=f"{config.model.id} = {Path(backend.path).name} ({backend.info().precision})",
                        requests=args.requests, max_new_tokens=args.tokens, max_batch=args.max_batch,
                        rounds=args.rounds, torch_threads=torch_threads())
    for row, clients in zip(rows[1:], args.clients):
        row["scaling"] = round(row["requests_per_s"] / seq["requests_per_s"], 3)
        report.ratios[f"requests/s at {clients} clients / sequential"] = row["scaling"]
    top = rows[-1]
    report.target("serve", top["requests_per_s"], "report scaling", None, unit="requests/s",
                  baseline=f"sequential in-process {seq['requests_per_s']} requests/s", ratio=top["scaling"],
                  reason=f"{top['condition']}; p95 {top['p95_s']} s vs {seq['p95_s']} s sequential")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def markdown(report: contract.Report) -> str:
    n = report.notes
    return "\n".join([
        f"model: {n['model']}; {n['requests']} greedy requests of {n['max_new_tokens']} new tokens, spread evenly "
        f"over the base model and two LoRA adapters; batches of at most {n['max_batch']}; torch threads "
        f"{n['torch_threads']}; median of {n['rounds']} interleaved round(s); load average {'/'.join(map(str, report.load_before))} before.",
        "",
        contract.table(report.rows, [("condition", "condition"), ("requests_per_s", "requests/s"),
                                     ("scaling", "× sequential"), ("p50_s", "p50 s"), ("p95_s", "p95 s"),
                                     ("seconds", "wall s"), ("same_as_in_process", "answers equal to in-process")]),
        "",
        "Reading: throughput grows with clients because the rows of a batch share each decoding step; "
        "latency grows with it (each request waits for a batch and decodes beside the others). Batched "
        "bfloat16 answers may differ from one-at-a-time ones by rounding of padded rows and peft's "
        "mixed-adapter path (see the curated serve section below).",
    ])


def main() -> int:
    parser = contract.arguments(__doc__, "embedded:smollm2-135m, 4 requests of 8 tokens, 4 clients")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", default="default", help="model.id (e.g. embedded:smollm2-135m); default: the embedded default")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every condition (median)")
    args = parser.parse_args()
    if args.quick:
        args.model, args.requests, args.tokens, args.clients, args.rounds = "embedded:smollm2-135m", 4, 8, [4], 1
    report = contract.Report("serve", quick=args.quick)
    run(args, report)
    report.write(args.json)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
