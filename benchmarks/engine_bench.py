"""Decode vs engine: our transformers path against llama.cpp (llama-cpp-python) on the same GGUF file the
embedded language model is assembled from, the same chat prompt and the same thread count.

llama-cpp-python is a benchmark-only tool, never a dependency of mmagent: it has no binary wheel on the
index, so it is built from its sdist in a separate venv, e.g.

    python -m venv /tmp/llama-venv
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" nice /tmp/llama-venv/bin/pip install llama-cpp-python
    MMAGENT_BENCH_LLAMA_PYTHON=/tmp/llama-venv/bin/python python benchmarks/engine_bench.py --quick

On a CPU with AMX in a VM, the native build (which compiles ggml's AMX kernels) crashed with SIGSEGV on
every prompt of more than one token (2026-12-03, llama-cpp-python 0.3.36); this build, without them, ran:

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON \
      -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_INT8=OFF -DLLAVA_BUILD=OFF" \
      nice /tmp/llama-venv/bin/pip install --force-reinstall --no-deps llama-cpp-python

It is driven as a subprocess of that interpreter (or of this one when `llama_cpp` imports here). Without
either, the section is skipped with the reason. Rounds alternate the two engines; each figure is the
median over rounds. mmagent decodes the dequantized weights (bfloat16 on CPUs with bf16 instructions),
llama.cpp the file's own quantization (Q4_K_M / Q4_1): a decoding step reads every weight once, so the
bytes of weights per token explain most of the decode ratio; the note gives both.

    python benchmarks/engine_bench.py --quick --json benchmarks/out/engine.json   # smollm2-135m, 32 tokens, 2 rounds
    python benchmarks/engine_bench.py                                              # the default model, 96 tokens, 3 rounds
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import contract

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
LLAMA_RUN = r"""
import json, sys, time
import llama_cpp
path, prompt, tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
load_s = time.perf_counter() - t
ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
eos = llm.token_eos()
def run():
    llm.reset()
    started, stamps = time.perf_counter(), []
    for tok in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        stamps.append(time.perf_counter())
        if len(stamps) >= tokens or tok == eos:
            break
    return started, stamps
run()  # warm-up
started, stamps = run()
print(json.dumps({"version": llama_cpp.__version__, "load_s": load_s, "prompt_tokens": len(ids),
                  "first_token_s": stamps[0] - started, "new_tokens": len(stamps),
                  "decode_tok_s": (len(stamps) - 1) / (stamps[-1] - stamps[0])}))
"""


def llama_python() -> tuple[str | None, str]:
    """The interpreter that can import llama_cpp, or None and why not."""
    candidates = [os.environ.get("MMAGENT_BENCH_LLAMA_PYTHON"), sys.executable]
    for python in filter(None, candidates):
        done = subprocess.run([python, "-c", "import llama_cpp"], capture_output=True, text=True)
        if done.returncode == 0:
            return python, ""
    return None, ("llama_cpp is not importable here and MMAGENT_BENCH_LLAMA_PYTHON does not name an interpreter "
                  "that has it (build it in a separate venv: see benchmarks/engine_bench.py)")


class Ours:
    """The embedded model as mmagent loads it (load_backend): greedy, stamped token by token."""

    def __init__(self, name: str, threads: int) -> None:
        import torch

        from mmagent.config import load_config
        from mmagent.model import load_backend

        torch.set_num_threads(threads)
        config = load_config(overrides={"model.id": f"embedded:{name}", "model.repetition_penalty": 1.0}, env={})
        started = time.perf_counter()
        self.backend = load_backend(config)
        self.load_s = time.perf_counter() - started
        self.config = config
        self.messages = [{"role": "user", "content": PROMPT}]

    def prompt_text(self) -> str:
        """The exact text our chat template gives the model, handed to llama.cpp as its prompt."""
        return self.backend.tokenizer.apply_chat_template(self.messages, tokenize=False, add_generation_prompt=True)

    def weight_bytes(self) -> int:
        """Bytes of language-model weights a decoding step reads: every matrix once, the output head in full,
        but only one row of an untied input embedding table (so that table is left out)."""
        model = self.backend.model
        lm = model.get_decoder() if hasattr(model, "get_decoder") else model
        seen = {p.data_ptr(): p.numel() * p.element_size() for p in lm.parameters()}
        embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        if embed.data_ptr() != head.data_ptr():
            seen.pop(embed.data_ptr(), None)
        seen[head.data_ptr()] = head.numel() * head.element_size()
        return sum(seen.values())

    def run(self, tokens: int) -> dict:
        """One greedy decode through the backend's own inputs and generate settings, each token stamped
        as `generate` hands it to a streamer (the backend's text streamer merges tokens into words)."""
        from transformers.generation.streamers import BaseStreamer

        from mmagent.model.backend import _generate_kwargs

        stamps: list[float] = []

        class Stamp(BaseStreamer):
            def put(self, value) -> None:  # noqa: ANN001  the first call carries the prompt
                stamps.append(time.perf_counter())

            def end(self) -> None:
                pass

        backend = self.backend
        opts = backend.options({"max_new_tokens": tokens, "temperature": 0.0})
        started = time.perf_counter()
        inputs = backend.prepare(self.messages)
        backend.model.generate(**inputs, **_generate_kwargs(opts, backend.tokenizer), streamer=Stamp())
        stamps = stamps[1:]
        return {"first_token_s": stamps[0] - started, "new_tokens": len(stamps),
                "decode_tok_s": (len(stamps) - 1) / (stamps[-1] - stamps[0])}


def run_llama(python: str, gguf: Path, prompt: str, tokens: int, threads: int) -> dict:
    done = subprocess.run([python, "-c", LLAMA_RUN, str(gguf), prompt, str(tokens), str(threads)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp run failed (exit {done.returncode}): {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gguf_path(name: str, cache: str) -> Path:
    from mmagent.model import weights
    from mmagent.model.default_vlm import models

    found = weights.locate(models.get(name).language_model, cache)
    if found is None:
        raise FileNotFoundError(f"the GGUF of embedded:{name} is not in {cache}; run `mmagent setup --model {name}`")
    return found


def main() -> int:
    parser = contract.arguments(__doc__, "smollm2-135m, 32 tokens, 2 rounds")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="embedded model name")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both engines")
    args = parser.parse_args()
    if args.quick:
        args.model, args.tokens, args.rounds = "smollm2-135m", 32, 2
    report = contract.Report("engine", quick=args.quick)
    python, why = llama_python()
    if python is None:
        report.target("decode vs engine", None, "report the ratio", None, reason=f"skipped: {why}")
        report.write(args.json)
        print(f"Skipped: {why}.")
        return 0
    ours = Ours(args.model, args.threads)
    gguf = gguf_path(args.model, ours.config.paths.cache)
    prompt = ours.prompt_text()
    ours.run(4)  # warm-up
    runs = contract.interleaved({"mmagent": lambda: ours.run(args.tokens),
                                 "llama.cpp": lambda: run_llama(python, gguf, prompt, args.tokens, args.threads)},
                                args.rounds)
    for engine, results in runs.items():
        row = {"engine": engine, "new_tokens": results[0]["new_tokens"]}
        for key in ("first_token_s", "decode_tok_s"):
            row[key] = round(contract.median([r[key] for r in results]), 3)
        report.rows.append(row)
    mine, theirs = report.rows
    precision = ours.backend.info().precision
    bytes_ours, bytes_gguf = ours.weight_bytes(), gguf.stat().st_size
    report.ratios = {"decode tok/s mmagent / llama.cpp": round(mine["decode_tok_s"] / theirs["decode_tok_s"], 3),
                     "first token llama.cpp / mmagent": round(theirs["first_token_s"] / mine["first_token_s"], 3),
                     "weight bytes per token llama.cpp / mmagent": round(bytes_gguf / bytes_ours, 3)}
    report.target("decode vs engine", mine["decode_tok_s"], "report the ratio; explain it", None, unit="tok/s",
                  baseline=f"llama.cpp {theirs['decode_tok_s']} tok/s on {gguf.name}",
                  ratio=report.ratios["decode tok/s mmagent / llama.cpp"],
                  reason=f"weights read per token: {bytes_ours / 1e6:.0f} MB ({precision}) vs {bytes_gguf / 1e6:.0f} MB (GGUF)")
    report.notes.update(model=f"embedded:{args.model}", gguf=gguf.name, precision=precision, threads=args.threads,
                        tokens=args.tokens, rounds=args.rounds, weight_mb_mmagent=round(bytes_ours / 1e6),
                        weight_mb_gguf=round(bytes_gguf / 1e6), llama_cpp_python=runs["llama.cpp"][0]["version"],
                        prompt_tokens_llama=runs["llama.cpp"][0]["prompt_tokens"])
    report.write(args.json)
    print(markdown(report))
    return 0


def markdown(report: contract.Report) -> str:
    n, r = report.notes, report.ratios
    return "\n".join([
        f"{n['model']}: mmagent ({n['precision']}, transformers) vs llama-cpp-python {n['llama_cpp_python']} on "
        f"`{n['gguf']}`, {n['threads']} threads each, the same chat prompt ({n['prompt_tokens_llama']} tokens), "
        f"greedy, up to {n['tokens']} new tokens; median of {n['rounds']} alternating rounds; load average "
        f"{'/'.join(map(str, report.load_before))} before.",
        "",
        contract.table(report.rows, [("engine", "engine"), ("first_token_s", "first token s"),
                                     ("decode_tok_s", "decode tok/s"), ("new_tokens", "new tokens")]),
        "",
        f"Reading: mmagent decodes at {r['decode tok/s mmagent / llama.cpp']:.2f}× llama.cpp's speed. Decoding one "
        f"token reads every weight once: {n['weight_mb_mmagent']} MB in {n['precision']} for mmagent against "
        f"{n['weight_mb_gguf']} MB for the quantized GGUF ({r['weight bytes per token llama.cpp / mmagent']:.2f}× "
        f"the bytes), so a memory-bound decoder is expected at about that ratio; the rest is kernels (llama.cpp's "
        f"fused quantized matmuls vs PyTorch's per-op dispatch and the Python generate loop). First token "
        f"(prefill) is compute-bound: llama.cpp's takes {r['first token llama.cpp / mmagent']:.2f}× ours.",
    ])


if __name__ == "__main__":
    sys.exit(main())
