"""Language-model decode (issue 18): `backend.generate` against bare `model.generate`, the memory roofline,
decode time vs output length, adapter switch vs full reload, assisted generation, system-prompt KV reuse.

Every figure has its baseline measured in the same process, interleaved (median of the repeats):

- decode: time to first token and decode tok/s of the streamed `backend.generate` and of bare
  `model.generate` on the same model, prompt and settings (greedy, repetition penalty as configured),
  bare both from the calling thread and from a worker thread (the backend generates in a worker thread;
  with libgomp that changes how the OpenMP workers wait between kernels, see RESULTS.md). % of roofline
  = decode tok/s ÷ (copy bandwidth measured here, on a worker thread too ÷ bytes of language-model weights
  read per token).
- length: decode seconds vs output length (16..256 tokens), backend and bare, plotted.
- adapters: seconds to change the LoRA adapter of a resident model vs a full reload with that adapter.
- assisted: the 1.5B with `model.draft_id` vs without, two drafts: the 0.5B (same tokenizer) and SmolLM2-135M
  (another tokenizer: universal assisted decoding); identical greedy text.
- prompt_cache: first token with a prefilled, copied system-prompt KV cache vs a plain prefill.

    python benchmarks/decode_bench.py --quick --json benchmarks/out/decode.json
    python benchmarks/decode_bench.py                 # + float32, 8bit/4bit, 1.5B, longer outputs, assisted
    python benchmarks/decode_bench.py --only assisted

Each model/precision runs in its own process (`--child`), so one's memory never slows the next.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import contract

PROMPT = [{"role": "user", "content": "Write a long story about a cat who learns to program in Python."}]
COUNT = [{"role": "user", "content": "Count from 1 to 400 in words, one number per line, and nothing else."}]
SYSTEM = ("You are the support assistant of a small online shop. Answer from the help centre only. "
          "Shipping: parcels leave the warehouse within two working days; delivery takes three to five working "
          "days inside the country and up to ten days abroad. Returns: any item may be returned within thirty "
          "days in its original packaging; the refund is paid to the original payment method within five "
          "working days of the return arriving. Damaged items: send a photo within seven days; we replace or "
          "refund, whichever the customer prefers. Warranty: two years on electronics, one year on everything "
          "else. Invoices are e-mailed when the parcel ships. Never promise anything the help centre does not "
          "say; if you do not know, say so and offer to open a ticket. Keep answers under four sentences.")
QUESTIONS = ["How long does delivery abroad take?", "Can I return a kettle after three weeks?",
             "My mug arrived broken, what now?"]
# Published peak memory bandwidths (vendor data sheets), for the estimates on paper.
GPUS = {"NVIDIA T4": 320, "NVIDIA L4": 300, "NVIDIA A10G": 600, "NVIDIA RTX 4090": 1008, "NVIDIA A100 40GB": 1555,
        "NVIDIA H100 SXM": 3350}


# ---- measurements (run inside a child process) ------------------------------------------------------
def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s of a large tensor copy (bytes read + bytes written), median of `repeats`: the machine's
    achievable memory bandwidth in this run, the roofline's numerator."""
    import torch

    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return 2 * src.numel() * 4 / contract.median(times) / 1e9


def weight_bytes_per_token(model) -> int:
    """Bytes of language-model weights one decode step reads: every matrix of the language tower and the
    output head once; not the vision side (not run for text) and not the input embedding table (one row)."""
    skip = ("vision_tower", "multi_modal_projector", "embed_tokens")
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if not any(s in n for s in skip))


def _backend(model_id: str, dtype: str = "auto", quantization: str = "none", **extra):
    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    overrides = {"model.id": model_id, "model.dtype": dtype, "model.quantization": quantization, "model.ocr": "off",
                 **{f"model.{k}": v for k, v in extra.items()}}
    return HFVisionBackend(load_config(overrides=overrides))


def _timed_stream(backend, messages, **gen) -> tuple[float, float, str]:
    """(seconds to the first piece, total seconds, text) of one streamed backend.generate."""
    t0 = time.perf_counter()
    first, pieces = None, []
    for piece in backend.generate(messages, **gen):
        first = first or time.perf_counter() - t0
        pieces.append(piece)
    return first or 0.0, time.perf_counter() - t0, "".join(pieces)


def _in_thread(fn):
    """fn() run on a worker thread (as the backend generates), its result returned."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.setdefault("value", fn()))
    worker.start()
    worker.join()
    return out["value"]


def _bare(backend, inputs, kwargs: dict, in_thread: bool = False) -> tuple[float, list[int]]:
    """Seconds and new token ids of one bare `model.generate`, from this thread or a worker thread."""
    out: dict = {}

    def run() -> None:
        out["ids"] = backend.model.generate(**inputs, **kwargs)[0, inputs["input_ids"].shape[1]:].tolist()

    t0 = time.perf_counter()
    if in_thread:
        _in_thread(run)
    else:
        run()
    return time.perf_counter() - t0, out["ids"]


def decode(model_id: str, dtype: str, quantization: str, tokens: int, repeats: int) -> dict:
    from mmagent.model.backend import _generate_kwargs

    t0 = time.perf_counter()
    backend = _backend(model_id, dtype, quantization)
    load_s = time.perf_counter() - t0
    bandwidth = _in_thread(copy_bandwidth)  # where the backend decodes: see the module docstring
    opts = backend.options({"max_new_tokens": tokens})
    inputs = backend.prepare(PROMPT)
    kwargs = _generate_kwargs(opts, backend.tokenizer)
    first_kwargs = dict(kwargs, max_new_tokens=1)
    # Warm-up of both paths (first-call costs stay out of the timings); 4 tokens do it as well as a whole
    # answer (the timed runs' own outputs give the identity check below).
    _bare(backend, inputs, dict(kwargs, max_new_tokens=4))
    _timed_stream(backend, PROMPT, max_new_tokens=4)
    outputs: dict[str, Any] = {}

    def bare_answer() -> float:
        seconds, ids = _bare(backend, inputs, kwargs)
        outputs.setdefault("bare", ids)
        return seconds

    def streamed_answer() -> tuple[float, float]:
        first, total, text = _timed_stream(backend, PROMPT, max_new_tokens=tokens)
        outputs.setdefault("backend", text)
        return first, total

    runs = contract.interleaved({
        "bare_first": lambda: _bare(backend, inputs, first_kwargs)[0],
        "bare": bare_answer,
        "bare_thread_first": lambda: _bare(backend, inputs, first_kwargs, in_thread=True)[0],
        "bare_thread": lambda: _bare(backend, inputs, kwargs, in_thread=True)[0],
        "backend": streamed_answer,
    }, repeats)
    reference = outputs["bare"]
    n = len(reference)
    ttft_bare = contract.median(runs["bare_first"])
    ttft_backend = contract.median([first for first, _ in runs["backend"]])

    def rate(total: float, first: float) -> float:
        return (n - 1) / max(total - first, 1e-9)

    bare = rate(contract.median(runs["bare"]), ttft_bare)
    bare_thread = rate(contract.median(runs["bare_thread"]), contract.median(runs["bare_thread_first"]))
    ours = contract.median([rate(total, first) for first, total in runs["backend"]])
    per_token = weight_bytes_per_token(backend.model)
    roofline = bandwidth * 1e9 / per_token
    return {"model": model_id.removeprefix("embedded:"), "precision": backend.precision, "load_s": round(load_s, 1),
            "prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens": n,
            "ttft_backend_s": round(ttft_backend, 3), "ttft_bare_s": round(ttft_bare, 3),
            "tok_s_backend": round(ours, 2), "tok_s_bare": round(bare, 2), "tok_s_bare_thread": round(bare_thread, 2),
            "ratio": round(ours / bare, 3), "ratio_vs_bare_thread": round(ours / bare_thread, 3),
            "identical": backend.tokenizer.decode(reference, skip_special_tokens=True) == outputs["backend"],
            "copy_gb_s": round(bandwidth, 2), "weight_mb_per_token": round(per_token / 2**20, 1),
            "roofline_tok_s": round(roofline, 1), "pct_roofline": round(100 * ours / roofline, 1),
            "pct_roofline_bare": round(100 * bare / roofline, 1), "repeats": repeats, "load": contract.load(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def length(model_id: str, lengths: list[int], rounds: int = 2) -> dict:
    """Decode seconds vs output length; the prompt asks for a long list so no length ends early."""
    from mmagent.model.backend import _generate_kwargs

    backend = _backend(model_id)
    inputs = backend.prepare(COUNT)
    _bare(backend, inputs, _generate_kwargs(backend.options({"max_new_tokens": 4}), backend.tokenizer))
    points = []
    for n in lengths:
        kwargs = _generate_kwargs(backend.options({"max_new_tokens": n}), backend.tokenizer)
        runs = contract.interleaved({"bare": lambda: _bare(backend, inputs, kwargs),
                                     "backend": lambda: _timed_stream(backend, COUNT, max_new_tokens=n)}, rounds)
        seconds, ids = runs["bare"][0]
        points.append({"max_new_tokens": n, "new_tokens": len(ids),
                       "bare_s": round(contract.median([s for s, _ in runs["bare"]]), 2),
                       "backend_s": round(contract.median([total for _, total, _ in runs["backend"]]), 2),
                       "load": contract.load()})
    return {"model": model_id.removeprefix("embedded:"), "precision": backend.precision, "points": points}


def adapters(model_id: str, switches: int) -> dict:
    """Changing the adapter of a resident model (the per-request `adapter=` path) vs building a backend
    with that adapter from scratch (what a server without adapter switching would do)."""
    from serve_bench import make_adapters  # the same two random LoRA adapters serve_bench serves

    from mmagent.config import load_config
    from mmagent.model.backend import HFVisionBackend

    config = load_config(overrides={"model.id": model_id, "model.ocr": "off"})
    backend = HFVisionBackend(config)
    folder = Path(tempfile.mkdtemp())
    for name, path in make_adapters(backend, folder).items():
        backend.adapters.load(name, path)
    last = ["a"]

    def switch() -> float:  # select the other adapter than the last request's: what a request's adapter= costs
        last[0] = {"a": "b", "b": "a"}[last[0]]
        t0 = time.perf_counter()
        with backend.adapters.selected(last[0]):
            return time.perf_counter() - t0

    def reload() -> float:  # a backend built with that adapter: load, adapter, ready to answer
        config.adapters = {"b": str(folder / "b")}
        return _seconds(lambda: HFVisionBackend(config))

    runs = contract.interleaved({"switch": lambda: contract.median([switch() for _ in range(switches)]),
                                 "reload": reload}, 2)
    switch_s, full = contract.median(runs["switch"]), contract.median(runs["reload"])
    return {"model": model_id.removeprefix("embedded:"), "switch_s": round(switch_s, 5),
            "full_reload_s": round(full, 2), "ratio": round(full / switch_s), "load": contract.load()}


def assisted(model_id: str, draft_id: str, tokens: int, repeats: int) -> dict:
    """The target model with and without `model.draft_id`: decode tok/s and identical greedy text."""
    backend = _backend(model_id, draft_id=draft_id)
    draft = backend.draft

    def run(with_draft: bool):  # one resident target; the plain condition sets the draft aside
        backend.draft = draft if with_draft else None
        return _timed_stream(backend, PROMPT, max_new_tokens=tokens)

    texts = {}
    runs = contract.interleaved({"plain": lambda: run(False), "assisted": lambda: run(True)}, repeats)
    for name, values in runs.items():
        texts[name] = values[0][2]
    plain_ids, assisted_ids = (backend.tokenizer(texts[k], add_special_tokens=False).input_ids for k in ("plain", "assisted"))
    n = len(plain_ids)

    def rate(values) -> float:
        return contract.median([(n - 1) / max(total - first, 1e-9) for first, total, _ in values])

    differs_at = next((i for i, (a, b) in enumerate(zip(plain_ids, assisted_ids)) if a != b), None)
    return {"model": model_id.removeprefix("embedded:"), "draft": draft_id.removeprefix("embedded:"),
            "precision": backend.precision, "draft_tokens": backend.model_config.draft_tokens,
            "same_tokenizer": backend.draft_tokenizer is None, "new_tokens": n, "tok_s_plain": round(rate(runs["plain"]), 2),
            "tok_s_assisted": round(rate(runs["assisted"]), 2),
            "ratio": round(rate(runs["assisted"]) / rate(runs["plain"]), 3),
            "identical": all(v[2] == texts["plain"] for vs in runs.values() for v in vs),
            "first_different_token": differs_at, "load": contract.load()}


def prompt_cache(model_id: str, tokens: int, repeats: int, check_float32: bool = True) -> dict:
    """transformers' prompt reuse: prefill the fixed system prompt once, copy that cache per request.
    `check_float32`: also load the model in float32 to tell rounding from a wrong reuse (the full run)."""
    backend = _backend(model_id)
    kwargs, system, cache = _system_prefill(backend, tokens)
    requests = [backend.prepare([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}])
                for q in QUESTIONS]
    prefix = system["input_ids"].shape[1]
    assert all(bool((r["input_ids"][0, :prefix] == system["input_ids"][0]).all()) for r in requests)

    def plain(inputs, n=None):  # in a worker thread, as the backend generates (see decode())
        return _bare(backend, inputs, dict(kwargs, max_new_tokens=n or tokens), in_thread=True)[1]

    def reused(inputs, n=None):
        return _bare(backend, inputs, dict(kwargs, max_new_tokens=n or tokens, cache=copy.deepcopy(cache)),
                     in_thread=True)[1]

    identical = [plain(r) == reused(r) for r in requests]
    if backend.precision == "float32":
        exact: list[bool] | None = identical
    else:
        exact = _reuse_identical_in_float32(model_id, requests, tokens) if check_float32 else None
    runs = contract.interleaved({"plain": lambda: [_seconds(lambda: plain(r, 1)) for r in requests],
                                 "reused": lambda: [_seconds(lambda: reused(r, 1)) for r in requests]}, repeats)
    first_plain = contract.median([s for round_ in runs["plain"] for s in round_])
    first_reused = contract.median([s for round_ in runs["reused"] for s in round_])
    return {"model": model_id.removeprefix("embedded:"), "precision": backend.precision,
            "system_tokens": prefix, "request_tokens": int(requests[0]["input_ids"].shape[1]),
            "ttft_plain_s": round(first_plain, 3), "ttft_reused_s": round(first_reused, 3),
            "ratio": round(first_plain / first_reused, 2), "identical": sum(identical),
            "identical_float32": None if exact is None else sum(exact),
            "questions": len(requests), "load": contract.load()}


def _reuse_identical_in_float32(model_id: str, requests: list, tokens: int) -> list[bool]:
    """Per request: the same greedy tokens with and without the reused cache, in float32. In bfloat16 a cached
    prefix is rounded as its own prefill shape, not as part of the whole prompt's, so a near tie can flip a
    token; float32 shows whether the reuse itself is exact."""
    backend = _backend(model_id, "float32")
    kwargs, _, cache = _system_prefill(backend, tokens)
    return [_bare(backend, r, kwargs)[1] == _bare(backend, r, dict(kwargs, cache=copy.deepcopy(cache)))[1]
            for r in requests]


def _system_prefill(backend, tokens: int) -> tuple[dict, Any, Any]:
    """Greedy generate kwargs, the SYSTEM prompt's token ids, and its KV cache from the product's own prefill
    (mmagent.model.prompt_cache, as PrefixCache builds it)."""
    from mmagent.model.backend import _generate_kwargs
    from mmagent.model.prompt_cache import _prefill

    kwargs = _generate_kwargs(backend.options({"max_new_tokens": tokens}), backend.tokenizer)
    system = backend.tokenizer([backend.apply_template([{"role": "system", "content": SYSTEM}], None, False)],
                               return_tensors="pt", add_special_tokens=False)
    return kwargs, system, _prefill(backend.model, system["input_ids"])


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


TASKS = {"decode": decode, "length": length, "adapters": adapters, "assisted": assisted, "prompt_cache": prompt_cache}


def child(task: str, **kwargs) -> dict:
    """Run one task in a fresh process; its JSON is the last line of stdout. `wall_s` is the whole process
    (imports and loads included: what the job costs a run)."""
    argv = [sys.executable, __file__, "--child", json.dumps({"task": task, **kwargs})]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = {"wall_s": round(time.perf_counter() - started, 1)}
    if done.returncode != 0:
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        return {"task": task, **kwargs, **wall, "error": error}
    return {"task": task, **json.loads(done.stdout.strip().splitlines()[-1]), **wall}


# ---- the report ------------------------------------------------------------------------------------
def plan(quick: bool) -> list[tuple[str, dict]]:
    """The jobs, each run in its own process so one's memory never slows the next (sharing one process
    among the quick plan's three 135M jobs was measured: it saved 2 s of 60)."""
    small, default, big = "embedded:smollm2-135m", "embedded:qwen2.5-coder-0.5b", "embedded:qwen2.5-coder-1.5b"
    tokens, repeats = (32, 2) if quick else (96, 5)
    jobs = [("decode", {"model_id": small, "dtype": "auto", "quantization": "none"}),
            ("decode", {"model_id": default, "dtype": "bfloat16", "quantization": "none"})]
    if not quick:  # float32 and the quantized: the precision levers, each against bare generate at its precision
        jobs += [("decode", {"model_id": default, "dtype": "float32", "quantization": "none"})]
        jobs += [("decode", {"model_id": default, "dtype": "auto", "quantization": q}) for q in ("8bit", "4bit")]
        jobs += [("decode", {"model_id": big, "dtype": "bfloat16", "quantization": "none"})]
    jobs = [(task, dict(kw, tokens=tokens, repeats=repeats)) for task, kw in jobs]
    jobs += [("length", {"model_id": small if quick else default,
                         "lengths": [16, 32, 64] if quick else [16, 32, 64, 128, 256], "rounds": 1 if quick else 2}),
             ("adapters", {"model_id": small if quick else default, "switches": 6 if quick else 10}),
             ("prompt_cache", {"model_id": small if quick else default, "tokens": 16, "repeats": repeats,
                               "check_float32": not quick})]
    if not quick:
        jobs += [("assisted", {"model_id": big, "draft_id": draft, "tokens": 96, "repeats": 3}) for draft in (default, small)]
    return jobs


def render(report: contract.Report) -> str:
    rows = [r for r in report.rows if r["task"] == "decode" and "error" not in r]
    out = [f"## Language-model decode\n\nMachine: {contract.machine()}; {report.date}, commit {contract.commit()}; "
           f"load average {report.load_before} before / {contract.load()} after.\n",
           contract.table(rows, [("model", "model"), ("precision", "precision"), ("new_tokens", "tokens"),
                                 ("ttft_backend_s", "first token backend (s)"), ("ttft_bare_s", "first token bare (s)"),
                                 ("tok_s_backend", "backend tok/s"), ("tok_s_bare", "bare tok/s"),
                                 ("tok_s_bare_thread", "bare in a thread tok/s"), ("ratio", "backend ÷ bare"),
                                 ("ratio_vs_bare_thread", "backend ÷ bare in a thread"),
                                 ("identical", "same text"), ("load_s", "load (s)"), ("peak_rss_mb", "peak RSS (MB)"),
                                 ("weight_mb_per_token", "MB read/token"),
                                 ("copy_gb_s", "copy GB/s"), ("pct_roofline", "% roofline"), ("load", "load")])]
    for task in ("length", "adapters", "assisted", "prompt_cache"):
        for r in report.rows:
            if r["task"] == task and "error" in r:
                out.append(f"\n{task}: FAILED ({r['error']})")
    length_rows = [p | {"model": r["model"]} for r in report.rows if r["task"] == "length" and "points" in r
                   for p in r["points"]]
    if length_rows:
        out += ["\nDecode time vs output length (plot: benchmarks/out/decode_length.png):\n",
                contract.table(length_rows, [("model", "model"), ("new_tokens", "tokens"), ("backend_s", "backend (s)"),
                                             ("bare_s", "bare (s)"), ("load", "load")])]
    for r in report.rows:
        if r["task"] == "adapters" and "error" not in r:
            out.append(f"\nAdapter switch ({r['model']}): {r['switch_s'] * 1000:.2f} ms to select the other adapter "
                       f"vs {r['full_reload_s']} s to build a backend with it: {r['ratio']}x faster (load {r['load']}).")
        if r["task"] == "assisted" and "error" not in r:
            out.append(f"\nAssisted generation ({r['model']} drafted by {r['draft']}, "
                       f"{'same' if r['same_tokenizer'] else 'another'} tokenizer, {r['draft_tokens']} tokens per draft, "
                       f"{r['precision']}): "
                       f"{r['tok_s_assisted']} vs {r['tok_s_plain']} tok/s = {r['ratio']}x; identical text: "
                       f"{r['identical']}" + ("" if r.get("first_different_token") is None else
                                              f" (first different token: {r['first_different_token']} of {r['new_tokens']})")
                       + f" (load {r['load']}).")
        if r["task"] == "prompt_cache" and "error" not in r:
            out.append(f"\nSystem-prompt KV reuse ({r['model']}, {r['system_tokens']} of {r['request_tokens']} "
                       f"prompt tokens cached): first token {r['ttft_reused_s']} s vs {r['ttft_plain_s']} s = "
                       f"{r['ratio']}x; identical greedy output in {r['identical']} of {r['questions']} questions at "
                       f"{r['precision']}, "
                       + ("float32 not checked (full run)" if r["identical_float32"] is None
                          else f"{r['identical_float32']} of {r['questions']} in float32")
                       + f" (load {r['load']}).")
    if rows:
        best = next((r for r in rows if r["model"] == "qwen2.5-coder-0.5b"), rows[0])
        estimates = [{"gpu": gpu, "gb_s": bw, **{f"{r['model']} {r['precision']}": round(bw * 1e3 / r["weight_mb_per_token"] / 1.048576, 0)
                                                  for r in rows}} for gpu, bw in GPUS.items()]
        out += ["\nGPU decode ceilings — ESTIMATES on paper, not measured: published peak bandwidth ÷ the same bytes "
                "per token (tok/s at 100% of the roofline; batch 1 usually reaches 50–80% of it):\n",
                contract.table(estimates, [("gpu", "GPU"), ("gb_s", "GB/s")] +
                               [(f"{r['model']} {r['precision']}", f"{r['model']} {r['precision']}") for r in rows])]
        out.append(f"\nReading: on {best['model']} {best['precision']} the streamed backend decodes at {best['ratio']}x bare "
                   f"generate from the calling thread and {best['ratio_vs_bare_thread']}x bare generate from a worker thread, "
                   f"at {best['pct_roofline']}% of the copy-bandwidth roofline ({best['weight_mb_per_token']} MB of weights "
                   "per token). When bare generate is much slower in the calling thread than in a worker thread, the "
                   "machine is oversubscribed and libgomp's spin-waiting, not the backend, sets the first ratio "
                   "(RESULTS.md, 'Where the 0.62x went').")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", nargs="*", choices=sorted(TASKS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(TASKS[spec.pop("task")](**spec)))
        return 0
    report = contract.Report("decode", quick=args.quick)
    for task, kwargs in plan(args.quick):
        if args.only and task not in args.only:
            continue
        print(f"decode_bench: {task} {kwargs}", file=sys.stderr, flush=True)
        report.rows.append(child(task, **kwargs))
    summarize(report)
    print(render(report))
    report.write(args.json)
    return 0


def summarize(report: contract.Report) -> None:
    ok = [r for r in report.rows if "error" not in r]
    for r in ok:
        if r["task"] == "decode":
            report.ratios[f"decode {r['model']} {r['precision']}"] = r["ratio"]
    default = [r for r in ok if r["task"] == "decode" and r["model"] == "qwen2.5-coder-0.5b"]
    if default:
        r = default[0]
        report.target("decode backend vs bare generate", r["tok_s_backend"], ">= 0.95x", r["ratio"] >= 0.95,
                      baseline=f"bare model.generate {r['tok_s_bare']} tok/s", ratio=r["ratio"], unit="tok/s")
        report.target("decode % of roofline", r["pct_roofline"], "report", None,
                      baseline=f"{r['roofline_tok_s']} tok/s roofline", unit="%")
    for r in ok:
        if r["task"] == "adapters":
            report.target("adapter switch vs full reload", r["switch_s"], ">= 20x faster",
                          r["ratio"] >= 20, baseline=f"full reload {r['full_reload_s']} s", ratio=r["ratio"], unit="s")
        if r["task"] == "assisted":
            report.target(f"assisted generation 1.5B, draft {r['draft']}", r["tok_s_assisted"], ">= 1.5x, identical",
                          r["ratio"] >= 1.5 and r["identical"], baseline=f"plain {r['tok_s_plain']} tok/s",
                          ratio=r["ratio"], unit="tok/s")
        if r["task"] == "prompt_cache":
            report.target("system-prompt KV reuse first token", r["ttft_reused_s"], "report", None,
                          baseline=f"plain prefill {r['ttft_plain_s']} s", ratio=r["ratio"], unit="s")
        if r["task"] == "length":
            def draw(ax, points=r["points"], model=r["model"]):
                ax.plot([p["new_tokens"] for p in points], [p["backend_s"] for p in points], "o-", label="backend.generate")
                ax.plot([p["new_tokens"] for p in points], [p["bare_s"] for p in points], "s--", label="bare model.generate")
                ax.set_xlabel("output tokens")
                ax.set_ylabel("seconds")
                ax.set_title(f"decode time vs output length ({model})")
                ax.legend()
            contract.plot("decode_length", draw)


if __name__ == "__main__":
    sys.exit(main())
